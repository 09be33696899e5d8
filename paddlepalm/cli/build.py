"""From a resolved config to the objects a script builds: readers, a backbone, heads, a
``Trainer`` per task (a ``MultiHeadTrainer`` over them when there are several), the optimizer
and its schedule, evaluation, the saver. Nothing here trains: ``trainer.train()`` does, as in
a script.

Values a script computes from its data are derived when the config leaves them out, and
written back into the config (so the run directory's ``config.yaml`` holds them, and
``palm eval`` / ``palm export`` rebuild the same model without the training data):
``backbone.config.vocab_size`` (lines of the first task's vocabulary), a head's ``input_dim``
(the backbone's width), ``num_classes`` (the label map's size, else the largest training
label + 1), ``vocab_size`` (the backbone's), MRC's ``max_query_len`` (the reader's),
replaced-token detection's ``num_layers``/``num_attention_heads`` and a tied head's
``embedding_size`` (the backbone config's).
"""
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from paddlepalm.cli.config import REQUIRED, Config, classes, make_component, parameters
from paddlepalm.utils.fileio import read_json, read_lines

_SAVE_AT_END = 10 ** 9  # train.save_steps: 0 -> only the final save


@dataclass
class Built:
    """The objects of a run; ``top`` is what a script calls ``train()`` / ``export()`` on."""

    config: Config
    backbone: Any
    trainers: Dict[str, Any]
    top: Any
    readers: Dict[str, Any] = field(default_factory=dict)
    eval_readers: Dict[str, Any] = field(default_factory=dict)
    total_steps: int = 0

    @property
    def multi(self) -> bool:
        return len(self.trainers) > 1


# ------------------------------------------------------------------ pieces
def backbone_config(cfg: Config) -> Dict[str, Any]:
    spec = cfg["backbone"]
    conf: Dict[str, Any] = dict(read_json(spec["config_file"])) if spec["config_file"] else {}
    conf.update(spec["config"])
    if "vocab_size" not in conf and not (spec["kind"] == "ELMo" and conf.get("input_type") == "char"):
        first = next(t for t in cfg.tasks.values())
        conf["vocab_size"] = len(read_lines(first["vocab"]))
        spec["config"]["vocab_size"] = conf["vocab_size"]  # derived: recorded in config.yaml
    return conf


def make_backbone(cfg: Config, phase: str):
    import paddlepalm as palm

    conf = backbone_config(cfg)
    try:
        return getattr(palm.backbone, cfg["backbone"]["kind"]).from_config(conf, phase=phase)
    except (KeyError, ValueError, TypeError) as error:
        raise cfg.error(("backbone",), f"{cfg['backbone']['kind']}.from_config: {error}") from None


def make_reader(cfg: Config, name: str, phase: str):
    task = cfg.tasks[name]
    spec = dict(task["reader"])
    cls = classes("reader")[spec.pop("kind")]
    params = parameters(cls)
    kwargs: Dict[str, Any] = {"vocab_path": task["vocab"], **spec, "phase": phase}
    if "label_map_config" in params:
        if task["label_map"] is not None:  # a classifier's: its class names (labels may then be names)
            kwargs["label_map_config"] = task["label_map"]
        elif params["label_map_config"][1] is REQUIRED:
            raise cfg.error(("tasks", name, "label_map"), f"missing: {cls.__name__} needs a label map JSON")
    if "seed" in params and "seed" not in spec:
        kwargs["seed"] = cfg["train"]["seed"]
    _check_required(cfg, ("tasks", name, "reader"), cls, params, kwargs)
    return cls(**kwargs)


def label_names(cfg: Config, name: str) -> Optional[List[str]]:
    """Class names from the task's label map (``{name: id}``), in id order."""
    path = cfg.tasks[name]["label_map"]
    if path is None:
        return None
    mapping = read_json(path)
    if not isinstance(mapping, dict) or not all(isinstance(v, int) for v in mapping.values()):
        raise cfg.error(("tasks", name, "label_map"), f"{path}: expected a JSON object {{label: integer id}}")
    return [label for label, _ in sorted(mapping.items(), key=lambda item: item[1])]


