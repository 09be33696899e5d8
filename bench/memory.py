"""Resident memory over a long multi-task run: does it stay flat?

    python bench/memory.py --data_root $PALM_DATA_ROOT --steps 5000

ATIS slot filling (CRF) + intent classification 1:1 on one ERNIE backbone (2 layers,
hidden 128, 2 heads; the vocabulary of bench/compare_torch.py, which prepares the
data), batch 32, through ``MultiHeadTrainer.get_one_batch`` / ``train_one_step``
(the CPU kernels of paddlepalm/utils/cpu_speed.py included: their numpy buffers
must be freed with the tensors). The process's resident set size (VmRSS) is read
every ``--every`` steps; growth is measured from the end of the first 10% of the
run (allocator pools and optimizer state are built by then) to the end.
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import compare_torch  # noqa: E402

palm = compare_torch.import_palm()
from report import machine, update_section  # noqa: E402

CONFIG = {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 512,
          "vocab_size": 21128, "type_vocab_size": 2, "max_position_embeddings": 512,
          "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_root", default=os.path.join(compare_torch.ROOT, "..", "shared", "data"))
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--every", type=int, default=250)
    p.add_argument("--work", default=compare_torch.WORK,
                   help="files prepared by bench/compare_torch.py (made if missing)")
    p.add_argument("--no_write", action="store_true")
    p.add_argument("--smoke", action="store_true", help="seconds: generated data, 4 steps, no write")
    args = p.parse_args()
    if args.smoke:
        args.data_root, args.work = compare_torch.smoke_paths()
        args.steps, args.every, args.no_write = 4, 2, True
    work = compare_torch.prepared(args.data_root, args.work)
    readers, classes = compare_torch.WORKLOADS["atis"](palm, args.data_root, work)
    backbone = palm.backbone.ERNIE.from_config(dict(CONFIG))
    trainers = []
    for task in ("slot", "intent"):
        trainer = palm.Trainer(task)
        head = (palm.head.SequenceLabel(classes[task], CONFIG["hidden_size"], 0.1) if task == "slot"
                else palm.head.Classify(classes[task], CONFIG["hidden_size"], 0.1))
        trainer.build_forward(backbone, head)
        trainers.append(trainer)
    multi = palm.MultiHeadTrainer(trainers)
    model = multi.build_forward()
    multi.build_backward(palm.optimizer.Adam(model, 1e-4), weight_decay=0.01)
    first = readers["slot"]
    epochs = args.steps / 2 / first.steps_per_epoch + 1
    multi.fit_readers_with_mixratio([readers["slot"], readers["intent"]], "slot", epochs)
    samples = [(0, rss_mib())]
    start = time.time()
    for step in range(1, args.steps + 1):
        multi.train_one_step(multi.get_one_batch())
        if step % args.every == 0:
            samples.append((step, rss_mib()))
            print(f"step {step}: RSS {samples[-1][1]:.1f} MiB ({time.time() - start:.0f} s)", flush=True)
    report(args, samples, time.time() - start)


def report(args, samples, seconds):
    settled = next(s for s in samples if s[0] >= args.steps // 10)
    end = samples[-1]
    growth = (end[1] - settled[1]) / settled[1] * 100
    peak = max(rss for _, rss in samples)
    shown = samples[::max(1, len(samples) // 10)]
    shown += [end] if shown[-1] != end else []
    rows = " | ".join(f"{step}: {rss:.0f}" for step, rss in shown)
    body = f"""Command: `python bench/memory.py --data_root {args.data_root} --steps {args.steps}`

Machine: {machine()}.

ATIS slot (CRF) + intent 1:1, ERNIE 2 layers x 128, batch 32, {args.steps} steps of `MultiHeadTrainer.train_one_step` in {seconds:.0f} s.

RSS (MiB) at step: {rows}

Growth from step {settled[0]} ({settled[1]:.1f} MiB) to step {end[0]} ({end[1]:.1f} MiB): **{growth:+.2f}%** (goal: < 5%); peak {peak:.1f} MiB.
"""
    print(body)
    if not args.no_write:
        update_section("Memory over a long multi-task run (bench/memory.py)", body)


if __name__ == "__main__":
    main()
