"""One YAML file per run: loading, strict validation, ``defaults`` and ``-o`` overrides, paths.

The schema below is the one place that names every key (``docs/cli.md`` documents each; a
test checks that it does). The readers' and heads' own arguments are not listed here: they are
checked against the chosen class's signature and type hints (``paddlepalm.reader.*``,
``paddlepalm.head.*``), so whatever a script can pass, a config can say.

Precedence, most specific wins: built-in default < ``defaults`` < the task's own block < ``-o``.
``-o key.path=value`` edits the document before ``defaults`` are merged into the tasks, so
``-o defaults.batch_size=8`` still yields to a task's own ``batch_size`` while
``-o tasks.slot.batch_size=8`` wins over everything. (PALM 1.x did the opposite: its global
config overrode the task configs.)

YAML 1.1 traps: PyYAML reads ``5e-5`` as a string and ``no``/``on``/``yes``/``off`` as booleans.
The loader here resolves booleans only from ``true``/``false`` and numbers with an exponent
without a dot as floats, and every value is then coerced to its key's declared type (``lr: 5e-5``
is a float, ``lang: no`` stays the string ``'no'``, ``use_ema: yes`` is True).

Paths resolve relative to the config file's folder; task data files (``train_file``,
``dev_file``, ``test_file``, ``vocab``, ``label_map``) relative to ``data_dir`` when it is set;
paths given with ``-o`` relative to the current directory; a path starting with ``${data_dir}/`` is
inside ``data_dir`` (a backbone config that the ``prepare`` script wrote).
"""
import copy
import difflib
import inspect
import os
import re
import typing
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from paddlepalm.downloader.names import is_name

from paddlepalm.cli.backbone_keys import BACKBONE_KEYS, Path  # noqa: E402  (re-exported: the schema's)
REQUIRED = object()  # a key without a default
CLI = "-o"
DATA_DIR = "${data_dir}"  # a path starting with it is inside data_dir


class ConfigError(ValueError):
    """A config problem; the message starts with ``file:line: key.path:``."""


# ------------------------------------------------------------------ YAML reading
class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans (only true/false) and 1.2 floats (``5e-5``)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                              list("-+0123456789"))


