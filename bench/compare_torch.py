"""paddlepalm vs a plain PyTorch + transformers training script: same model, data and batches.

    python bench/compare_torch.py --data_root $PALM_DATA_ROOT --steps 40 --repeats 3
    python bench/compare_torch.py --smoke     # seconds: generated data (bench/smoke_data.py), a tiny model, 2 steps

Needs the optional bench dependencies ``torch`` and ``transformers`` (never used by
the package); without them the torch runs are skipped with a note. Two workloads:

* ``chnsenticorp``: classification of ChnSentiCorp train (char vocabulary built from
  it, max length 128), one ``Classify`` task;
* ``atis``: joint slot filling (CRF) + intent classification on ATIS (vocabulary of
  examples/multi-task/prepare_data.py, max length 64), a ``MultiHeadTrainer`` with both
  tasks 1:1; each step trains one task, as in paddlepalm.

Model: BERT/ERNIE with 4 layers, hidden 256, 4 heads, intermediate 1024, vocabulary
21128 (the embedding table size of the issue; ATIS uses its own small vocabulary),
dropout 0.1, AdamW (lr 1e-4, weight decay 0.01), batch 32.

The main process reads the data once with paddlepalm's readers and writes the
features and the exact batch order (and the multi-task schedule) to a pickle. Each
measured run is a fresh subprocess (no thread-pool interference between the two
libraries): the paddlepalm run trains through the public API (``Trainer.train`` /
``MultiHeadTrainer.train``, batches produced by the readers during training) and
checks that it sees the same batches; the PyTorch run collates the same features
into the same batches itself (dynamic padding to the batch maximum, as a competent
user would), ``torch.set_num_threads(cores)``, ``BertModel`` (sdpa attention),
``clip_grad_norm_(1.0)`` (paddlepalm's optimizers clip the global norm at 1.0, as does
Hugging Face's ``Trainer``: the same work), optional ``torch.autocast('cpu', torch.bfloat16)``. Runs alternate (paddle, torch fp32, torch
bf16, paddle, ...); the median over repeats is reported. paddlepalm runs twice: as
installed, and "before": an older checkout given by ``--before_root`` (e.g. ``git worktree
add /tmp/palm_before f0cb52b``), or by default this checkout with Paddle's own CPU kernels
(``FLAGS_use_stride_kernel=1 PALM_CPU_KERNELS=none``). With ``--dp`` a fifth run
trains paddlepalm as 2 data-parallel processes of 1 thread each, on the same
global batches (paddle.distributed.launch, gloo). Time counts from the first
step to the end of the last (data collation included, file reading and model
construction not).
"""
import argparse
import importlib.util
import itertools
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORK = os.path.join("/tmp", "palm_bench_compare")
CONFIG = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024,
          "vocab_size": 21128, "type_vocab_size": 2, "max_position_embeddings": 512,
          "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}
