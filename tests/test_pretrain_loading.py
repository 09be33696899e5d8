"""Issue 26's loading question: a checkpoint written by each pretraining objective (masked LM and
ELECTRA by examples/pretrain/electra/run.py, ALBERT's SOP + n-gram MLM by examples/pretrain/albert/run.py),
loaded into each fine-tuning setup (``Trainer.load_pretrain`` as finetune.py does, a
``MultiHeadTrainer`` sharing the backbone, ``palm train`` with ``backbone.pretrained``), leaves the
backbone holding exactly the saved weights, and the load report says so."""
import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from paddlepalm.utils.fileio import read_state

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=REPO, MKL_NUM_THREADS="1")
OBJECTIVES = {"mlm": ("electra/run.py", "--objective", "mlm"), "electra": ("electra/run.py", "--objective", "electra"),
              "albert": ("albert/run.py",)}
BACKBONES = {"electra": palm.backbone.ELECTRA, "albert": palm.backbone.ALBERT}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """Each objective pretrained for 3 steps on the generated sample corpus: {objective: folder}."""
    out = {}
    for objective, (script, *args) in OBJECTIVES.items():
        work = tmp_path_factory.mktemp(objective)
        done = subprocess.run([sys.executable, os.path.join(REPO, "examples", "pretrain", script), *args,
                               "--max_steps", "3", "--warmup", "1", "--lr", "5e-3", "--work_dir", str(work),
                               "--output", str(work / "out")], capture_output=True, text=True, env=ENV, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        out[objective] = str(work / "out")
    return out


def saved_backbone(folder):
    state = read_state(os.path.join(folder, "model.pdparams"))
    return {k[len("backbone."):]: np.asarray(v) for k, v in state.items() if k.startswith("backbone.")}


def build(folder, seed=7):
    config = json.load(open(os.path.join(folder, "config.json"), encoding="utf-8"))
    paddle.seed(seed)
    return BACKBONES[config["backbone"]].from_config(config), int(config["hidden_size"])


def assert_holds(backbone, saved):
    held = {k: v.numpy() for k, v in backbone.state_dict().items()}
    assert set(saved) <= set(held)
    for name, value in saved.items():
        assert np.array_equal(held[name], value), name


def assert_differs_from_init(saved, folder):
    fresh = {k: v.numpy() for k, v in build(folder)[0].state_dict().items()}
    changed = [n for n, v in saved.items() if not np.array_equal(fresh[n], v)]
    assert len(changed) > len(saved) // 2  # the load has something to change


@pytest.mark.parametrize("objective", list(OBJECTIVES))
def test_trainer_and_multi_head_trainer_hold_the_saved_weights(pretrained, objective, capsys):
    folder = pretrained[objective]
    saved = saved_backbone(folder)
    assert_differs_from_init(saved, folder)
    # Trainer.load_pretrain, as examples/pretrain/finetune.py
    backbone, hidden = build(folder)
    trainer = palm.Trainer("cls")
    loss = trainer.build_forward(backbone, palm.head.Classify(2, hidden, 0.1))
    report = trainer.load_pretrain(folder)
    trainer.build_backward(palm.optimizer.AdamW(loss, 3e-4, None), weight_decay=0.01)
    assert_holds(backbone, saved)
    assert report.verified == len(report.loaded) == len(saved) and not report.missing
    assert f"all {len(saved)} read back equal to the source's values" in capsys.readouterr().err
    # two tasks on one shared backbone: loading through either trainer sets the one backbone
    backbone, hidden = build(folder)
    first, second = palm.Trainer("a"), palm.Trainer("b")
    first.build_forward(backbone, palm.head.Classify(2, hidden, 0.1))
    second.build_forward(backbone, palm.head.Classify(3, hidden, 0.1))
    second.load_pretrain(folder)
    multi = palm.MultiHeadTrainer([first, second])
    multi.build_forward()
    assert_holds(multi.model.backbone, saved)


@pytest.mark.parametrize("objective", list(OBJECTIVES))
def test_palm_train_starts_from_the_saved_weights(pretrained, objective, tmp_path):
    """``backbone.pretrained`` in a config: one update at learning rate 1e-20 (0 is refused) leaves
    the backbone as loaded to within 1e-12, so the checkpoint holds the pretrained weights (which
    differ from a fresh initialisation by far more)."""
    folder = pretrained[objective]
    kind = json.load(open(os.path.join(folder, "config.json"), encoding="utf-8"))["backbone"].upper()
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "paddlepalm.cli", "train", os.path.join(REPO, "examples", "configs",
                                                                                         "finetune.yaml"),
                           "-s", str(run), "--no-progress", "-o", f"backbone.kind={kind}",
                           "-o", f"backbone.config_file={folder}/config.json", "-o", f"backbone.pretrained={folder}",
                           "-o", f"tasks.cls.vocab={folder}/vocab.txt", "-o", "optimizer.lr=1e-20",
                           "-o", "train.max_steps=1", "-o", "train.eval_steps=0"],
                          capture_output=True, text=True, env=ENV, cwd=str(tmp_path), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    saved = saved_backbone(folder)
    assert f"read back equal to the source's values" in done.stderr
    state = read_state(str(run / "checkpoints" / "ckpt.step1" / "model.pdparams"))
    for name, value in saved.items():
        np.testing.assert_allclose(np.asarray(state["backbone." + name]), value, rtol=0, atol=1e-12, err_msg=name)