def parse_yaml(text: str, source: str) -> Tuple[Any, Dict[Path, int]]:
    """The document and the line of every key path (duplicate keys are an error)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError(f"{where}: not valid YAML: {getattr(error, 'problem', None) or error}") from None
    finally:
        loader.dispose()
    lines: Dict[Path, int] = {}
    if node is None:
        return None, lines

    def build(n, path: Path):
        lines.setdefault(path, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            out: Dict[Any, Any] = {}
            for key_node, value_node in n.value:
                key = loader.construct_object(key_node)
                key = str(key) if not isinstance(key, str) and key is not None else key
                if key in out:
                    raise ConfigError(f"{source}:{key_node.start_mark.line + 1}: {_dotted(path + (key,))}: "
                                      "duplicate key (the first one would be silently lost)")
                lines[path + (key,)] = key_node.start_mark.line + 1
                out[key] = build(value_node, path + (key,))
            return out
        if isinstance(n, yaml.SequenceNode):
            return [build(item, path + (i,)) for i, item in enumerate(n.value)]
        return loader.construct_object(n, deep=True)

    return build(node, ()), lines


def _dotted(path: Path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


# ------------------------------------------------------------------ types
class Type:
    """Coerces a YAML value to the declared type or says why not (``ValueError``)."""

    name = "value"

    def coerce(self, value: Any) -> Any:
        return value


class Int(Type):
    def __init__(self, minimum: Optional[int] = None):
        self.minimum = minimum
        self.name = "an integer" + (f" >= {minimum}" if minimum is not None else "")

    def coerce(self, value):
        if isinstance(value, str) and re.fullmatch(r"[-+]?[0-9_]+", value.strip()):
            value = int(value.replace("_", ""))
        elif isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            value = float(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected {self.name}, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"expected {self.name}, got {value}")
        return value


_FLOAT = re.compile(r"[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?|[-+]?\.?(?:inf|Inf|INF)")


class Float(Type):
    def __init__(self, minimum: Optional[float] = None, positive: bool = False):
        self.minimum, self.positive = minimum, positive
        self.name = "a positive number" if positive else "a number" + (f" >= {minimum}" if minimum is not None else "")

    def coerce(self, value):
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            value = float(value.replace("_", ""))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected {self.name}, got {value!r}")
        value = float(value)
        if (self.positive and not value > 0) or (self.minimum is not None and value < self.minimum):
            raise ValueError(f"expected {self.name}, got {value}")
        return value


class Bool(Type):
    name = "true or false"
    WORDS = {"true": True, "yes": True, "on": True, "y": True, "false": False, "no": False, "off": False, "n": False}

    def coerce(self, value):
        if isinstance(value, str) and value.strip().lower() in self.WORDS:
            return self.WORDS[value.strip().lower()]
        if not isinstance(value, bool):
            raise ValueError(f"expected {self.name}, got {value!r}")
        return value


class Str(Type):
    def __init__(self, choices: Sequence[str] = ()):
        self.choices = tuple(choices)
        self.name = "one of " + ", ".join(repr(c) for c in choices) if choices else "a string"

    def coerce(self, value):
        if isinstance(value, bool) or isinstance(value, float) or not isinstance(value, (str, int)):
            raise ValueError(f"expected {self.name}, got {value!r}")
        value = str(value)
        if self.choices and value not in self.choices:
            raise ValueError(not_one_of(value, self.choices))
        return value


def not_one_of(value: Any, choices: Sequence[str]) -> str:
    """``'chars' is not one of whitespace, jieba, char, wordpiece; did you mean 'char'?``"""
    close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{value!r} is not one of {', '.join(map(str, choices))}{hint}"


class FilePath(Str):
    """A path; resolved relative to the config file (or the current directory, for ``-o``)."""

    name = "a path"

    def __init__(self, data: bool = False):
        super().__init__()
        self.data = data  # relative to data_dir when it is set
        self.name = "a path"


class PathOrName(FilePath):
    """A path, or a pretrained model's registry name (``palm ls pretrain``) where no such path
    exists; :mod:`paddlepalm.cli.pretrained` resolves the name."""

    def __init__(self):
        super().__init__()
        self.name = "a path or a pretrained model name"


class Optional_(Type):
    def __init__(self, inner: Type):
        self.inner = inner
        self.name = f"{inner.name} or null"

    def coerce(self, value):
        return None if value is None else self.inner.coerce(value)


class OneOf(Type):
    def __init__(self, *types: Type):
        self.types = types
        self.name = " or ".join(t.name for t in types)

    def coerce(self, value):
        for t in self.types:
            try:
                return t.coerce(value)
            except ValueError:
                continue
        raise ValueError(f"expected {self.name}, got {value!r}")


class ListOf(Type):
    """A list; a single item is taken as a list of one."""

    def __init__(self, item: Type, single: bool = True):
        self.item, self.single = item, single
        self.name = f"a list of {item.name}" + (" (or one)" if single else "")

    def coerce(self, value):
        if not isinstance(value, list):
            if not self.single:
                raise ValueError(f"expected {self.name}, got {value!r}")
            value = [value]
        return [self.item.coerce(v) for v in value]


class Anything(Type):
    name = "any YAML value"


class Mapping_(Type):
    """A mapping with free keys (checked later, e.g. against a backbone's known keys)."""

    name = "a mapping"

    def coerce(self, value):
        if not isinstance(value, dict):
            raise ValueError(f"expected {self.name}, got {value!r}")
        return value


class Kwargs(Mapping_):
    """``{kind: ClassName, <constructor argument>: value, ...}``: checked against the class's
    signature once the task's blocks are merged (see :func:`check_kwargs`)."""

    def __init__(self, module: str):
        self.module = module
        self.name = f"a mapping with 'kind' (a paddlepalm.{module} class) and its arguments"


# ------------------------------------------------------------------ schema
class Key:
    def __init__(self, type_: Type, default: Any, doc: str, future: Optional[str] = None):
        self.type, self.default, self.doc = type_, default, doc
        # future: 'Trainer', 'MultiHeadTrainer' or 'optimizer': passed to that constructor when
        # its signature takes the key (the per-task optimization / sampling / balancing features)
        self.future = future


Section = Dict[str, Any]  # name -> Key or nested Section

BACKBONES = ("ERNIE", "BERT", "ALBERT", "ELECTRA", "ELMo", "BiLSTM", "BiGRU")
OPTIMIZERS = ("Adam", "AdamW", "LAMB")

PREPARE_KINDS = ("seq_in", "conll", "clue_json")  # paddlepalm.prepare.KINDS (a test checks)
PREPARE: Section = {
    "kind": Key(Optional_(Str(PREPARE_KINDS)), None, "a built-in conversion of a public layout (`paddlepalm.prepare`, "
                                                     "docs/data.md): `seq_in`, `conll` or `clue_json`"),
    "script": Key(Optional_(FilePath()), None, "or a Python script that writes the data files (run in this process, "
                                               "once, when `data_dir` does not exist yet)"),
    "args": Key(ListOf(Str()), [], "the script's arguments; `--out DATA_DIR` (and `--source SOURCE`) are appended"),
    "source": Key(Optional_(FilePath()), None, "the raw data set folder (required by `kind`; for a script, null: "
                                               "its generated sample)"),
    "files": Key(Optional_(Mapping_()), None, "`kind`: `{train: NAME, dev: NAME, test: NAME}` in `source` "
                                              "(null: the files named like *train*, *dev*/*valid*, *test*)"),
    "lowercase": Key(Bool(), False, "`kind`: lowercase the vocabularies (match the readers' `do_lower_case`)"),
    "tokenizer": Key(Str(("char", "jieba", "whitespace")), "char",
                     "`kind`: how `word_vocab.txt` splits sentences that have no tokens (`clue_json` classification)"),
    "strip_position": Key(Bool(), False, "`conll`: drop a token's trailing position digits (Weibo NER's `科0`)"),
}
BACKBONE: Section = {
    "kind": Key(Str(BACKBONES), "ERNIE", "backbone class (`paddlepalm.backbone`)"),
    "config_file": Key(Optional_(FilePath()), None, "a released config JSON (`ernie_config.json`, `config.json`)"),
    "config": Key(Mapping_(), {}, "config keys, over the file's; `vocab_size` defaults to the first task's "
                                  "vocabulary size"),
    "pretrained": Key(Optional_(PathOrName()), None, "`load_pretrain` path (a released folder or a checkpoint) "
                                                     "or a registry name (`palm ls pretrain`), which also "
                                                     "supplies `config_file` and the tasks' `vocab`"),
}
OPTIMIZER: Section = {
    "kind": Key(Str(OPTIMIZERS), "Adam", "optimizer class (`paddlepalm.optimizer`)"),
    "lr": Key(Float(positive=True), 5e-5, "peak learning rate"),
    "grad_clip_norm": Key(Optional_(Float(positive=True)), 1.0, "clip the summed gradient to this global norm"),
    "weight_decay": Key(Optional_(Float(minimum=0)), None, "decoupled weight decay (not on biases / layer norms)"),
    "use_ema": Key(Bool(), False, "keep an exponential moving average of the weights"),
    "ema_decay": Key(Optional_(Float(positive=True)), None, "EMA decay (null: the optimizer's default)"),
    "use_amp": Key(Bool(), False, "mixed precision on GPUs (ignored on CPU)"),
    "amp_dtype": Key(Str(("float16", "bfloat16")), "float16", "mixed-precision type"),
    "backbone_lr_multiplier": Key(Optional_(Float(positive=True)), None, "backbone learning rate = lr x this",
                                  future="optimizer"),
    "layerwise_lr_decay": Key(Optional_(Float(positive=True)), None, "layer-wise learning-rate decay factor",
                              future="optimizer"),
}
SCHEDULE: Section = {
    "kind": Key(Str(("triangular", "warmup", "constant")), "triangular",
                "`TriangularSchedualer` (warm-up, then linear decay to 0), `WarmupSchedualer`, or none"),
    "warmup_steps": Key(Optional_(Int(minimum=0)), None, "warm-up steps (null: `warmup_proportion` of the run)"),
    "warmup_proportion": Key(Float(minimum=0), 0.1, "warm-up as a fraction of the run's steps"),
}
TRAIN: Section = {
    "epochs": Key(Float(positive=True), 1.0, "epochs of the sampling reference task (one task: of it)"),
    "max_steps": Key(Optional_(Int(minimum=1)), None, "one task: train this many updates instead of `epochs`; "
                                                       "several: at most this many of the plan's updates"),
    "sampling_reference": Key(Optional_(Str()), None, "task whose epochs count (null: the first non-aux task)"),
    "seed": Key(Int(), 1, "seeds paddle, numpy, the readers (unless a reader sets its own) and the task sampling"),
    "print_steps": Key(Int(minimum=0), 10, "a log line and a metrics record every N steps (0: none)"),
    "save_steps": Key(Int(minimum=0), 0, "a checkpoint every N steps (0: only at the end)"),
    "save_type": Key(Str(("ckpt", "predict", "ckpt,predict")), "ckpt", "what a save writes (`set_saver`)"),
    "keep_checkpoints": Key(Optional_(Int(minimum=1)), None, "keep only the newest N `ckpt.step{N}` (and "
                                                             "`pred.step{N}`) folders (null: keep all; `best/` stays)"),
    "eval_steps": Key(Int(minimum=0), 0, "evaluate the dev files every N steps (0: at the end only)"),
    "patience": Key(Optional_(Int(minimum=1)), None, "stop after N evaluations without a better score"),
    "min_delta": Key(Float(minimum=0), 0.0, "an improvement smaller than this does not count"),
    "save_best": Key(Bool(), True, "keep the best evaluated weights in RUN_DIR/best"),
    "joint": Key(OneOf(Bool(), ListOf(ListOf(Str(), single=False), single=False)), False,
                 "joint batches: true (all tasks) or a list of groups of task names (docs/multitask.md)"),
    "tasks_per_update": Key(OneOf(Int(minimum=1), Str(("all",))), 1, "units drawn per update (or 'all')"),
    "affinity_every": Key(Int(minimum=0), 0, "inter-task affinity every N steps into metrics.jsonl "
                                             "(paddlepalm/affinity.py; 0: off)"),
    "skip_nonfinite": Key(Bool(), False, "drop a batch with a non-finite loss instead of stopping"),
    "report_to": Key(ListOf(Str(("visualdl",))), [], "`visualdl`: also write VisualDL scalars "
                                                      "(metrics.jsonl is always written)"),
    "schedule": Key(Optional_(Anything()), None, "task sampling schedule (`MultiHeadTrainer(schedule=)`)",
                    future="MultiHeadTrainer"),
    "balancer": Key(Optional_(Anything()), None, "loss balancing (`MultiHeadTrainer(balancer=)`)",
                    future="MultiHeadTrainer"),
}
TASK: Section = {
    "reader": Key(Kwargs("reader"), REQUIRED, "reader `kind` and its constructor arguments"),
    "head": Key(Kwargs("head"), REQUIRED, "head `kind` and its constructor arguments"),
    "train_file": Key(FilePath(data=True), REQUIRED, "training data (`load_data`)"),
    "dev_file": Key(Optional_(FilePath(data=True)), None, "evaluated during training; `palm eval`"),
    "test_file": Key(Optional_(FilePath(data=True)), None, "`palm eval --split test`"),
    "vocab": Key(Optional_(FilePath(data=True)), None, "the reader's `vocab_path`"),
    "label_map": Key(Optional_(FilePath(data=True)), None, "JSON `{label: id}`: a tagger's `label_map_config`; "
                                                           "class names and count for classifiers"),
    "file_format": Key(Optional_(Str()), None, "`load_data(file_format=)`: `tsv`, `csv`, `jsonl` (null: from each "
                                               "file's extension for the readers of rows, else the reader's default)"),
    "columns": Key(Optional_(Mapping_()), None, "`load_data(columns=)`: `{field: column}`, e.g. "
                                                "`{text_a: review, label: stars}` (null: the field names)"),
    "batch_size": Key(Int(minimum=1), 32, "training batch size"),
    "dev_batch_size": Key(Int(minimum=1), 64, "evaluation batch size"),
    "shuffle_train": Key(Bool(), True, "shuffle the training data each epoch"),
    "mix_ratio": Key(Float(positive=True), 1.0, "sampling weight (`Trainer(mix_ratio=)`)"),
    "aux": Key(Bool(), False, "auxiliary task: trains along, never holds up the end (`set_as_aux`)"),
    "reuse_head_with": Key(Optional_(Str()), None, "share the head of that task"),
    "metrics": Key(Optional_(ListOf(Str())), None, "evaluation metrics (null: the head's defaults)"),
    "target_metric": Key(Optional_(Str()), None, "the metric that picks the best checkpoint"),
    "micro_batches": Key(Int(minimum=1), 1, "split each batch into N accumulated passes"),
    "loss_weight": Key(Optional_(Float(minimum=0)), None, "the task's loss is multiplied by this",
                       future="Trainer"),
    "lr_multiplier": Key(Optional_(Float(positive=True)), None, "the task's head learning rate = lr x this",
                         future="Trainer"),
    "clip_norm": Key(Optional_(Float(positive=True)), None, "clip the task's own gradient to this norm",
                     future="Trainer"),
}
TOP: Section = {
    "prepare": PREPARE,
    "data_dir": Key(Optional_(FilePath()), None, "folder of the task data files (null: RUN_DIR/data with "
                                                  "`prepare`, else the config's folder)"),
    "backbone": BACKBONE,
    "optimizer": OPTIMIZER,
    "schedule": SCHEDULE,
    "train": TRAIN,
    "defaults": TASK,  # every key optional here; merged into each task
    "tasks": TASK,  # {name: task block}
}
DATA_KEYS = [name for name, key in TASK.items() if isinstance(key.type, FilePath)
             or isinstance(getattr(key.type, "inner", None), FilePath)]
PATH_ARGUMENTS = ("pred_output_path",)  # reader/head arguments that are paths


def schema_keys() -> List[str]:
    """Every key path of the schema (``tasks.<name>.`` written ``tasks.NAME.``), for the docs."""
    out = []

    def walk(section: Section, prefix: str):
        for name, key in section.items():
            if isinstance(key, dict):
                walk(key, f"{prefix}{name}.")
            else:
                out.append(prefix + name)
    walk({k: v for k, v in TOP.items() if k not in ("tasks", "defaults")}, "")
    walk(TASK, "tasks.NAME.")
    return out


# ------------------------------------------------------------------ the resolved config
class Config:
    """A validated, merged config: ``data`` (plain dicts, paths absolute, every default filled)
    and where each value came from (for messages)."""

    def __init__(self, data: Dict[str, Any], origins: Dict[Path, str], source: str):
        self.data, self.origins, self.source = data, origins, source

    def __getitem__(self, key):
        return self.data[key]

    @property
    def tasks(self) -> Dict[str, Dict[str, Any]]:
        return self.data["tasks"]

    def where(self, path: Path) -> str:
        return where(self.origins, path, self.source)

    def error(self, path: Path, problem: str) -> ConfigError:
        return ConfigError(f"{self.where(path)}: {_dotted(self.origins.get(('@', ) + path, path))}: {problem}")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)


