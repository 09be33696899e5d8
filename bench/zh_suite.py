"""A small Chinese evaluation suite for pretrained backbones (issue 26), run by one command.

    MKL_NUM_THREADS=1 python bench/zh_suite.py --models mlm=DIR electra=DIR albert=DIR --scratch \\
        --work runs/zh-suite --jobs 2                     # every task, 3 seeds
    python bench/zh_suite.py --models ... --work runs/zh-suite --report   # the table so far, runs nothing
    python bench/zh_suite.py --smoke                      # tiny data and models, one seed (CI)

Each model (a folder with ``config.json``, ``vocab.txt`` and the weights, as the pretraining
examples export it) is fine-tuned on every task; ``--scratch`` adds, for each architecture among
the models, the same architecture from random weights (``scratch-<kind>``), with the same recipe
and vocabulary. Every run selects its checkpoint on the dev split and is scored on the test split
(``palm train`` then ``palm eval --split test``, as the protocol tool runs them).

| task | data set | train | dev (selection) | test | metric |
|---|---|---|---|---|---|
| tnews | CLUE TNEWS, 15 classes | 4000 of train | 1000 of train | 5000 of CLUE dev | accuracy |
| iflytek | FewCLUE IFLYTEK, 119 classes | train_few_all (all) | dev_few_all | test_public | accuracy |
| afqmc | CLUE AFQMC, pairs | 4000 of train | 1000 of train | CLUE dev (all) | accuracy |
| chnsenticorp | sentiment | 4000 of train | 1000 of train | dev (all) | accuracy |
| shopping_cat | online_shopping_10_cats, 10 categories | 4000 of train | 1000 of dev | 5000 of test | accuracy |
| shopping_senti | online_shopping_10_cats, sentiment | 4000 of train | 1000 of dev | 5000 of test | accuracy |
| msra | MSRA NER | 4000 of train | its last 1000 | 2000 of test | entity F1 |
| cmrc2018 | CMRC 2018 | trial, 4/5 of the articles | trial, the rest | the first 1000 questions of dev | F1 |

"4000 of train" is the first 4000 of a shuffle with seed 1, the same for every run; the test
texts are those the pretraining corpus leaves out (``paddlepalm.prepare.pretrain_corpus``).
Results: ``WORK/results.jsonl`` (one record a run; an interrupted suite continues where it
stopped) and ``WORK/summary.md`` (mean ± sample std over the seeds per task, the average over the
tasks as CLUE reports it, and whether each pretrained model is beyond the spread of its scratch twin).
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import random
import statistics
import sys
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import yaml  # noqa: E402

from paddlepalm import protocol  # noqa: E402
from paddlepalm.prepare.reviews import read_reviews  # noqa: E402
from paddlepalm.utils import fileio  # noqa: E402

TASKS = ("tnews", "iflytek", "afqmc", "chnsenticorp", "shopping_cat", "shopping_senti", "msra", "cmrc2018")
SMOKE_TASKS = ["tnews", "cmrc2018"]  # the full set ran with --smoke --tasks ... once; two keep CI short
DATA_SETS = ("tnews", "iflytek_fewclue", "afqmc", "chnsenticorp", "online_shopping_10_cats", "msra_ner", "cmrc2018")
SIZES = {"train": 4000, "dev": 1000, "test": 5000, "msra_test": 2000, "mrc_test": 1000}
SMOKE_SIZES = {"train": 48, "dev": 16, "test": 16, "msra_test": 16, "mrc_test": 16}

# the fine-tuning recipe, the same for every model and its scratch twin
RECIPE = {"optimizer": {"kind": "AdamW", "lr": 3e-4, "weight_decay": 0.01},
          "schedule": {"kind": "triangular", "warmup_proportion": 0.1}}
EPOCHS = {"classify": 3, "match": 3, "tag": 3, "mrc": 2}


# ------------------------------------------------------------------------------ data
def _shuffled(rows: list, seed: int = 1) -> list:
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    return rows


def _tsv(path: str, header: Sequence[str], rows) -> None:
    lines = ["\t".join(header)] + ["\t".join(" ".join(str(f).split()) for f in row) for row in rows]
    fileio.write_text(path, "\n".join(lines) + "\n")


def _classify(out: str, train: list, dev: list, test: list) -> None:
    """ClassifyReader files; class names (not ids) get a ``label_map.json`` over every split's names
    (the label set is known in advance; no text is involved)."""
    os.makedirs(out, exist_ok=True)
    labels = sorted({row[0] for rows in (train, dev, test) for row in rows})
    if not all(label.isdigit() for label in labels):
        fileio.write_json(os.path.join(out, "label_map.json"), {label: i for i, label in enumerate(labels)})
    for name, rows in (("train", train), ("dev", dev), ("test", test)):
        _tsv(os.path.join(out, f"{name}.tsv"), ["label", "text_a"], rows)


def _rows(path: str, width: int, skip_header: bool = False) -> List[List[str]]:
    """The tab-separated fields of each non-blank line (the first ``width``); a shorter line raises
    DataFormatError naming the file and the line."""
    from paddlepalm.reader.errors import DataFormatError

    out = []
    for number, line in enumerate(fileio.read_lines(path), 1):
        if (skip_header and number == 1) or not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < width:
            raise DataFormatError(path, number, f"expected {width} tab-separated fields, found {len(fields)}")
        out.append(fields[:width])
    return out


def _tnews(root: str) -> Tuple[list, list]:
    folder = os.path.join(root, "tnews")
    def rows(name):
        return [(label, text) for text, label in _rows(os.path.join(folder, name), 2)]
    return rows("train.tsv"), rows("dev.tsv")


def _iflytek(root: str, name: str) -> list:
    return [(str(r["label"]), r["sentence"]) for r in fileio.read_json_lines(os.path.join(root, "iflytek_fewclue", name))]


def _afqmc(root: str, name: str) -> list:
    return [tuple(fields) for fields in _rows(os.path.join(root, "afqmc", name), 3)]


def _chnsenticorp(root: str, name: str) -> list:
    lines = fileio.read_lines(os.path.join(root, "chnsenticorp", name))
    header = lines[0].split("\t")
    return [(f[header.index("label")], f[header.index("text_a")]) for f in (line.split("\t") for line in lines[1:])]


def _msra(root: str, name: str) -> list:
    import zipfile

    path = os.path.join(root, "msra_ner", "MSRA.zip")
    with zipfile.ZipFile(path) as archive:
        text = fileio.decode_utf8(f"{path}:MSRA/{name}", archive.read(f"MSRA/{name}"))
    sentences = []
    for line in text.split("\n"):
        chars, tags = [], []
        for token in line.split():
            word, _, tag = token.rpartition("/")
            for i, char in enumerate(word):
                chars.append(char)
                tags.append("O" if tag == "o" else ("B-" if i == 0 else "I-") + tag.upper())
        if chars:
            sentences.append((chars, tags))
    return sentences


def _tagging(out: str, splits: Dict[str, list]) -> None:
    os.makedirs(out, exist_ok=True)
    tags = sorted({t for _, ts in splits["train"] for t in ts}, key=lambda t: (t != "O", t))
    fileio.write_json(os.path.join(out, "label_map.json"), {t: i for i, t in enumerate(tags)})
    for name, rows in splits.items():
        _tsv(os.path.join(out, f"{name}.tsv"), ["text_a", "label"],
             (("\x02".join(c), "\x02".join(t)) for c, t in rows))


def _cmrc(root: str, out: str, sizes: Dict[str, int]) -> None:
    os.makedirs(out, exist_ok=True)
    trial = fileio.read_json(os.path.join(root, "cmrc2018", "cmrc2018_trial.json"))["data"]
    test = fileio.read_json(os.path.join(root, "cmrc2018", "cmrc2018_dev.json"))["data"]
    articles = _shuffled(trial)
    cut = len(articles) * 4 // 5
    splits = {"train": articles[:cut], "dev": articles[cut:], "test": _first_questions(test, sizes["mrc_test"])}
    if sizes is SMOKE_SIZES:
        splits = {name: _first_questions(articles, sizes[name]) for name, articles in splits.items()}
    for name, data in splits.items():
        fileio.write_json(os.path.join(out, f"{name}.json"), {"version": name, "data": data})


def _first_questions(articles: list, count: int) -> list:
    out = []
    for article in articles:
        for paragraph in article["paragraphs"]:
            if count <= 0:
                return out
            qas = paragraph["qas"][:count]
            count -= len(qas)
            out.append({**article, "paragraphs": [{**paragraph, "qas": qas}]})
    return out


def prepare(root: str, out: str, sizes: Dict[str, int] = SIZES) -> Dict[str, Dict[str, int]]:
    """Every task's files under ``out/<task>/``; returns the examples per split."""
    n, d, t = sizes["train"], sizes["dev"], sizes["test"]
    tnews_train, tnews_dev = _tnews(root)
    tnews_train = _shuffled(tnews_train)
    _classify(os.path.join(out, "tnews"), tnews_train[:n], tnews_train[n:n + d], _shuffled(tnews_dev)[:t])
    _classify(os.path.join(out, "iflytek"), _shuffled(_iflytek(root, "train_few_all.json"))[:n],
              _iflytek(root, "dev_few_all.json")[:d], _iflytek(root, "test_public.json")[:t])
    afqmc = _shuffled(_afqmc(root, "train.txt"))
    os.makedirs(os.path.join(out, "afqmc"), exist_ok=True)
    for name, rows in (("train", afqmc[:n]), ("dev", afqmc[n:n + d]), ("test", _afqmc(root, "dev.txt")[:t])):
        _tsv(os.path.join(out, "afqmc", f"{name}.tsv"), ["text_a", "text_b", "label"], rows)
    senti = _shuffled(_chnsenticorp(root, "train.tsv"))
    _classify(os.path.join(out, "chnsenticorp"), senti[:n], senti[n:n + d], _chnsenticorp(root, "dev.tsv")[:t])
    shop = {name: read_reviews(os.path.join(root, "online_shopping_10_cats", f"{name}.csv"))
            for name in ("train", "dev", "test")}
    shop = {"train": _shuffled(shop["train"])[:n], "dev": _shuffled(shop["dev"])[:d],
            "test": _shuffled(shop["test"])[:t]}
    _classify(os.path.join(out, "shopping_cat"), *[[(c, text) for c, _, text in shop[s]] for s in shop])
    _classify(os.path.join(out, "shopping_senti"), *[[(s_, text) for _, s_, text in shop[s]] for s in shop])
    msra = _msra(root, "train.txt")
    _tagging(os.path.join(out, "msra"), {"train": _shuffled(msra[:-1000])[:n], "dev": msra[-1000:][:d],
                                         "test": _shuffled(_msra(root, "test_with_label.txt"))[:sizes["msra_test"]]})
    _cmrc(root, os.path.join(out, "cmrc2018"), sizes)
    counts = {}
    for task in TASKS:
        folder = os.path.join(out, task)
        counts[task] = {name.split(".")[0]: _count(os.path.join(folder, name)) for name in sorted(os.listdir(folder))
                        if name.split(".")[0] in ("train", "dev", "test")}
    fileio.write_json(os.path.join(out, "counts.json"), counts)
    return counts


