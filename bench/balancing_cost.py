"""Cost per update of each loss-balancing method (issue 15), side by side in one run.

    python bench/balancing_cost.py                                  # generated sample
    python bench/balancing_cost.py --data_dir $PALM_DATA_ROOT/atis   # ATIS
    python bench/balancing_cost.py --smoke                          # seconds: tiny model, 1 + 1 updates

The joint slot + intent model of ``examples/multi-task/run.py`` (small ERNIE from scratch, a CRF
slot head and an intent head, dropout 0.1) trains on joint batches (``joint=True``: both heads on
the same examples, one backbone pass), so every update holds both tasks, as the gradient methods
require. Every method has its own trainer (same seed, same batches); after ``--warmup`` untimed
updates each, the methods take turns update by update (static, uncertainty, ..., static, ...) for
``--updates`` timed updates each, through ``train_one_step``, so a change of the machine's load
falls on all of them alike; the table gives each method's median time per update (process CPU
time, all threads, and wall time) and its ratio to static weights. The passes per update are counted in the warm-up:
backbone forward passes (a forward pre-hook), backward passes of the summed loss (the whole
network), and per-task gradients (``GradientBank.add``: the whole network for PCGrad, back to the
last encoder layer for GradNorm). Writes its section of docs/benchmarks.md.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "examples", "multi-task"))
sys.path.insert(0, HERE)

import paddlepalm as palm  # noqa: E402  (before paddle: thread and quiet settings)
import paddle  # noqa: E402
import prepare_data  # noqa: E402
from make_sample import make_sample  # noqa: E402
from paddlepalm import update  # noqa: E402
from paddlepalm.balancing.gradient_bank import GradientBank  # noqa: E402
from report import machine, update_section  # noqa: E402

METHODS = {"static": palm.balancing.Static, "uncertainty": palm.balancing.Uncertainty, "dwa": palm.balancing.DWA,
           "famo": palm.balancing.FAMO, "pcgrad": palm.balancing.PCGrad, "gradnorm": palm.balancing.GradNorm}


def config(vocab_size: int, hidden: int, layers: int) -> dict:
    """examples/multi-task/run.py's backbone (its defaults: hidden 256, 2 layers, 4 heads)."""
    return {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": 4,
            "intermediate_size": 4 * hidden, "vocab_size": vocab_size, "max_position_embeddings": 512,
            "type_vocab_size": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02}


def build(method: str, data: str, sizes: dict, cfg: dict, batch_size: int) -> palm.MultiHeadTrainer:
    paddle.seed(1)
    backbone = palm.backbone.ERNIE.from_config(cfg)
    vocab = os.path.join(data, "vocab.txt")
    slot_reader = palm.reader.SequenceLabelReader(vocab, 64, os.path.join(data, "label_map.json"),
                                                  do_lower_case=True, seed=1)
    slot_reader.load_data(os.path.join(data, "slot", "train.tsv"), batch_size=batch_size)
    intent_reader = palm.reader.ClassifyReader(vocab, 64, do_lower_case=True, seed=1)
    intent_reader.load_data(os.path.join(data, "intent", "train.tsv"), batch_size=batch_size)
    slot, intent = palm.Trainer("slot"), palm.Trainer("intent")
    hidden = cfg["hidden_size"]
    slot.build_forward(backbone, palm.head.SequenceLabel(sizes["slot_classes"], hidden, 0.1, learning_rate=1.0))
    intent.build_forward(backbone, palm.head.Classify(sizes["intent_classes"], hidden, 0.1))
    multi = palm.MultiHeadTrainer([slot, intent], seed=1, balancer=METHODS[method]())
    multi.build_backward(palm.optimizer.Adam(multi.build_forward(), 1e-3), weight_decay=0.01)
    multi.fit_readers_with_mixratio([slot_reader, intent_reader], "slot", 1000, joint=True)
    return multi


class Counter:
    """Backbone forwards, whole backward passes and per-task gradient passes of ``train_update``."""

    def __init__(self, model):
        self.counts = {"forward": 0, "backward": 0, "task_grad": 0}
        self.hook = model.backbone.register_forward_pre_hook(lambda layer, inputs: self.count("forward"))
        self.real_backward, self.real_add = update.Update.backward, GradientBank.add
        counter = self

        def backward(pass_update, terms):  # one whole backward when no bank keeps every gradient apart
            if pass_update.bank is None or pass_update.bank.partial:
                counter.count("backward")
            return counter.real_backward(pass_update, terms)

        def add(bank, *args, **kwargs):
            counter.count("task_grad")
            return counter.real_add(bank, *args, **kwargs)

        update.Update.backward, GradientBank.add = backward, add

    def count(self, what: str) -> None:
        self.counts[what] += 1

    def close(self) -> None:
        self.hook.remove()
        update.Update.backward, GradientBank.add = self.real_backward, self.real_add