def where(origins: Dict[Path, str], path: Path, source: str) -> str:
    for n in range(len(path), -1, -1):
        if path[:n] in origins:
            return origins[path[:n]]
    return source


def load(path: str, overrides: Sequence[str] = (), run_dir: Optional[str] = None,
         cwd: Optional[str] = None, only: Optional[Sequence[str]] = None) -> Config:
    """Read, override, validate and resolve the config file ``path``; ``only``: keep these tasks."""
    from paddlepalm.utils.fileio import read_text

    try:
        text = read_text(path)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config: {error.strerror or error}") from None
    return resolve(text, path, overrides, run_dir, cwd, only)


def resolve(text: str, source: str, overrides: Sequence[str] = (), run_dir: Optional[str] = None,
            cwd: Optional[str] = None, only: Optional[Sequence[str]] = None) -> Config:
    doc, lines = parse_yaml(text, source)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}:1: the config must be a mapping of sections, got {type(doc).__name__}")
    origins = {p: f"{source}:{line}" for p, line in lines.items()}
    from_cli = set()
    for item in overrides:
        key_path, value = parse_override(item)
        check_override_task(doc, key_path, item)
        _set(doc, key_path, value, item)
        origins[key_path] = f"{CLI} {item}"
        from_cli.add(key_path)
    if only:
        keep_tasks(doc, only)
    base = os.path.dirname(os.path.abspath(source))
    cwd = os.path.abspath(cwd or os.getcwd())
    checker = _Checker(origins, source, from_cli, base, cwd)
    data = checker.section(doc, TOP, ())
    merged = merge_defaults(data, origins, checker)
    finish(merged, origins, checker, run_dir)
    return Config(merged, origins, source)