def _count(path: str) -> int:
    if path.endswith(".json"):
        return sum(len(p["qas"]) for a in fileio.read_json(path)["data"] for p in a["paragraphs"])
    return len(fileio.read_lines(path)) - 1


# ------------------------------------------------------------------------------ configs
def task_section(task: str, data: str, vocab: str, smoke: bool) -> Tuple[str, Dict[str, Any]]:
    """(kind, the config's task entry) of one suite task."""
    folder = os.path.join(data, task)
    files = {"vocab": vocab, "train_file": os.path.join(folder, "train.tsv"),
             "dev_file": os.path.join(folder, "dev.tsv"), "test_file": os.path.join(folder, "test.tsv")}
    short = 32 if smoke else 128
    if task == "afqmc":
        return "match", {"reader": {"kind": "MatchReader", "max_len": 32 if smoke else 64, "lang": "cn",
                                    "learning_strategy": "pointwise"},
                         "head": {"kind": "Match", "dropout_prob": 0.1, "learning_strategy": "pointwise"},
                         **files, "target_metric": "accuracy"}
    if task == "msra":
        return "tag", {"reader": {"kind": "SequenceLabelReader", "max_len": short, "lang": "cn"},
                       "head": {"kind": "SequenceLabel", "dropout_prob": 0.1, "learning_rate": 1.0},
                       "label_map": os.path.join(folder, "label_map.json"), **files, "target_metric": "entity_f1"}
    if task == "cmrc2018":
        files.update({k: v.replace(".tsv", ".json") for k, v in files.items() if k.endswith("_file")})
        return "mrc", {"reader": {"kind": "MRCReader", "max_len": 64 if smoke else 256, "max_query_len": 32,
                                  "doc_stride": 128, "lang": "cn"},
                       "head": {"kind": "MRC", "max_ans_len": 50}, **files, "batch_size": 4 if smoke else 16,
                       "target_metric": "f1"}
    max_len = 32 if smoke else (64 if task == "tnews" else 128)
    if os.path.exists(os.path.join(folder, "label_map.json")):
        files["label_map"] = os.path.join(folder, "label_map.json")
    return "classify", {"reader": {"kind": "ClassifyReader", "max_len": max_len, "lang": "cn"},
                        "head": {"kind": "Classify", "dropout_prob": 0.1}, **files, "target_metric": "accuracy"}


