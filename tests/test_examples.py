"""The single-task examples run end to end on their generated samples (tiny settings)."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--hidden", "32", "--layers", "1", "--heads", "2", "--epochs", "1", "--eval_steps", "10", "--print_steps", "0"]
CASES = {
    "classification": (["--max_train", "320"], ["test_accuracy", "test_macro_f1"]),
    "matching": (["--max_train", "320"], ["test_accuracy", "test_macro_f1"]),
    "tagging": (["--max_train", "320"], ["test_entity_f1", "test_entity_recall"]),
    "mrc": (["--max_train", "1", "--max_seqlen", "64", "--doc_stride", "24", "--max_query_len", "16"],
            ["test_em", "test_f1"]),
}


@pytest.mark.parametrize("example", sorted(CASES))
def test_example_runs_on_its_sample(example, tmp_path):
    extra, keys = CASES[example]
    env = dict(os.environ, PYTHONPATH=REPO, MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, os.path.join(REPO, "examples", example, "run.py"),
                          "--work_dir", str(tmp_path)] + TINY + extra,
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [l for l in out.stdout.splitlines() if l.startswith("test results: ")][-1]
    results = json.loads(line[len("test results: "):])
    for key in keys:
        assert 0 <= results[key] <= 100
    assert os.path.isdir(tmp_path / "ckpt" / "best")


@pytest.mark.parametrize("mode", ["aux", "target"])
def test_auxiliary_task_example_trains_the_same_target_steps(mode, tmp_path):
    """multi-task-aux: the masked-LM task adds steps in between but never changes the target's budget."""
    env = dict(os.environ, PYTHONPATH=REPO, MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, os.path.join(REPO, "examples", "multi-task-aux", "run.py"),
                          "--work_dir", str(tmp_path), "--mode", mode, "--max_train", "320", "--batch_size", "16"]
                         + TINY, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [l for l in out.stdout.splitlines() if l.startswith("test results: ")][-1]
    results = json.loads(line[len("test results: "):])
    assert results["target_steps"] == 320 // 16
    assert (results["aux_steps"] > 0) == (mode == "aux")
    for key in ("test_accuracy", "test_macro_f1", "dev_accuracy"):
        assert 0 <= results[key] <= 100
    assert os.path.isfile(tmp_path / "predict" / "predictions.json")
    assert os.path.isdir(tmp_path / "ckpt" / "best")