def timed_update(multi: palm.MultiHeadTrainer):
    """(CPU seconds, wall seconds) of one ``train_one_step``."""
    batch = multi.get_one_batch()
    cpu, wall = time.process_time(), time.perf_counter()
    multi.train_one_step(batch)
    return time.process_time() - cpu, time.perf_counter() - wall


def describe(passes: dict, method: str) -> str:
    grads = passes["task_grad"]
    kind = {"pcgrad": "whole network", "gradnorm": "to the last layer"}.get(method, "")
    return (f"{passes['forward']:g} | {passes['backward']:g} | "
            + (f"{grads:g} ({kind})" if grads else "0"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=None)
    p.add_argument("--updates", type=int, default=60)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--no_write", action="store_true")
    p.add_argument("--smoke", action="store_true", help="seconds: hidden 16, 1 layer, batch 8, 1 warm-up + 1 "
                                                         "timed update of every method, no write")
    args = p.parse_args()
    work = os.path.join("/tmp", "palm_bench_balancing")
    if args.smoke:
        work = tempfile.mkdtemp(prefix="palm-bench-balancing.")
        args.data_dir, args.updates, args.warmup, args.batch_size, args.hidden, args.layers = None, 1, 1, 8, 16, 1
        args.no_write = True
    raw = args.data_dir or make_sample(os.path.join(work, "raw"))
    data = os.path.join(work, "data")
    sizes = prepare_data.convert(raw, data)
    cfg = config(sum(1 for _ in open(os.path.join(data, "vocab.txt"), encoding="utf-8")), args.hidden, args.layers)
    load_before = os.getloadavg()[0]
    trainers = {m: build(m, data, sizes, cfg, args.batch_size) for m in args.methods}
    passes = {}
    for method, multi in trainers.items():
        counter = Counter(multi.model)
        for _ in range(args.warmup):
            multi.train_one_step(multi.get_one_batch())
        counter.close()
        passes[method] = {k: v / args.warmup for k, v in counter.counts.items()}
    times = {m: [] for m in args.methods}
    for number in range(args.updates):
        for method, multi in trainers.items():
            times[method].append(timed_update(multi))
        if (number + 1) % 10 == 0:
            print(f"update {number + 1}: " + ", ".join(f"{m} {1000 * statistics.median(t[0] for t in v):.1f}"
                                                      for m, v in times.items()) + " CPU ms (median so far)", flush=True)
    cpu = {m: statistics.median(t[0] for t in v) for m, v in times.items()}
    wall = {m: statistics.median(t[1] for t in v) for m, v in times.items()}
    base = "static" if "static" in cpu else args.methods[0]
    data_name = os.path.basename(os.path.normpath(args.data_dir)) if args.data_dir else "generated sample"
    threads = os.environ.get("MKL_NUM_THREADS", "")
    cmd = ((f"MKL_NUM_THREADS={threads} " if threads else "") + "python bench/balancing_cost.py"
           + (f" --data_dir {args.data_dir}" if args.data_dir else "")
           + f" --updates {args.updates}")
    lines = ["| method | backbone forwards | whole backwards | per-task gradients | CPU ms / update | "
             "wall ms / update | CPU vs static |", "|---|---|---|---|---|---|---|"]
    for m in args.methods:
        lines.append(f"| {m} | {describe(passes[m], m)} | {1000 * cpu[m]:.1f} | {1000 * wall[m]:.1f} | "
                     f"{cpu[m] / cpu[base]:.2f}x |")
    body = f"""Command: `{cmd}`

Machine: {machine()}; 1-minute load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end
(the machine is shared: CPU time is the steadier figure).

The joint slot + intent model of examples/multi-task (small ERNIE: hidden {args.hidden}, {args.layers} layers, 4 heads,
dropout 0.1; CRF slot head, intent head) on joint batches of {args.batch_size} {data_name} training sentences:
every update holds both tasks. The methods take turns update by update, {args.updates} timed updates each
(after {args.warmup} untimed); median time per update. Passes per update counted in the warm-up. FAMO's second backbone forward is its extra forward after the step;
GradNorm's per-task gradients go back to the last encoder layer only (`paddle.grad` stopping at its input);
each of them still runs its task's head backward (the CRF slot head's included) a second time, beside the
whole backward of the weighted sum.

{chr(10).join(lines)}
"""
    print(body)
    if not args.no_write:
        update_section("Loss balancing: cost per update (bench/balancing_cost.py)", body)


if __name__ == "__main__":
    main()