def make_head(cfg: Config, name: str, phase: str, backbone, conf: Dict[str, Any], reader=None):
    task = cfg.tasks[name]
    spec = task["head"]
    cls = classes("head")[spec["kind"]]
    params = parameters(cls)
    derived: Dict[str, Any] = {}
    if "input_dim" in params:
        derived["input_dim"] = int(backbone.hidden_size)
    if "vocab_size" in params and "vocab_size" in conf:
        derived["vocab_size"] = int(conf["vocab_size"])
    if "num_layers" in params and "num_hidden_layers" in conf:
        derived["num_layers"] = int(conf["num_hidden_layers"])
    if "num_attention_heads" in params and "num_attention_heads" in conf:
        derived["num_attention_heads"] = int(conf["num_attention_heads"])
    for key in ("embedding_size", "max_position_embeddings", "type_vocab_size", "generator_size"):
        if key in params and key in conf:  # a head tied to the embedding table takes its width
            derived[key] = conf[key]
    if "max_query_len" in params and "max_query_len" in task["reader"]:
        derived["max_query_len"] = int(task["reader"]["max_query_len"])
    if "num_classes" in params and "num_classes" not in spec:
        count = _num_classes(cfg, name, reader)
        if count is not None:
            derived["num_classes"] = count
    for key, value in derived.items():
        spec.setdefault(key, value)  # recorded in config.yaml
    kwargs = {k: v for k, v in spec.items() if k != "kind"}
    kwargs["phase"] = phase
    _check_required(cfg, ("tasks", name, "head"), cls, params, kwargs)
    return cls(**kwargs)


def _num_classes(cfg: Config, name: str, reader) -> Optional[int]:
    names = label_names(cfg, name)
    if names is not None:
        return max(read_json(cfg.tasks[name]["label_map"]).values()) + 1
    labels = [f["label"] for f in getattr(reader, "_features", None) or [] if "label" in f]
    return max(labels) + 1 if labels and all(isinstance(v, int) for v in labels) else None


def _check_required(cfg: Config, path, cls, params, kwargs) -> None:
    missing = [p for p, (_, default) in params.items() if default is REQUIRED and p not in kwargs]
    if missing:
        raise cfg.error(path, f"{cls.__name__} needs {', '.join(missing)}: add {'them' if len(missing) > 1 else 'it'} "
                              "here (or in `defaults`)")


def load_task_data(cfg: Config, name: str, reader, path: str, batch_size: int, num_epochs=None) -> None:
    """``load_data`` with the task's ``file_format`` (null: from the file's extension for the readers
    of rows) and ``columns``."""
    task = cfg.tasks[name]
    kwargs: Dict[str, Any] = {"batch_size": batch_size, "num_epochs": num_epochs}
    if task["file_format"] is not None:
        kwargs["file_format"] = task["file_format"]
    elif getattr(reader, "reads_rows", False):
        kwargs["file_format"] = "auto"
    if task["columns"] is not None:
        kwargs["columns"] = task["columns"]
    if reader.phase == "train":
        kwargs["shuffle_train"] = task["shuffle_train"]
    reader.load_data(path, **kwargs)


def make_trainer(cfg: Config, name: str):
    import paddlepalm as palm

    task = cfg.tasks[name]
    kwargs: Dict[str, Any] = {"mix_ratio": task["mix_ratio"], "reuse_head_with": task["reuse_head_with"],
                              "micro_batches": task["micro_batches"]}
    for key in ("loss_weight", "lr_multiplier", "clip_norm"):  # features of later versions (config.check_available)
        if task[key] is not None:
            kwargs[key] = task[key]
    trainer = palm.Trainer(name, **kwargs)
    if task["aux"]:
        trainer.set_as_aux()
    return trainer