MULTI_TASK_KEYS = ("sampling_reference", "joint", "tasks_per_update", "schedule", "balancer", "affinity_every")


def keep_tasks(doc: Dict[str, Any], only: Sequence[str]) -> None:
    """``palm train --tasks``: drop the other tasks of ``doc``. One task left trains alone, so
    the multi-task settings (``train.joint``, ``schedule``, ..., its ``mix_ratio`` and ``aux``)
    go; several keep the joint groups of theirs that still have two members."""
    tasks = doc.get("tasks") if isinstance(doc.get("tasks"), dict) else {}
    missing = [name for name in only if name not in tasks]
    if missing or len(set(only)) != len(only):
        raise ConfigError(f"{CLI} --tasks {' '.join(only)}: " + (f"no task named {missing[0]!r}; tasks: {list(tasks)}"
                                                                if missing else "a task is named twice"))
    doc["tasks"] = {name: tasks[name] for name in only}
    train = doc.get("train") if isinstance(doc.get("train"), dict) else {}
    if len(only) == 1:
        for key in MULTI_TASK_KEYS:
            train.pop(key, None)
        if isinstance(tasks[only[0]], dict):
            for key in ("mix_ratio", "aux"):
                tasks[only[0]].pop(key, None)
    elif isinstance(train.get("joint"), list):
        groups = [[m for m in group if m in only] for group in train["joint"] if isinstance(group, list)]
        train["joint"] = [g for g in groups if len(g) > 1] or False
    if train.get("sampling_reference") not in (None, *only):
        train.pop("sampling_reference")


