"""Checkpoint rotation (issue 23): ``set_saver(keep_last=N)`` keeps the newest N ``ckpt.step``
(and ``pred.step``) folders, deletes an old one only once the new one verifies, never ``best/``,
and a run interrupted and resumed still ends bit-identical to an uninterrupted one."""
import os

import pytest

from paddlepalm import checkpoint
from test_reliability import DROPOUT, assert_same, resumed
from test_trainer import build_joint, params

TOTAL = 12  # updates; a save every 2, the newest 2 kept


class StopAt:
    """A sink that interrupts training right after the update of ``step``, before its saves
    (as a kill there would)."""

    def __init__(self, step):
        self.step = step

    def log(self, step, record):
        if record["event"] == "update" and step == self.step:
            raise KeyboardInterrupt

    def close(self):
        pass


def train_rotating(joint_data, save_path, seed=0, stop_at=None, save_type="ckpt"):
    trainer, _ = build_joint(joint_data["dir"], joint_data, dropout=DROPOUT, seed=seed)
    trainer.max_steps = TOTAL
    trainer.set_saver(str(save_path), save_steps=2, save_type=save_type, keep_last=2)
    trainer.train(print_steps=0, sinks=[StopAt(stop_at)] if stop_at else None)
    return trainer


def saved(path):
    return sorted(name for name in os.listdir(path) if not name.startswith("."))


def test_keeps_the_newest_n_and_resumes_bit_identical(joint_data, tmp_path):
    reference = params(train_rotating(joint_data, tmp_path / "ref").model)
    assert saved(tmp_path / "ref") == ["ckpt.step10", "ckpt.step12"]

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_rotating(joint_data, run, stop_at=7)
    assert saved(run) == ["ckpt.step4", "ckpt.step6"]  # 2 was deleted once 6 verified; 7 was never saved
    again = resumed(joint_data, run / "ckpt.step6", steps=TOTAL)
    again.set_saver(str(run), save_steps=2, keep_last=2)
    again.train(print_steps=0)
    assert_same(params(again.model), reference)
    assert saved(run) == ["ckpt.step10", "ckpt.step12"]


def test_best_and_later_steps_are_never_deleted_nor_anything_when_the_new_one_is_damaged(joint_data, tmp_path,
                                                                                           monkeypatch):
    (tmp_path / "best").mkdir()
    (tmp_path / "ckpt.step99").mkdir()  # of another run's history: not older than the steps saved here
    trainer = train_rotating(joint_data, tmp_path)
    assert saved(tmp_path) == ["best", "ckpt.step10", "ckpt.step12", "ckpt.step99"]

    def damaged(directory):
        raise checkpoint.CheckpointError(f"{directory} is damaged")

    monkeypatch.setattr(checkpoint, "verify", damaged)
    trainer._saver.save(14, trainer.model, trainer.optimizer, trainer._checkpoint_state(14))
    assert saved(tmp_path) == ["best", "ckpt.step10", "ckpt.step12", "ckpt.step14", "ckpt.step99"]


def test_predict_saves_rotate_too(joint_data, tmp_path):
    train_rotating(joint_data, tmp_path, save_type="ckpt,predict")
    assert saved(tmp_path) == ["ckpt.step10", "ckpt.step12", "pred.step10", "pred.step12"]
    assert saved(tmp_path / "pred.step12") == ["intent", "slot"]


@pytest.mark.parametrize("keep_last", [0, -1, 1.5, True])
def test_keep_last_must_be_a_positive_integer(joint_data, tmp_path, keep_last):
    trainer, _ = build_joint(joint_data["dir"], joint_data)
    with pytest.raises(ValueError, match="keep_last must be a positive integer"):
        trainer.set_saver(str(tmp_path), save_steps=2, keep_last=keep_last)


def test_train_keep_checkpoints_of_the_cli(joint_data, tmp_path, capsys):
    from test_cli_contract import run_main, write_config

    run = tmp_path / "run"
    argv = ["train", write_config(tmp_path, joint_data["dir"]), "-s", run, "--no-progress"]
    status, _, err = run_main([*argv, "-o", "train.keep_checkpoints=1"], capsys)
    assert status == 0, err
    assert saved(run / "checkpoints") == ["ckpt.step12"] and checkpoint.is_checkpoint(str(run / "best"))