def make_optimizer(cfg: Config, loss_var, total_steps: int):
    import paddlepalm as palm

    spec, sched_spec = cfg["optimizer"], cfg["schedule"]
    warmup = sched_spec["warmup_steps"]
    if warmup is None:
        warmup = int(sched_spec["warmup_proportion"] * total_steps)
    warmup = min(warmup, total_steps)
    sched = {"triangular": lambda: palm.lr_sched.TriangularSchedualer(warmup, max(total_steps, 1)),
             "warmup": lambda: palm.lr_sched.WarmupSchedualer(warmup), "constant": lambda: None}[sched_spec["kind"]]()
    kwargs = {"grad_clip_norm": spec["grad_clip_norm"]}
    for key in ("backbone_lr_multiplier", "layerwise_lr_decay"):  # features of later versions
        if spec[key] is not None:
            kwargs[key] = spec[key]
    return getattr(palm.optimizer, spec["kind"])(loss_var, spec["lr"], sched, **kwargs)


# ------------------------------------------------------------------ training
def for_training(cfg: Config, run_dir: str) -> Built:
    """Everything ``train()`` needs, in a script's order; the saver writes ``RUN_DIR/checkpoints``
    and the best evaluated weights go to ``RUN_DIR/best``."""
    import numpy as np
    import paddle

    import paddlepalm as palm

    train = cfg["train"]
    paddle.seed(train["seed"])
    np.random.seed(train["seed"])
    names = list(cfg.tasks)
    multi = len(names) > 1
    conf = backbone_config(cfg)
    backbone = make_backbone(cfg, "train")
    readers, trainers = {}, {}
    for name in names:
        readers[name] = make_reader(cfg, name, "train")
        load_task_data(cfg, name, readers[name], cfg.tasks[name]["train_file"], cfg.tasks[name]["batch_size"],
              None if multi else train["epochs"])
        readers[name].register_with(backbone)
        trainers[name] = make_trainer(cfg, name)
        trainers[name].build_forward(backbone, make_head(cfg, name, "train", backbone, conf, readers[name]))
    if multi:
        extra = {key: make_component(key, train[key]) for key in ("schedule", "balancer") if train[key] is not None}
        top = palm.MultiHeadTrainer([trainers[n] for n in names], seed=train["seed"], **extra)
        loss_var = top.build_forward()
        reference = train["sampling_reference"] or next(n for n in names if not cfg.tasks[n]["aux"])
        top.fit_readers_with_mixratio([readers[n] for n in names], reference, train["epochs"],
                                      joint=train["joint"] or None, tasks_per_update=train["tasks_per_update"])
        top.max_steps = train["max_steps"]
        if train["affinity_every"]:
            top.set_affinity(train["affinity_every"])
        total = top.overall_train_steps
    else:
        top = trainers[names[0]]
        loss_var = top.model
        top.fit_reader(readers[names[0]])
        top.max_steps = train["max_steps"]
        total = train["max_steps"] or int(train["epochs"] * readers[names[0]].steps_per_epoch)
    if total < 1:
        raise cfg.error(("train", "epochs"), f"{train['epochs']:g} epochs of {readers[names[0]].steps_per_epoch} "
                                             "batches make no training step")
    spec = cfg["optimizer"]
    top.build_backward(make_optimizer(cfg, loss_var, total), weight_decay=spec["weight_decay"],
                       use_ema=spec["use_ema"], ema_decay=spec["ema_decay"], use_amp=spec["use_amp"],
                       amp_dtype=spec["amp_dtype"])
    built = Built(cfg, backbone, trainers, top, readers, total_steps=total)
    bind_eval_readers(built, backbone, phase="eval")
    if cfg["backbone"]["pretrained"]:
        top.load_pretrain(cfg["backbone"]["pretrained"])
    top.set_saver(os.path.join(run_dir, "checkpoints"), train["save_steps"] or _SAVE_AT_END, train["save_type"],
                  keep_last=train["keep_checkpoints"])
    evaluated = [n for n in built.eval_readers if not cfg.tasks[n]["aux"]]
    if evaluated:
        for name in evaluated:
            trainers[name].set_evaluator(metrics=cfg.tasks[name]["metrics"], target=cfg.tasks[name]["target_metric"],
                                         **({} if multi else _loop_settings(cfg, run_dir)))
        if multi:
            top.set_evaluator(**_loop_settings(cfg, run_dir))
    return built