def parse_override(item: str) -> Tuple[Path, Any]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{CLI} {item}: expected key.path=value (e.g. -o train.epochs=2)")
    path = tuple(part for part in key.strip().split("."))
    if any(not part for part in path):
        raise ConfigError(f"{CLI} {item}: empty part in the key path {key!r}")
    parsed, _ = parse_yaml(value, f"{CLI} {item}") if value.strip() else (None, {})
    return path, parsed


def check_override_task(doc: Dict[str, Any], path: Path, item: str) -> None:
    """``-o tasks.NAME.key=...`` must name a task of the config (``-o tasks.NAME={...}`` may add one)."""
    tasks = doc.get("tasks") if isinstance(doc.get("tasks"), dict) else {}
    if len(path) > 2 and path[0] == "tasks" and path[1] not in tasks:
        names = [str(name) for name in tasks]
        close = difflib.get_close_matches(path[1], names, n=1, cutoff=0.5)
        raise ConfigError(f"{CLI} {item}: no task {path[1]!r}" + (f"; did you mean {close[0]!r}?" if close else
                                                                 f"; tasks: {', '.join(names) or 'none'}"))


def _set(doc: Dict[str, Any], path: Path, value: Any, item: str) -> None:
    node = doc
    for i, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{CLI} {item}: {_dotted(path[:i + 1])} is {child!r}, not a section")
        node = child
    node[path[-1]] = value


class _Checker:
    """Validates sections against the schema, coerces values, resolves paths."""

    def __init__(self, origins, source, from_cli, base, cwd):
        self.origins, self.source, self.from_cli, self.base, self.cwd = origins, source, from_cli, base, cwd

    def fail(self, path: Path, problem: str) -> ConfigError:
        shown = self.origins.get(("@",) + path, path)
        return ConfigError(f"{where(self.origins, path, self.source)}: {_dotted(shown)}: {problem}")

    def unknown(self, path: Path, key: str, known: Sequence[str], what: str = "key") -> ConfigError:
        close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(known))}"
        return self.fail(path + (key,), f"unknown {what}{hint}")

    def section(self, value: Any, schema: Section, path: Path, fill: bool = True) -> Dict[str, Any]:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a section (a mapping of keys), got {value!r}")
        out: Dict[str, Any] = {}
        for key in value:
            if key not in schema:
                raise self.unknown(path, key, list(schema))
        for name, spec in schema.items():
            sub = path + (name,)
            if name == "tasks" and path == ():
                out[name] = self.tasks(value.get(name), sub)
            elif name == "defaults" and path == ():
                out[name] = self.section(value.get(name), TASK, sub, fill=False)
            elif isinstance(spec, dict):
                if name == "prepare" and value.get(name) is None:
                    out[name] = None
                else:
                    out[name] = self.section(value.get(name), spec, sub)
            elif name in value:
                out[name] = self.value(value[name], spec, sub)
            elif fill:
                if spec.default is REQUIRED and path[:1] != ("tasks",):
                    raise self.fail(sub, "missing (required)")
                out[name] = copy.deepcopy(spec.default)
        return out

    def tasks(self, value: Any, path: Path) -> Dict[str, Any]:
        if not isinstance(value, dict) or not value:
            raise self.fail(path, "expected one or more tasks: tasks: {name: {reader: ..., head: ..., train_file: ...}}")
        out = {}
        for name, block in value.items():
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(name)):
                raise self.fail(path + (name,), "a task name may hold letters, digits, '_', '-' and '.' only")
            out[str(name)] = self.section(block, TASK, path + (name,), fill=False)
        return out

    def value(self, value: Any, spec: Key, path: Path) -> Any:
        try:
            value = spec.type.coerce(value)
        except ValueError as error:
            raise self.fail(path, str(error)) from None
        path_type = spec.type if isinstance(spec.type, FilePath) else getattr(spec.type, "inner", None)
        if isinstance(path_type, FilePath) and value is not None and not path_type.data:
            resolved = self.path(value, path)
            if isinstance(path_type, PathOrName) and not os.path.exists(resolved) and is_name(value):
                return value  # a model name: finish() resolves it (a path that exists wins)
            value = resolved
        return value

    def path(self, value: str, path: Path, data_dir: Optional[str] = None) -> str:
        """``~`` and environment variables (``$PALM_DATA_ROOT/atis``) expanded; relative paths
        resolved from the current folder (``-o``), else ``data_dir`` or the config's folder. An
        unset variable is an error, not a literal ``$NAME`` folder."""
        expanded = os.path.expandvars(os.path.expanduser(value))
        unset = [m.group() for m in re.finditer(r"\$\{?(\w+)\}?", expanded) if m.group(1) != "data_dir"]
        if unset:  # ${data_dir} is the config's own placeholder (substituted later)
            raise self.fail(path, f"{value!r}: environment variable {unset[0]} is not set")
        value = expanded
        if os.path.isabs(value):
            return os.path.normpath(value)
        if where(self.origins, path, self.source).startswith(CLI):
            return os.path.normpath(os.path.join(self.cwd, value))
        return os.path.normpath(os.path.join(data_dir or self.base, value))


