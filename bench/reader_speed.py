"""How much faster the readers produce batches than training consumes them.

    python bench/reader_speed.py --data_root $PALM_DATA_ROOT

For ChnSentiCorp (``ClassifyReader``, max length 128) and ATIS slots
(``SequenceLabelReader``, max length 64), batch 32: batches/s of ``iter_epoch``
over a whole epoch (features already tokenized by ``load_data``; collation and
padding included) against batches/s of ``Trainer.train_one_step`` (the small
BERT/ERNIE of bench/compare_torch.py) on the first batches of that epoch.
Uses the files prepared by bench/compare_torch.py (``--work``; prepared here if missing).
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import compare_torch  # noqa: E402

palm = compare_torch.import_palm()
import paddle  # noqa: E402
from report import machine, update_section  # noqa: E402


def measure(name: str, data_root: str, work: str, steps: int) -> tuple:
    readers, classes = compare_torch.WORKLOADS[name](palm, data_root, work)
    task = "cls" if "cls" in readers else "slot"
    reader = readers[task]
    start = time.perf_counter()
    batches = list(reader.iter_epoch(0))
    produce = len(batches) / (time.perf_counter() - start)
    paddle.seed(0)
    trainer = palm.Trainer(task)
    cfg = dict(compare_torch.CONFIG)
    head = (palm.head.SequenceLabel(classes[task], 256, 0.1) if task == "slot"
            else palm.head.Classify(classes[task], 256, 0.1))
    model = trainer.build_forward(palm.backbone.ERNIE.from_config(cfg), head)
    trainer.build_backward(palm.optimizer.Adam(model, 1e-4), weight_decay=0.01)
    trainer.fit_reader(reader)
    trainer.train_one_step(batches[0])
    start = time.perf_counter()
    for batch in batches[1:steps + 1]:
        trainer.train_one_step(batch)
    consume = steps / (time.perf_counter() - start)
    return produce, consume, len(batches)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_root", default=os.path.join(compare_torch.ROOT, "..", "shared", "data"))
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--work", default=compare_torch.WORK,
                   help="files prepared by bench/compare_torch.py (made if missing)")
    p.add_argument("--no_write", action="store_true")
    p.add_argument("--note", default="")
    p.add_argument("--smoke", action="store_true", help="seconds: generated data, 1 step, no write")
    args = p.parse_args()
    if args.smoke:
        args.data_root, args.work = compare_torch.smoke_paths()
        args.steps, args.no_write = 1, True
    work = compare_torch.prepared(args.data_root, args.work)
    rows = []
    for name in ("chnsenticorp", "atis"):
        produce, consume, n = measure(name, args.data_root, work, args.steps)
        rows.append(f"| {name} | {n} | {produce:.0f} | {consume:.2f} | {produce / consume:.0f}x |")
        print(rows[-1], flush=True)
    body = f"""Command: `python bench/reader_speed.py --data_root {args.data_root} --steps {args.steps}` (after bench/compare_torch.py prepared the data)

Machine: {machine()}. {args.note}

| data set (first task) | batches/epoch | reader batches/s (`iter_epoch`) | training batches/s (`train_one_step`) | reader / training |
|---|---|---|---|---|
{chr(10).join(rows)}
"""
    print(body)
    if not args.no_write:
        update_section("Reader speed vs training (bench/reader_speed.py)", body)


if __name__ == "__main__":
    main()
