"""Tiny generated data sets for the benchmarks' ``--smoke`` runs, in the layouts of ``../shared/data``
(ChnSentiCorp: ``train.tsv`` / ``dev.tsv`` / ``test.tsv``; ATIS: ``{train,valid,test}/seq.in``,
``seq.out``, ``label``), written by the examples' template generators (no copied data), so that a smoke
run reads its data through the same code as the real run and needs no shared data root.

A helper module, not a benchmark: bench/smoke.py skips it; the scripts' ``--smoke`` modes call it.
"""
import importlib.util
import os
import tempfile

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
SIZES = (64, 32, 40)  # train, dev, test sentences: whole batches of 32 to train on (bench/inference.py
# trains on dev), and a batch of 32 and a part one to predict


def _generator(example: str):
    path = os.path.join(EXAMPLES, example, "make_sample.py")
    spec = importlib.util.spec_from_file_location(f"smoke_{example.replace('-', '_')}_make_sample", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def data_root(out_dir: str = None) -> str:
    """A data root (``out_dir``, default a new temporary folder) holding ``chnsenticorp/`` and ``atis/``."""
    root = out_dir or tempfile.mkdtemp(prefix="palm-bench-smoke.")
    _generator("classification").make_sample(os.path.join(root, "chnsenticorp"), sizes=SIZES)
    _generator("multi-task").make_sample(os.path.join(root, "atis"), sizes=SIZES)
    return root