def merge_defaults(data: Dict[str, Any], origins: Dict[Path, str], checker: _Checker) -> Dict[str, Any]:
    """Each task = built-in defaults < ``defaults`` < its own block (mappings merge key by key)."""
    defaults = data.pop("defaults")
    tasks = {}
    for name, block in data["tasks"].items():
        merged = _deep_merge(defaults, block, ("defaults",), ("tasks", name), origins)
        for key, spec in TASK.items():
            if key not in merged:
                if spec.default is REQUIRED:
                    raise checker.fail(("tasks", name, key), "missing (required; in the task or in `defaults`)")
                merged[key] = copy.deepcopy(spec.default)
        tasks[name] = {key: merged[key] for key in TASK}
    data["tasks"] = tasks
    return data


def _deep_merge(low: Dict[str, Any], high: Dict[str, Any], low_path: Path, high_path: Path,
                origins: Dict[Path, str]) -> Dict[str, Any]:
    out = copy.deepcopy(high)
    for key, value in low.items():
        if key not in high:
            out[key] = copy.deepcopy(value)
            _copy_origins(origins, low_path + (key,), high_path + (key,))
        elif isinstance(value, dict) and isinstance(high[key], dict):
            out[key] = _deep_merge(value, high[key], low_path + (key,), high_path + (key,), origins)
    return out


def _copy_origins(origins: Dict[Path, str], src: Path, dst: Path) -> None:
    for path, origin in list(origins.items()):
        if path[:len(src)] == src:
            origins[dst + path[len(src):]] = origin
            origins[("@",) + dst + path[len(src):]] = path  # the key path as the user wrote it


def check_prepare(prepare: Optional[Dict[str, Any]], checker: _Checker) -> None:
    """``kind`` or ``script``, not both; each with only its own keys."""
    if prepare is None:
        return
    path = ("prepare",)
    if (prepare["kind"] is None) == (prepare["script"] is None):
        raise checker.fail(path, "give `kind` (a built-in conversion) or `script`, not both" if prepare["kind"]
                           else "missing: `kind` (seq_in, conll, clue_json) or `script`")
    if prepare["kind"] is not None:
        if prepare["source"] is None:
            raise checker.fail(path + ("source",), f"missing: the raw data set folder `kind: {prepare['kind']}` reads")
        if prepare["args"]:
            raise checker.fail(path + ("args",), "a `script`'s arguments (a `kind` takes keys instead)")
        if prepare["strip_position"] and prepare["kind"] != "conll":
            raise checker.fail(path + ("strip_position",), "a `kind: conll` option")
        if prepare["files"] and prepare["kind"] == "seq_in":
            raise checker.fail(path + ("files",), "`seq_in` reads the folders train/, valid/ (or dev/), test/")
        return
    for key in ("files", "lowercase", "tokenizer", "strip_position"):
        if prepare[key] != PREPARE[key].default:
            raise checker.fail(path + (key,), "an option of `kind` (a script takes `args`)")


