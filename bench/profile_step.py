"""cProfile of paddlepalm training steps (ERNIE 4x256 + Classify, ChnSentiCorp batches of 32).

    python bench/profile_step.py --data_root ../shared/data --steps 3

Prints the top entries by own time. Uses the files prepared by bench/compare_torch.py.
"""
import argparse
import cProfile
import os
import pstats
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import compare_torch  # noqa: E402

palm = compare_torch._palm()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_root", default=os.path.join(compare_torch.ROOT, "..", "shared", "data"))
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--top", type=int, default=12)
    args = p.parse_args()
    readers, _ = compare_torch.WORKLOADS["chnsenticorp"](palm, args.data_root)
    reader = readers["cls"]
    trainer = palm.Trainer("cls")
    model = trainer.build_forward(palm.backbone.ERNIE.from_config(dict(compare_torch.CONFIG)),
                                  palm.head.Classify(2, 256, 0.1))
    trainer.build_backward(palm.optimizer.Adam(model, 1e-4), weight_decay=0.01)
    trainer.fit_reader(reader)
    batches = list(reader.iter_epoch(0))[:args.steps + 1]
    trainer.train_one_step(batches[0])  # warm-up
    profiler = cProfile.Profile()
    profiler.enable()
    for batch in batches[1:]:
        trainer.train_one_step(batch)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