def write_config(path: str, task: str, model_dir: str, pretrained: bool, data: str, smoke: bool) -> str:
    config_json = fileio.read_json(os.path.join(model_dir, "config.json"))
    kind, section = task_section(task, data, os.path.join(model_dir, "vocab.txt"), smoke)
    config = {"backbone": {"kind": config_json["backbone"].upper(), "config_file": os.path.join(model_dir, "config.json"),
                           "pretrained": model_dir if pretrained else None},
              **RECIPE,
              "train": {"epochs": 1 if smoke else EPOCHS[kind], "seed": 1, "print_steps": 50,
                        "eval_steps": 10 if smoke else 100, "patience": 5},
              "tasks": {task: section}}
    fileio.write_text(path, yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return path


# ------------------------------------------------------------------------------ the suite
class Suite:
    def __init__(self, models: Dict[str, str], scratch: bool, tasks: Sequence[str], seeds: Sequence[int], work: str,
                 data_root: str, smoke: bool = False):
        self.work, self.tasks, self.seeds, self.smoke = os.path.abspath(work), list(tasks), list(seeds), smoke
        self.inits: Dict[str, Tuple[str, bool]] = {name: (os.path.abspath(path), True) for name, path in models.items()}
        self.twin: Dict[str, str] = {}
        if scratch:
            for name, path in models.items():
                kind = fileio.read_json(os.path.join(path, "config.json"))["backbone"]
                architecture = _architecture(os.path.join(path, "config.json"))
                twin = f"scratch-{kind}"
                previous = self.inits.get(twin)
                if previous and _architecture(os.path.join(previous[0], "config.json")) != architecture:
                    twin = f"scratch-{name}"
                self.inits.setdefault(twin, (os.path.abspath(path), False))
                self.twin[name] = twin
        self.data = os.path.join(self.work, "data")
        self.data_root = data_root
        self.results_path = os.path.join(self.work, "results.jsonl")
        self.results = {r["key"]: r for r in fileio.read_json_lines(self.results_path)} \
            if os.path.exists(self.results_path) else {}
        self._lock = threading.Lock()

    def prepare(self) -> None:
        if not os.path.exists(os.path.join(self.data, "counts.json")):
            counts = prepare(self.data_root, self.data, SMOKE_SIZES if self.smoke else SIZES)
            print(f"suite data: {json.dumps(counts)}", file=sys.stderr, flush=True)

    def runs(self) -> List[Tuple[str, protocol.Run]]:
        out = []
        for task in self.tasks:
            for init, (model_dir, pretrained) in self.inits.items():
                config = write_config(os.path.join(self.work, "configs", f"{task}.{init}.yaml"), task, model_dir,
                                      pretrained, self.data, self.smoke)
                digest = hashlib.sha256((fileio.read_text(config) + _weights_digest(model_dir, pretrained)).encode())
                for seed in self.seeds:
                    run = protocol.Run("suite", f"{task}/{init}", seed, os.path.join(self.work, "runs", task, init,
                                                                                     f"seed{seed}"),
                                       [config, "-o", f"train.seed={seed}"])
                    out.append((f"{run.key}/{digest.hexdigest()[:12]}", run))
        return out

    def run(self, jobs: int = 1) -> None:
        self.prepare()
        todo = [(key, run) for key, run in self.runs() if key not in self.results]
        print(f"suite: {len(todo)} runs to do, {len(self.results)} done", file=sys.stderr, flush=True)
        with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
            futures = {pool.submit(protocol.execute, run, os.path.join(self.work, "logs")): key for key, run in todo}
            for future in concurrent.futures.as_completed(futures):
                record = dict(future.result(), key=futures[future])
                with self._lock:
                    self.results[record["key"]] = record
                    fileio.write_json_lines(self.results_path, list(self.results.values()))
                task, init = record["name"].split("/")
                print(f"{record['name']} seed {record['seed']}: {self.score(record, task):.2f} "
                      f"({record['cpu_minutes']} CPU-min)", file=sys.stderr, flush=True)
        fileio.write_text(os.path.join(self.work, "summary.md"), self.summary())

    @staticmethod
    def score(record: Dict[str, Any], task: str) -> float:
        result = record["test"][task]
        return 100 * float(result[record["target_metrics"][task]])

    def finished(self) -> List[Dict[str, Any]]:
        """The records of this suite's runs that are done (with its current configs and weights)."""
        keys = {key for key, _ in self.runs()}
        return [record for key, record in self.results.items() if key in keys]

    def table(self) -> Dict[str, Dict[str, Dict[int, float]]]:
        """{init: {task: {seed: score}}} over the finished runs."""
        table: Dict[str, Dict[str, Dict[int, float]]] = {init: {task: {} for task in self.tasks} for init in self.inits}
        for record in self.finished():
            task, init = record["name"].split("/")
            table[init][task][int(record["seed"])] = self.score(record, task)
        return table

    def summary(self) -> str:
        done = self.finished()
        cpu = sum(r["cpu_minutes"] for r in done)
        lines = [f"# Chinese evaluation suite ({len(self.seeds)} seeds: {self.seeds})", "",
                 f"{len(done)} of {len(self.runs())} runs, {cpu:.0f} CPU-minutes; {protocol.cpu_flags()}. Test scores "
                 "(dev-selected), mean ± sample std over the seeds; the average is over the tasks, per seed, "
                 "once every task has every seed. **Bold**: above its scratch twin beyond the spread "
                 "(the difference of the means > the two stds summed; two seeds or more a side); *italic*: "
                 "below it beyond the spread.", ""]
        return "\n".join(lines + format_table(self.table(), self.twin, self.tasks, self.seeds)) + "\n"


def format_table(table: Dict[str, Dict[str, Dict[int, float]]], twins: Dict[str, str], tasks: Sequence[str],
                 seeds: Sequence[int]) -> List[str]:
    """The suite's markdown table: a row per model ({init: {task: {seed: score}}}), a column per task
    and the average; a cell missing seeds says how many it has."""
    lines = ["| model | " + " | ".join(tasks) + " | average |", "|---" * (len(tasks) + 2) + "|"]
    averages = {init: _seed_averages(per_task, tasks, seeds) for init, per_task in table.items()}
    for init, per_task in table.items():
        twin = twins.get(init)
        cells = []
        for task in tasks:
            base = list(table[twin][task].values()) if twin in table else []
            cells.append(_cell(list(per_task[task].values()), base, len(seeds)))
        base = averages.get(twin) or []
        cells.append(_cell(averages[init], base, len(seeds)) if averages[init] else "-")
        lines.append(f"| {init} | " + " | ".join(cells) + " |")
    return lines


def _seed_averages(per_task: Dict[str, Dict[int, float]], tasks: Sequence[str], seeds: Sequence[int]) -> List[float]:
    """The average over the tasks for each seed, once every task has every seed (else none)."""
    if not all(seed in per_task[task] for task in tasks for seed in seeds):
        return []
    return [statistics.mean(per_task[task][seed] for task in tasks) for seed in seeds]


def _cell(values: List[float], base: List[float], seeds: int) -> str:
    cell = protocol.mean_std(values)
    if 0 < len(values) < seeds:
        cell += f" ({len(values)}/{seeds} seeds)"
    if values and base and _beyond(values, base):
        cell = f"**{cell}**" if statistics.mean(values) > statistics.mean(base) else f"*{cell}*"
    return cell


def _architecture(config_path: str) -> str:
    return json.dumps(fileio.read_json(config_path), sort_keys=True)


def _weights_digest(model_dir: str, pretrained: bool) -> str:
    """What decides a run besides its config: the pretrained weights' checksums (none for scratch)."""
    if not pretrained:
        return ""
    sums = []
    for folder, _, names in sorted(os.walk(model_dir)):
        for name in sorted(names):
            if name.endswith((".pdparams", ".pdopt")) or name == "model_state.pdparams":
                sums.append(fileio.sha256_of(os.path.join(folder, name)))
    return ",".join(sums)


def _beyond(values: Sequence[float], base: Sequence[float]) -> bool:
    """Whether the means differ by more than the two sample stds summed (needs two seeds a side)."""
    if len(values) < 2 or len(base) < 2:
        return False
    spread = protocol.sample_std(values) + protocol.sample_std(base)
    return abs(statistics.mean(values) - statistics.mean(base)) > spread


def _smoke_models(work: str) -> Dict[str, str]:
    """A tiny ELECTRA backbone exported untrained, with the suite's vocabulary built from its data."""
    import paddle

    import paddlepalm as palm
    from paddlepalm import checkpoint
    from paddlepalm.model import MultiTaskModel
    from paddlepalm.utils.vocab import build_char_vocab, write_vocab

    folder = os.path.join(work, "smoke-model")
    if os.path.exists(os.path.join(folder, "config.json")):
        return {"tiny": folder}
    texts = []
    for task in TASKS:
        for name in os.listdir(os.path.join(work, "data", task)):
            texts.extend(fileio.read_lines(os.path.join(work, "data", task, name)))
    vocab = build_char_vocab(texts, max_size=3000, min_freq=1)
    config = {"backbone": "electra", "vocab_size": len(vocab), "embedding_size": 16, "hidden_size": 32,
              "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64, "hidden_act": "gelu",
              "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512,
              "type_vocab_size": 2, "initializer_range": 0.02}
    paddle.seed(1)
    checkpoint.save_checkpoint(folder, MultiTaskModel(palm.backbone.ELECTRA.from_config(config), {}), None, {})
    write_vocab(vocab, os.path.join(folder, "vocab.txt"))  # after the checkpoint, which writes its folder anew
    fileio.write_json(os.path.join(folder, "config.json"), config)
    return {"tiny": folder}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="*", default=[], help="NAME=FOLDER of each pretrained model")
    p.add_argument("--scratch", action="store_true", help="add each architecture from random weights")
    p.add_argument("--tasks", nargs="*", default=list(TASKS), choices=TASKS)
    p.add_argument("--seeds", nargs="*", type=int, default=[1, 2, 3])
    p.add_argument("--work", default=None)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--data_root", default=protocol.data_root())
    p.add_argument("--report", action="store_true", help="print the summary of the runs finished so far (from "
                   "WORK/results.jsonl) and run nothing: a long suite's progress")
    p.add_argument("--smoke", action="store_true", help="tiny data of every task, an untrained tiny model and its "
                   "twin, one seed, on TNEWS and CMRC 2018 unless --tasks")
    a = p.parse_args(argv)
    missing = [folder for folder in DATA_SETS if not os.path.isdir(os.path.join(a.data_root, folder))]
    if missing:
        print(f"zh_suite: skipped (the data root {a.data_root} lacks {missing}; set PALM_DATA_ROOT)", flush=True)
        return 0
    if a.smoke:
        import tempfile

        work = a.work or tempfile.mkdtemp(prefix="zh_suite_smoke_")
        tasks = a.tasks if a.tasks != list(TASKS) else SMOKE_TASKS
        suite = Suite({}, False, tasks, [1], work, a.data_root, smoke=True)
        suite.prepare()
        suite = Suite(_smoke_models(suite.work), True, tasks, [1], work, a.data_root, smoke=True)
        a.jobs = max(a.jobs, 2)
    else:
        if not a.models or not a.work:
            p.error("give --models NAME=FOLDER ... and --work (or --smoke)")
        models = dict(m.split("=", 1) for m in a.models)
        suite = Suite(models, a.scratch, a.tasks, a.seeds, a.work, a.data_root)
    if not a.report:
        suite.run(a.jobs)
    print(suite.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
