"""The cost of measuring inter-task affinity (paddlepalm/affinity.py) against a training step.

Trains the multi-task example (slot + intent, ERNIE of --layers x --hidden on its generated sample)
for --steps updates, alternating runs without and with ``set_affinity(every=1)`` (an affinity
measurement after every update), each in this process, and prints the CPU seconds per update of
each, and per measurement (their difference). A measurement of T tasks costs T forwards, then per
task one forward + backward and T forwards: for two tasks, 2 + 2 x 3 = 8 passes, about 3 training
steps' worth; with ``train.affinity_every: N`` it is spread over N updates.

    MKL_NUM_THREADS=1 python bench/affinity_cost.py            # 30 updates, 3 alternating repeats
    python bench/affinity_cost.py --smoke                       # seconds
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "examples", "multi-task")]

import paddle  # noqa: E402

import paddlepalm as palm  # noqa: E402


def build(data: str, sizes, args, affinity: bool):
    paddle.seed(0)
    vocab = os.path.join(data, "vocab.txt")
    config = {"hidden_size": args.hidden, "num_hidden_layers": args.layers, "num_attention_heads": 2,
              "intermediate_size": 2 * args.hidden, "vocab_size": sum(1 for _ in open(vocab, encoding="utf-8")),
              "max_position_embeddings": 128, "type_vocab_size": 2, "hidden_act": "gelu",
              "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02}
    ernie = palm.backbone.ERNIE.from_config(config)
    slot_reader = palm.reader.SequenceLabelReader(vocab, 32, os.path.join(data, "label_map.json"), seed=1)
    slot_reader.load_data(os.path.join(data, "slot", "train.tsv"), batch_size=args.batch)
    intent_reader = palm.reader.ClassifyReader(vocab, 32, seed=1)
    intent_reader.load_data(os.path.join(data, "intent", "train.tsv"), batch_size=args.batch)
    slot, intent = palm.Trainer("slot"), palm.Trainer("intent")
    slot.build_forward(ernie, palm.head.SequenceLabel(sizes["slot_classes"], args.hidden, 0.1))
    intent.build_forward(ernie, palm.head.Classify(sizes["intent_classes"], args.hidden, 0.1))
    trainer = palm.MultiHeadTrainer([slot, intent], seed=3)
    trainer.build_backward(palm.optimizer.Adam(trainer.build_forward(), 1e-3))
    trainer.fit_readers_with_mixratio([slot_reader, intent_reader], "slot", 50)
    trainer.max_steps = args.steps
    if affinity:
        trainer.set_affinity(every=1)
    return trainer


def cpu_per_update(trainer, steps: int) -> float:
    start = time.process_time()
    trainer.train(print_steps=0)
    return (time.process_time() - start) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--smoke", action="store_true", help="seconds: 2 updates, hidden 16, 1 layer, 1 repeat")
    a = p.parse_args()
    if a.smoke:
        a.steps, a.repeats, a.hidden, a.layers, a.batch = 2, 1, 16, 1, 8
    import prepare_data
    from make_sample import make_sample

    with tempfile.TemporaryDirectory() as tmp:
        raw = make_sample(os.path.join(tmp, "raw"), seed=3, sizes=(192, 32, 48))
        sizes = prepare_data.convert(raw, os.path.join(tmp, "data"))
        times = {False: [], True: []}
        for _ in range(a.repeats):
            for affinity in (False, True):
                times[affinity].append(cpu_per_update(build(os.path.join(tmp, "data"), sizes, a, affinity), a.steps))
    plain, measured = statistics.median(times[False]), statistics.median(times[True])
    print(f"Command: `MKL_NUM_THREADS={os.environ.get('MKL_NUM_THREADS', '?')} python bench/affinity_cost.py "
          f"--steps {a.steps} --repeats {a.repeats} --hidden {a.hidden} --layers {a.layers} --batch {a.batch}`")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| run | CPU ms per update (median of repeats) |\n|---|---:|")
    print(f"| training alone | {1000 * plain:.1f} |\n| + affinity after every update | {1000 * measured:.1f} |")
    print(f"\none measurement (2 tasks): {1000 * (measured - plain):.1f} CPU ms = "
          f"{(measured - plain) / plain:.2f} training updates; repeats: {[round(1000 * t, 1) for t in times[False]]} "
          f"vs {[round(1000 * t, 1) for t in times[True]]}")


if __name__ == "__main__":
    main()
