"""Generate the bundled sample: the templated sentiment data of ``examples/classification`` (no copied data),
plus ``unlabeled.tsv`` (``text_a``): more reviews of the same kind without labels, text for the auxiliary
masked-LM task only.
"""
import importlib.util
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))


def _classification_sample():
    path = os.path.join(os.path.dirname(HERE), "classification", "make_sample.py")
    spec = importlib.util.spec_from_file_location("classification_make_sample", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_sample(out_dir: str, seed: int = 1, sizes=(800, 160, 160), unlabeled: int = 800) -> str:
    generator = _classification_sample()
    generator.make_sample(out_dir, seed, sizes)
    rng = random.Random(seed + 1)
    with open(os.path.join(out_dir, "unlabeled.tsv"), "w", encoding="utf-8") as f:
        f.write("text_a\n")
        for _ in range(unlabeled):
            f.write(generator.sentence(rng, rng.randint(0, 1)) + "\n")
    return out_dir


if __name__ == "__main__":
    print(make_sample(os.path.join(HERE, "sample_data")))