SMOKE_CONFIG = dict(CONFIG, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
LR, WEIGHT_DECAY, DROPOUT = 1e-4, 0.01, 0.1


def cores() -> int:
    return len(os.sched_getaffinity(0))


# ----------------------------------------------------------------------------- data
def import_palm():
    sys.path.insert(0, os.environ.get("PALM_BENCH_ROOT", ROOT))  # --before_root: an older checkout
    sys.path.insert(0, os.path.join(ROOT, "examples", "multi-task"))
    import paddlepalm as palm
    return palm


def per_device_batch() -> int:
    """32 per step in all: under paddle.distributed.launch each of N ranks reads 32 / N."""
    return 32 // int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))


def chn_readers(palm, data_root, work=WORK):
    vocab = os.path.join(work, "chnsenticorp", "vocab.txt")
    reader = palm.reader.ClassifyReader(vocab, 128, seed=1, lang="cn")
    reader.load_data(os.path.join(data_root, "chnsenticorp", "train.tsv"), batch_size=per_device_batch())
    return {"cls": reader}, {"cls": 2}


def atis_readers(palm, data_root, work=WORK):
    data = os.path.join(work, "atis")
    with open(os.path.join(data, "sizes.json")) as f:
        sizes = json.load(f)
    vocab = os.path.join(data, "vocab.txt")
    slot = palm.reader.SequenceLabelReader(vocab, 64, os.path.join(data, "label_map.json"), seed=1,
                                           do_lower_case=True)
    slot.load_data(os.path.join(data, "slot", "train.tsv"), batch_size=per_device_batch())
    intent = palm.reader.ClassifyReader(vocab, 64, do_lower_case=True, seed=1)
    intent.load_data(os.path.join(data, "intent", "train.tsv"), batch_size=per_device_batch())
    return {"slot": slot, "intent": intent}, {"slot": sizes["slot_classes"], "intent": sizes["intent_classes"]}


WORKLOADS = {"chnsenticorp": chn_readers, "atis": atis_readers}


def prepare(data_root: str, steps: int, work: str = WORK) -> None:
    """Vocabularies, converted ATIS files, and per workload a pickle of features and batches, in ``work``."""
    palm = import_palm()
    import prepare_data
    from paddlepalm.sampling.draws import draw_task_order, task_budgets
    from paddlepalm.utils.vocab import build_char_vocab, write_vocab
    from paddlepalm.reader.tsv import read_tsv
    os.makedirs(os.path.join(work, "chnsenticorp"), exist_ok=True)
    train = os.path.join(data_root, "chnsenticorp", "train.tsv")
    write_vocab(build_char_vocab((row["text_a"] for _, row in read_tsv(train, ["text_a", "label"])), max_size=21128),
                os.path.join(work, "chnsenticorp", "vocab.txt"))
    sizes = prepare_data.convert(os.path.join(data_root, "atis"), os.path.join(work, "atis"))
    with open(os.path.join(work, "atis", "sizes.json"), "w") as f:
        json.dump(sizes, f)
    for name, build in WORKLOADS.items():
        readers, classes = build(palm, data_root, work)
        tasks = list(readers)
        if len(tasks) == 1:
            schedule = [0] * steps
        else:
            first = readers[tasks[0]]
            budgets = task_budgets(steps / len(tasks) / first.steps_per_epoch, [1.0] * len(tasks), 0,
                                   first.steps_per_epoch)
            schedule = draw_task_order([1.0] * len(tasks), budgets, [False] * len(tasks), seed=0).tolist()
        iters = {t: epochs(r) for t, r in readers.items()}
        batches = []
        for index in schedule:
            task = tasks[index]
            batches.append((task, next(iters[task])["example_ids"].tolist()))
        features = {t: r.features for t, r in readers.items()}
        with open(os.path.join(work, f"{name}.pkl"), "wb") as f:
            pickle.dump({"tasks": tasks, "classes": classes, "schedule": schedule, "batches": batches,
                         "features": features}, f)


def epochs(reader):
    """The reader's training batches, epoch after epoch, as a ``Trainer`` draws them."""
    for epoch in itertools.count():
        yield from reader.iter_epoch(epoch)


def prepared(data_root: str, work: str = WORK) -> str:
    """``work``, prepared by :func:`prepare` unless it already was (bench/memory.py, bench/reader_speed.py)."""
    if not os.path.exists(os.path.join(work, "atis", "sizes.json")):
        prepare(data_root, 30, work)
    return work


# ------------------------------------------------------------------------ workers
def paddle_worker(workload: str, data_root: str, work: str, steps: int, cfg: dict) -> dict:
    palm = import_palm()
    import paddle
    with open(os.path.join(work, f"{workload}.pkl"), "rb") as f:
        plan = pickle.load(f)
    paddle.seed(0)
    readers, classes = WORKLOADS[workload](palm, data_root, work)
    backbone = palm.backbone.ERNIE.from_config(cfg)
    trainers = {}
    for task in plan["tasks"]:
        trainers[task] = palm.Trainer(task)
        head = (palm.head.SequenceLabel(classes[task], cfg["hidden_size"], DROPOUT) if task == "slot"
                else palm.head.Classify(classes[task], cfg["hidden_size"], DROPOUT))
        trainers[task].build_forward(backbone, head)
    seen = []
    for task, reader in readers.items():  # record the batches the trainer draws
        original = reader.iter_epoch

        def iter_epoch(epoch=0, skip_batches=0, _orig=original, _task=task):
            for batch in _orig(epoch, skip_batches):
                seen.append((_task, batch["example_ids"].tolist()))
                yield batch
        reader.iter_epoch = iter_epoch
    if len(trainers) == 1:
        trainer = trainers[plan["tasks"][0]]
        model = trainer.model
        trainer.build_backward(palm.optimizer.Adam(model, LR), weight_decay=WEIGHT_DECAY)
        reader = readers[plan["tasks"][0]]
        trainer.fit_reader(reader)
        reader.num_epochs = steps / reader.steps_per_epoch
    else:
        trainer = palm.MultiHeadTrainer([trainers[t] for t in plan["tasks"]])
        model = trainer.build_forward()
        trainer.build_backward(palm.optimizer.Adam(model, LR), weight_decay=WEIGHT_DECAY)
        first = readers[plan["tasks"][0]]
        trainer.fit_readers_with_mixratio([readers[t] for t in plan["tasks"]], plan["tasks"][0],
                                          steps / len(trainers) / (first.num_examples // 32))  # global batches of 32
        assert trainer.overall_train_steps == len(plan["schedule"]), "multi-task plan differs from the planned steps"
    start = time.perf_counter()
    trainer.train(print_steps=0)
    seconds = time.perf_counter() - start
    # A generator may read one batch ahead of the step that uses it.
    planned = [tuple(b) for b in plan["batches"]]
    if per_device_batch() < 32:  # data parallel: each step's ids are this rank's slice of the planned batch
        assert all(task == p_task and set(ids) <= set(p_ids)
                   for (task, ids), (p_task, p_ids) in zip(seen[:steps], planned)), "batches differ"
    else:
        assert seen[:len(planned)] == planned or \
            sorted(map(str, seen[:steps])) == sorted(map(str, planned)), "batches differ"
    return {"seconds": seconds, "steps": steps}


def torch_worker(workload: str, work: str, steps: int, bf16: bool, cfg: dict) -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from transformers import BertConfig, BertModel
    torch.set_num_threads(cores())
    torch.manual_seed(0)
    with open(os.path.join(work, f"{workload}.pkl"), "rb") as f:
        plan = pickle.load(f)
    features, classes = plan["features"], plan["classes"]
    bert = BertModel(BertConfig(**cfg, attn_implementation="sdpa"))
    heads = torch.nn.ModuleDict({t: torch.nn.Linear(cfg["hidden_size"], classes[t]) for t in plan["tasks"]})
    transitions = torch.nn.Parameter(torch.empty(classes.get("slot", 1) + 2, classes.get("slot", 1)).uniform_(-0.1, 0.1))
    dropout = torch.nn.Dropout(DROPOUT)
    params = list(bert.parameters()) + list(heads.parameters()) + ([transitions] if "slot" in classes else [])
    optimizer = torch.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY)

    def collate(task, indices):
        feats = [features[task][i] for i in indices]
        width = max(len(f["token_ids"]) for f in feats)
        ids = np.zeros((len(feats), width), dtype="int64")
        segs = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        for row, f in enumerate(feats):
            n = len(f["token_ids"])
            ids[row, :n], segs[row, :n], mask[row, :n] = f["token_ids"], f["segment_ids"], 1
        batch = {"input_ids": torch.from_numpy(ids), "token_type_ids": torch.from_numpy(segs),
                 "attention_mask": torch.from_numpy(mask)}
        if task == "slot":
            words = max(1, max(len(f["word_starts"]) for f in feats))
            starts = np.zeros((len(feats), words), dtype="int64")
            labels = np.zeros_like(starts)
            counts = np.zeros((len(feats),), dtype="int64")
            for row, f in enumerate(feats):
                n = len(f["word_starts"])
                starts[row, :n], labels[row, :n], counts[row] = f["word_starts"], f["labels"], n
            batch.update(starts=torch.from_numpy(starts), labels=torch.from_numpy(labels),
                         counts=torch.from_numpy(counts).clamp(min=1))
        else:
            batch["labels"] = torch.tensor([f["label"] for f in feats])
        return batch

    def crf_nll(emissions, labels, lengths):
        start, stop, trans = transitions[0], transitions[1], transitions[2:]
        b, t, k = emissions.shape
        mask = (torch.arange(t)[None] < lengths[:, None]).float()
        gold = emissions.gather(2, labels[..., None]).squeeze(-1)
        gold = (gold * mask).sum(1) + start[labels[:, 0]]
        if t > 1:
            gold = gold + (trans[labels[:, :-1], labels[:, 1:]] * mask[:, 1:]).sum(1)
        gold = gold + stop[labels.gather(1, (lengths - 1)[:, None]).squeeze(1)]
        alpha = start[None] + emissions[:, 0]
        for i in range(1, t):
            new = torch.logsumexp(alpha[:, :, None] + trans[None] + emissions[:, i, None], dim=1)
            keep = mask[:, i, None]
            alpha = new * keep + alpha * (1 - keep)
        return (torch.logsumexp(alpha + stop[None], dim=1) - gold).mean()

    bert.train()
    start_time = time.perf_counter()
    for task, indices in plan["batches"][:steps]:
        batch = collate(task, indices)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = bert(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                       attention_mask=batch["attention_mask"])
            if task == "slot":
                hidden = out.last_hidden_state
                words = hidden.gather(1, batch["starts"][..., None].expand(-1, -1, hidden.shape[-1]))
                emissions = heads[task](dropout(words)).float()
                loss = crf_nll(emissions, batch["labels"], batch["counts"])
            else:
                loss = F.cross_entropy(heads[task](dropout(out.pooler_output)).float(), batch["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)  # paddlepalm's optimizers clip at 1.0, as HF's Trainer does
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - start_time
    return {"seconds": seconds, "steps": steps, "torch": torch.__version__,
            "transformers": __import__("transformers").__version__}


# Paddle's own kernels, as before the CPU speed work (paddlepalm/utils/cpu_speed.py, runtime.py).
BEFORE_ENV = {"FLAGS_use_stride_kernel": "1", "PALM_CPU_KERNELS": "none"}
RUNS = [("paddlepalm fp32 before", "paddle", False, BEFORE_ENV), ("paddlepalm fp32", "paddle", False, {}),
        ("torch fp32", "torch", False, {}), ("torch bf16", "torch", True, {})]
DP_RUN = ("paddlepalm fp32, 2 processes", "paddle-dp", False, {"MKL_NUM_THREADS": "1"})
SMOKE_RUNS = ("paddlepalm fp32", "torch fp32")


def run_worker(args, system: str, workload: str, bf16: bool = False, env_changes: dict = None) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", system, "--workload", workload,
           "--data_root", args.data_root, "--work", args.work, "--steps", str(args.steps)] + \
        (["--bf16"] if bf16 else []) + (["--smoke"] if args.smoke else [])
    if system == "paddle-dp":  # one process per core, 1 thread each; rank 0 writes the result
        result_file = os.path.join(args.work, "dp_result.json")
        cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
               "--log_dir", os.path.join(args.work, "dp_logs")] + cmd[1:3] + ["paddle"] + cmd[4:] + \
            ["--result_file", result_file]
    env = dict(os.environ, **(env_changes or {}))
    if env_changes and args.before_root:  # the "before" run: that checkout, with Paddle's defaults
        env["PALM_BENCH_ROOT"] = os.path.abspath(args.before_root)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    if system == "paddle-dp":
        with open(result_file) as f:
            return json.load(f)
    return json.loads(out.stdout.strip().splitlines()[-1])


def missing_torch() -> list:
    """The optional bench dependencies of the torch runs that are not installed."""
    return [name for name in ("torch", "transformers") if importlib.util.find_spec(name) is None]


def chosen_runs(args) -> list:
    """The runs of this invocation; the torch runs are left out, with a note, without torch. --smoke runs
    SMOKE_RUNS only: the other two are the same workers in another setting (environment, autocast)."""
    runs = [run for run in RUNS if not args.smoke or run[0] in SMOKE_RUNS] + ([DP_RUN] if args.dp else [])
    missing = missing_torch()
    for name, system, *_ in runs:
        if system == "torch" and missing:
            print(f"{name}: skipped ({' and '.join(missing)} not installed: pip install paddlepalm[bench])", flush=True)
    return [run for run in runs if run[1] != "torch" or not missing]


def model_config(smoke: bool) -> dict:
    """The model of the measured runs: CONFIG, or SMOKE_CONFIG (hidden 32, 1 layer) for --smoke."""
    return dict(SMOKE_CONFIG if smoke else CONFIG)


def smoke_paths() -> tuple:
    """(data root, work folder) of a --smoke run: generated data (bench/smoke_data.py), a new folder."""
    from smoke_data import data_root
    return data_root(), tempfile.mkdtemp(prefix="palm-bench-compare.")


def smoke(args) -> None:
    """--smoke: the same runs on generated data, 2 steps, 1 repeat, nothing written (and the workers'
    model is SMOKE_CONFIG)."""
    args.data_root, args.work = smoke_paths()
    args.steps, args.repeats, args.no_write = 2, 1, True


# --------------------------------------------------------------------------- main
def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_root", default=os.path.join(ROOT, "..", "shared", "data"))
    p.add_argument("--work", default=WORK, help="prepared files (vocabularies, batches) and the workers' outputs")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workloads", default="chnsenticorp,atis")
    p.add_argument("--worker", choices=["paddle", "torch"])
    p.add_argument("--workload")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--result_file", help="(worker) write the result here from rank 0")
    p.add_argument("--dp", action="store_true", help="add a 2-process data-parallel paddlepalm run")
    p.add_argument("--no_write", action="store_true")
    p.add_argument("--note", default="", help="a line added to the report (e.g. machine load)")
    p.add_argument("--before_root", help="a paddlepalm checkout to run as 'paddlepalm fp32 before' "
                   "(default: this checkout with Paddle's own kernels)")
    p.add_argument("--smoke", action="store_true", help="seconds: generated data, hidden 32 x 1 layer, 2 steps, "
                                                         "1 repeat, no write")
    args = p.parse_args()
    if args.worker == "paddle":
        result = paddle_worker(args.workload, args.data_root, args.work, args.steps, model_config(args.smoke))
        if args.result_file and os.environ.get("PADDLE_TRAINER_ID", "0") == "0":
            with open(args.result_file, "w") as f:
                json.dump(result, f)
        print(json.dumps(result))
        return
    if args.worker == "torch":
        print(json.dumps(torch_worker(args.workload, args.work, args.steps, args.bf16, model_config(args.smoke))))
        return
    if args.smoke:
        smoke(args)
    prepare(args.data_root, args.steps, args.work)
    runs = chosen_runs(args)
    times = {(w, name): [] for w in args.workloads.split(",") for name, *_ in runs}
    versions = {}
    for rep in range(args.repeats):
        for workload in args.workloads.split(","):
            for name, system, bf16, env in runs:
                result = run_worker(args, system, workload, bf16, env)
                versions.update({k: v for k, v in result.items() if k in ("torch", "transformers")})
                times[(workload, name)].append(result["seconds"])
                print(f"repeat {rep} {workload} {name}: {result['seconds']:.2f} s for {args.steps} steps "
                      f"({32 * args.steps / result['seconds']:.1f} samples/s)", flush=True)
    report(args, runs, times, versions)


def _ratio(times, workload: str, paddle_run: str, torch_run: str) -> str:
    """paddlepalm samples/s over torch samples/s (same steps and batches); n/a when a run was left out."""
    if (workload, paddle_run) not in times or (workload, torch_run) not in times:
        return "n/a"
    return f"{statistics.median(times[(workload, torch_run)]) / statistics.median(times[(workload, paddle_run)]):.2f}x"


def report(args, runs, times, versions):
    sys.path.insert(0, HERE)
    from report import machine, update_section
    rows = []
    for workload in args.workloads.split(","):
        base = statistics.median(times[(workload, "paddlepalm fp32")])
        for name, *_ in runs:
            t = statistics.median(times[(workload, name)])
            per = ", ".join(f"{x:.1f}" for x in times[(workload, name)])
            rows.append(f"| {workload} | {name} | {32 * args.steps / t:.1f} | {t:.1f} ({per}) | {t / base:.2f} |")
    cmd = f"python bench/compare_torch.py --data_root {args.data_root} --steps {args.steps} --repeats {args.repeats}"
    cmd += " --dp" if args.dp else ""
    if args.before_root:
        commit = subprocess.run(["git", "-C", args.before_root, "log", "-1", "--format=%h %s"],
                                capture_output=True, text=True).stdout.strip()
        cmd += f" --before_root {args.before_root}"
        before = f"the paddlepalm checkout at `{args.before_root}` (commit {commit}), before the CPU speed work"
    else:
        before = ("this checkout with Paddle's own kernels (`FLAGS_use_stride_kernel=1 PALM_CPU_KERNELS=none`; "
                  "the CRF's GEMM recursion stays on)")
    dp_text = ('; "paddlepalm fp32, 2 processes" is the same script under `python -m paddle.distributed.launch '
               '--nproc_per_node 2` with `MKL_NUM_THREADS=1` (16 examples per rank, the same global batches of 32; '
               'its time includes the per-step gradient all-reduce)') if args.dp else ""
    body = f"""Command: `{cmd}`

Machine: {machine()}; torch {versions.get('torch')}, transformers {versions.get('transformers')}. {args.note}

BERT/ERNIE 4 layers, hidden 256, 4 heads, intermediate 1024, vocabulary 21128, batch 32, AdamW with global-norm clipping at 1.0 in both; ChnSentiCorp classification (max length 128, char vocabulary) and ATIS slot (CRF) + intent 1:1 (max length 64); the same batches in the same order for both libraries; {args.steps} steps per run, fresh process per run, {args.repeats} alternating repeats, medians. "paddlepalm fp32 before" is {before}; "paddlepalm fp32" is this checkout as installed, one process{dp_text}. Paddle has no bf16 CPU kernels (no bf16 matmul is registered for CPU), so paddlepalm's fp32 run is the reference for both torch rows.

| workload | run | samples/s | time to {args.steps} steps, s (per repeat) | time / paddlepalm fp32 |
|---|---|---|---|---|
{chr(10).join(rows)}

paddlepalm / torch speed ratio (samples/s), before -> now: """ + "; ".join(
        f"{w}: vs torch fp32 {_ratio(times, w, 'paddlepalm fp32 before', 'torch fp32')} -> "
        f"{_ratio(times, w, 'paddlepalm fp32', 'torch fp32')}, vs torch bf16 "
        f"{_ratio(times, w, 'paddlepalm fp32 before', 'torch bf16')} -> {_ratio(times, w, 'paddlepalm fp32', 'torch bf16')}"
        for w in args.workloads.split(",")) + "\n"
    if args.dp:
        body += "\nWith 2 data-parallel processes: " + "; ".join(
            f"{w}: vs torch fp32 {_ratio(times, w, DP_RUN[0], 'torch fp32')}, "
            f"vs torch bf16 {_ratio(times, w, DP_RUN[0], 'torch bf16')}" for w in args.workloads.split(",")) + "\n"
    print(body)
    if not args.no_write:
        update_section("paddlepalm vs PyTorch + transformers (bench/compare_torch.py)", body)


if __name__ == "__main__":
    main()
