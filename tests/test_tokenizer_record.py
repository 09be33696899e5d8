"""The tokenizer is part of a checkpoint: every checkpoint records each task's tokenizer (kind,
language, casing, folding, the vocabulary's SHA-256 and size), and loading it into a reader that
tokenizes otherwise is refused, naming what differs."""
import json
import os
import shutil

import pytest

import paddlepalm as palm
from paddlepalm.checkpoint import CheckpointError
from test_trainer import build_joint


def _trained(joint_data, tmp_path):
    trainer, _ = build_joint(joint_data["dir"], joint_data)
    trainer.max_steps = 2
    trainer.set_saver(str(tmp_path / "ckpt"), save_steps=2)
    trainer.train(print_steps=0)
    return tmp_path / "ckpt" / "ckpt.step2"


def test_checkpoint_records_each_task_tokenizer(joint_data, tmp_path):
    ckpt = _trained(joint_data, tmp_path)
    records = json.load(open(ckpt / "trainer.json"))["tokenizers"]
    assert sorted(records) == ["intent", "slot"]
    assert records["slot"]["tokenizer"] == "wordpiece" and len(records["slot"]["vocab_sha256"]) == 64
    assert records["slot"]["vocab_size"] == sum(1 for _ in open(os.path.join(joint_data["dir"], "vocab.txt")))


def test_loading_with_another_vocabulary_is_refused(joint_data, tmp_path):
    ckpt = _trained(joint_data, tmp_path)
    same, _ = build_joint(joint_data["dir"], joint_data)
    same.load_ckpt(str(ckpt))  # the same tokenizer: loads
    other_dir = tmp_path / "other"
    shutil.copytree(joint_data["dir"], other_dir)
    lines = (other_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    lines[-1], lines[-2] = lines[-2], lines[-1]  # the same size, two ids swapped: the silent case
    (other_dir / "vocab.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    other, _ = build_joint(str(other_dir), joint_data)
    with pytest.raises(CheckpointError, match=r"task slot was trained with vocab_sha256=.*"
                                              r"load it with the tokenizer and vocabulary it was trained with"):
        other.load_ckpt(str(ckpt))
