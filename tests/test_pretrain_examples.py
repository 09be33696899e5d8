"""The pretraining examples run on their generated sample and their output loads into fine-tuning."""
import json
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "examples", "pretrain"))

TINY = ["--cpu_minutes", "5", "--max_steps", "12", "--print_steps", "4", "--hidden", "32", "--embedding_size", "16",
        "--layers", "2", "--batch_size", "16", "--warmup", "2"]


def _load(name):
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"pretrain_{name}", os.path.join(REPO, "examples", "pretrain",
                                                                                     name, "run.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["electra", "albert"])
def test_pretrain_example_then_finetune(name, tmp_path):
    import finetune

    _load(name).main(TINY + ["--work_dir", str(tmp_path / name), "--lr", "5e-3"])
    exported = tmp_path / name / "pretrained"
    info = json.loads((exported / "pretrain_info.json").read_text(encoding="utf-8"))
    assert info["steps"] == 12 and len(info["first_losses"]) == 3
    assert set(os.listdir(exported)) >= {"model.pdparams", "DONE", "config.json", "vocab.txt"}
    result = finetune.main(["--pretrain", str(exported), "--epochs", "1", "--work_dir", str(tmp_path / "ft")])
    assert result["dev_examples"] == 100 and result["pretrain"] == str(exported)