def _loop_settings(cfg: Config, run_dir: str) -> Dict[str, Any]:
    train = cfg["train"]
    return dict(eval_steps=train["eval_steps"], patience=train["patience"], save_best=train["save_best"],
                best_dir=os.path.join(run_dir, "best"), min_delta=train["min_delta"])


def bind_eval_readers(built: Built, backbone, phase: str, files: Optional[Dict[str, str]] = None) -> None:
    """An evaluation reader per task with a dev file (or ``files[task]``), bound to its trainer."""
    cfg = built.config
    for name, task in cfg.tasks.items():
        path = (files or {}).get(name, task["dev_file"] if files is None else None)
        if path is None:
            continue
        reader = make_reader(cfg, name, phase)
        load_task_data(cfg, name, reader, path, task["dev_batch_size"])
        reader.register_with(backbone)
        built.trainers[name].fit_reader(reader, phase=phase)
        built.eval_readers[name] = reader


# ------------------------------------------------------------------ after training
def for_checkpoint(cfg: Config, checkpoint_path: str, files: Dict[str, str]) -> Built:
    """The training model of the config with ``checkpoint_path``'s weights (``load_ckpt``), each task
    in ``files`` bound to an evaluation reader of that file (evaluation; export's sample inputs)."""
    import paddlepalm as palm

    names = list(cfg.tasks)
    conf = backbone_config(cfg)
    backbone = make_backbone(cfg, "train")
    trainers = {}
    for name in names:
        trainers[name] = make_trainer(cfg, name)
        trainers[name].build_forward(backbone, make_head(cfg, name, "train", backbone, conf))
    if len(names) > 1:
        top = palm.MultiHeadTrainer([trainers[n] for n in names], seed=cfg["train"]["seed"])
        top.build_forward()
    else:
        top = trainers[names[0]]
    built = Built(cfg, backbone, trainers, top)
    bind_eval_readers(built, backbone, phase="eval", files=files)
    for name in built.eval_readers:
        trainers[name].set_evaluator(metrics=cfg.tasks[name]["metrics"], target=cfg.tasks[name]["target_metric"])
    top.load_ckpt(checkpoint_path)
    return built


def head_class(cfg: Config, name: str) -> type:
    """The class of task ``name``'s head (``paddlepalm.head``)."""
    return classes("head")[cfg.tasks[name]["head"]["kind"]]


def exportable(cfg: Config) -> List[str]:
    """Tasks with their own head of a kind the Predictor serves (``Head.servable``), auxiliary
    tasks left out."""
    return [n for n, t in cfg.tasks.items() if not t["aux"] and t["reuse_head_with"] is None
            and head_class(cfg, n).servable]


def exported_alone(cfg: Config, tasks: Sequence[str]) -> List[str]:
    """The tasks among ``tasks`` whose head is exported without other tasks (``Head.exported_alone``: MRC)."""
    return [t for t in tasks if head_class(cfg, t).exported_alone]


def export(built: Built, tasks: Sequence[str], path: str, format: str, runtime: Optional[str] = None,
           allow_lower_precision: bool = False) -> Dict[str, Any]:
    """``tasks`` as one export in ``path``; each gets its label map's class names unless its reader
    names its labels (``Head.labels_named_by_reader``: a tagger's tag map). ``runtime``,
    ``allow_lower_precision``: see ``Trainer.export``."""
    names = {t: label_names(built.config, t) for t in tasks if not head_class(built.config, t).labels_named_by_reader}
    names = {t: n for t, n in names.items() if n is not None}
    options = {"format": format, "runtime": runtime, "allow_lower_precision": allow_lower_precision}
    if built.multi:
        return built.top.export(path, tasks=list(tasks), label_names=names or None, **options)
    return built.top.export(path, label_names=names.get(tasks[0]), **options)


def evaluate(built: Built) -> Dict[str, Dict[str, float]]:
    """Each bound task's metrics on its evaluation reader (the evaluation of training)."""
    model = built.top.model
    return {name: built.trainers[name].task_evaluator().evaluate(model) for name in built.eval_readers}