def finish(data: Dict[str, Any], origins: Dict[Path, str], checker: _Checker, run_dir: Optional[str]) -> None:
    """Cross-key checks, task data paths, reader/head arguments."""
    check_prepare(data["prepare"], checker)
    if data["prepare"] is not None and data["data_dir"] is None:
        if run_dir is None:
            raise checker.fail(("prepare",), "a config with `prepare` needs a run directory (or set data_dir)")
        data["data_dir"] = os.path.join(os.path.abspath(run_dir), "data")
    _substitute_data_dir(data, data["data_dir"] or checker.base)
    from paddlepalm.cli.pretrained import supply_from_name

    supply_from_name(data, origins, checker)
    names = list(data["tasks"])
    for name, task in data["tasks"].items():
        tpath = ("tasks", name)
        for key in DATA_KEYS:
            if task.get(key) is not None:
                task[key] = checker.path(task[key], tpath + (key,), data["data_dir"])
        if task["vocab"] is None:
            raise checker.fail(tpath + ("vocab",), "missing: the reader's vocabulary file (in the task or in `defaults`)")
        for kind in ("reader", "head"):
            task[kind] = check_kwargs(task[kind], kind, tpath + (kind,), checker)
        check_file_format(task, tpath, checker)
        check_metrics(task, tpath, checker)
        if task["reuse_head_with"] is not None and task["reuse_head_with"] not in names:
            raise checker.fail(tpath + ("reuse_head_with",), f"no task named {task['reuse_head_with']!r}; "
                                                             f"tasks: {names}")
        for key, spec in TASK.items():
            if spec.future and task[key] is not None:
                check_available(spec.future, key, tpath + (key,), checker)
    train = data["train"]
    multi = {"sampling_reference": None, "joint": False, "tasks_per_update": 1, "schedule": None, "balancer": None,
             "affinity_every": 0}
    if len(names) == 1:
        for key, neutral in multi.items():
            if train[key] != neutral and not (key == "sampling_reference" and train[key] in names):
                raise checker.fail(("train", key), "needs two or more tasks (one task trains with a Trainer alone)")
        for key in ("mix_ratio", "aux"):
            if data["tasks"][names[0]][key] != TASK[key].default:
                raise checker.fail(("tasks", names[0], key), "needs two or more tasks")
    if train["sampling_reference"] is not None and train["sampling_reference"] not in names:
        raise checker.fail(("train", "sampling_reference"), f"no task named {train['sampling_reference']!r}; "
                                                            f"tasks: {names}")
    if isinstance(train["joint"], list):
        for i, group in enumerate(train["joint"]):
            for member in group:
                if member not in names:
                    raise checker.fail(("train", "joint", i), f"no task named {member!r}; tasks: {names}")
    if all(t["aux"] for t in data["tasks"].values()):
        raise checker.fail(("tasks",), "at least one task must not be auxiliary")
    for key in ("schedule", "balancer"):
        if train[key] is not None:
            check_available("MultiHeadTrainer", key, ("train", key), checker)
            check_component(key, train[key], checker)
    for key, spec in OPTIMIZER.items():
        if spec.future and data["optimizer"][key] is not None:
            check_available("optimizer", key, ("optimizer", key), checker, data["optimizer"]["kind"])
    check_backbone_keys(data["backbone"], checker)


def check_file_format(task: Dict[str, Any], path: Path, checker: _Checker) -> None:
    """``file_format`` must be one the task's reader reads (``Reader.FILE_FORMATS``)."""
    formats = classes("reader")[task["reader"]["kind"]].FILE_FORMATS
    if task["file_format"] is not None and task["file_format"] not in formats:
        raise checker.fail(path + ("file_format",), f"{task['reader']['kind']} reads: "
                                                    f"{not_one_of(task['file_format'], formats)}")


def check_metrics(task: Dict[str, Any], path: Path, checker: _Checker) -> None:
    """``metrics`` must be known metric names and ``target_metric`` one of the scores they report."""
    from paddlepalm import evaluation

    for name in task["metrics"] or []:
        if name not in evaluation.METRICS:
            raise checker.fail(path + ("metrics",), f"metric {not_one_of(name, list(evaluation.METRICS))}")
    scores = evaluation.score_names(task["metrics"], classes("head")[task["head"]["kind"]])
    if task["target_metric"] is not None and scores and task["target_metric"] not in scores:
        raise checker.fail(path + ("target_metric",), f"the metrics report: {not_one_of(task['target_metric'], scores)}")


def check_component(key: str, value: Any, checker: _Checker) -> None:
    """``train.schedule`` / ``train.balancer`` name a class that takes the arguments given."""
    try:
        make_component(key, value)
    except (TypeError, ValueError) as error:
        raise checker.fail(("train", key), str(error)) from None


def _substitute_data_dir(node: Any, data_dir: str) -> Any:
    """``${data_dir}/...`` in any path (a backbone config or pretrained folder the prepare script wrote)."""
    if isinstance(node, dict):
        for key, value in node.items():
            node[key] = _substitute_data_dir(value, data_dir)
    elif isinstance(node, list):
        return [_substitute_data_dir(v, data_dir) for v in node]
    elif isinstance(node, str) and DATA_DIR in node:
        return os.path.normpath(node[node.index(DATA_DIR):].replace(DATA_DIR, data_dir, 1))
    return node


def check_available(target: str, key: str, path: Path, checker: _Checker, optimizer: str = "Adam") -> None:
    """A key of a feature this version may not have: refused unless the constructor takes it."""
    if key not in accepted(target, optimizer):
        what = f"paddlepalm.optimizer.{optimizer}" if target == "optimizer" else f"paddlepalm.{target}"
        raise checker.fail(path, f"not available in this version of paddlepalm ({what} takes no {key!r} argument)")


def accepted(target: str, optimizer: str = "Adam") -> List[str]:
    import paddlepalm

    cls = {"Trainer": paddlepalm.Trainer, "MultiHeadTrainer": paddlepalm.MultiHeadTrainer,
           "optimizer": getattr(paddlepalm.optimizer, optimizer, None)}[target]
    return list(inspect.signature(cls.__init__).parameters) if cls is not None else []


# backbone config keys the backbones read (paddlepalm/backbone/*.py), for inline `backbone.config`
def check_backbone_keys(backbone: Dict[str, Any], checker: _Checker) -> None:
    known = BACKBONE_KEYS[backbone["kind"]]
    for key in backbone["config"]:
        if key not in known:
            raise checker.unknown(("backbone", "config"), key, known, f"{backbone['kind']} config key")
    if backbone["config_file"] is None and not backbone["config"]:
        raise checker.fail(("backbone",), "give `config_file` or `config` (the backbone's sizes)")
    elmo = backbone["config"].get("elmo")
    if isinstance(elmo, str):  # a recurrent backbone's ELMo package: a path, relative to the config file
        backbone["config"]["elmo"] = checker.path(elmo, ("backbone", "config", "elmo"))


# ------------------------------------------------------------------ reader / head arguments
def classes(module: str) -> Dict[str, type]:
    import paddlepalm

    mod = getattr(paddlepalm, module)
    base = {"reader": paddlepalm.reader.Reader, "head": paddlepalm.head.Head}[module]
    return {name: getattr(mod, name) for name in mod.__all__
            if inspect.isclass(getattr(mod, name)) and issubclass(getattr(mod, name), base)
            and getattr(mod, name) is not base}


def parameters(cls: type) -> Dict[str, Tuple[Type, Any]]:
    """Constructor parameters: ``{name: (type, default or REQUIRED)}`` from the signature and hints."""
    hints = typing.get_type_hints(cls.__init__)
    out = {}
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        default = REQUIRED if param.default is inspect.Parameter.empty else param.default
        out[name] = (_hint_type(hints.get(name), name), default)
    return out


def _hint_type(hint: Any, name: str) -> Type:
    if name in PATH_ARGUMENTS:
        return FilePath()
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return Str(args)
    if origin is typing.Union:
        inner = [a for a in args if a is not type(None)]
        types = [_hint_type(a, name) for a in inner]
        single = types[0] if len(types) == 1 else OneOf(*types)
        return Optional_(single) if type(None) in args else single
    if hint is bool:
        return Bool()
    if hint is int:
        return Int()
    if hint is float:
        return Float()
    if hint is str:
        return Str()
    if origin in (list, tuple, Sequence, typing.Sequence, getattr(__import__("collections.abc").abc, "Sequence")):
        return ListOf(_hint_type(args[0], name) if args else Anything())
    if origin in (dict, Mapping, getattr(__import__("collections.abc").abc, "Mapping")) or hint in (dict, Mapping):
        return Mapping_()
    return Anything()


# arguments a config does not give in `reader:` / `head:` (the builder sets them)
NOT_ARGUMENTS = {"phase": "set by each command (train, eval, predict)", "vocab_path": "use the task's `vocab` key",
                 "label_map_config": "use the task's `label_map` key"}


def check_kwargs(block: Dict[str, Any], module: str, path: Path, checker: _Checker) -> Dict[str, Any]:
    known = classes(module)
    if "kind" not in block:
        raise checker.fail(path + ("kind",), f"missing: the {module} class, one of {sorted(known)}")
    kind = block["kind"]
    if kind not in known:
        raise checker.unknown(path, kind, list(known), f"{module} kind")
    params = parameters(known[kind])
    out: Dict[str, Any] = {"kind": kind}
    for key, value in block.items():
        if key == "kind":
            continue
        if key in NOT_ARGUMENTS:
            raise checker.fail(path + (key,), f"not an argument here: {NOT_ARGUMENTS[key]}")
        if key not in params:
            raise checker.unknown(path, key, [p for p in params if p not in NOT_ARGUMENTS],
                                  f"argument of {module} {kind}")
        type_, _ = params[key]
        try:
            value = type_.coerce(value)
        except ValueError as error:
            raise checker.fail(path + (key,), f"{kind}({key}=...): {error}") from None
        if isinstance(type_, FilePath) and isinstance(value, str):
            value = checker.path(value, path + (key,))
        out[key] = value
    return out


def make_component(key: str, value: Any):
    """``train.schedule`` / ``train.balancer``: a class name of ``palm.sampling`` / ``palm.balancing``
    (any case), or a mapping ``{kind: NAME, <constructor arguments>}``, e.g. ``{kind: temperature, T: 2}``."""
    import paddlepalm as palm

    module = palm.sampling if key == "schedule" else palm.balancing
    kwargs = {"kind": value} if isinstance(value, str) else dict(value or {})
    name = kwargs.pop("kind", None)
    classes = {n.lower(): getattr(module, n) for n in module.__all__ if n not in ("Schedule", "Mixture", "Balancer")}
    if not isinstance(name, str) or name.lower() not in classes:
        raise ValueError(f"{key} {not_one_of(name.lower() if isinstance(name, str) else name, sorted(classes))}")
    try:
        return classes[name.lower()](**kwargs)
    except TypeError as error:
        raise ValueError(f"{name}: {error}") from None
