import json
import os

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from conftest import tiny_config
from paddlepalm import checkpoint, metrics
from paddlepalm.evaluation import Metric


class Scripted(Metric):
    """Returns a fixed sequence of scores, one per evaluation."""

    names = ("scripted",)

    def __init__(self, values):
        self.values = list(values)
        self.calls = 0

    def __call__(self, results, reader):
        assert len(results) == reader.num_examples
        value = self.values[self.calls]
        self.calls += 1
        return {"scripted": value}


def _intent_trainer(joint_data, tmp_path, epochs=4):
    d = joint_data["dir"]
    vocab = os.path.join(d, "vocab.txt")
    ernie = palm.backbone.ERNIE.from_config(tiny_config(sum(1 for _ in open(vocab, encoding="utf-8"))))
    reader = palm.reader.ClassifyReader(vocab, 32, seed=1)
    reader.load_data(os.path.join(d, "intent", "train.tsv"), batch_size=16, num_epochs=epochs)
    dev = palm.reader.ClassifyReader(vocab, 32, phase="eval")
    dev.load_data(os.path.join(d, "intent", "dev.tsv"), batch_size=16)
    trainer = palm.Trainer("intent")
    loss_var = trainer.build_forward(ernie, palm.head.Classify(joint_data["intent_classes"], 32, 0.1))
    trainer.build_backward(palm.optimizer.Adam(loss_var, 1e-3))
    trainer.fit_reader(reader)
    trainer.fit_reader(dev, phase="eval")
    trainer.set_saver(str(tmp_path), save_steps=2)
    return trainer


def test_keeps_best_checkpoint_and_stops_early(joint_data, tmp_path, capsys):
    trainer = _intent_trainer(joint_data, tmp_path)  # 12 steps per epoch x 4 epochs
    metric = Scripted([0.5, 0.8, 0.6, 0.7, 0.9, 0.9])
    trainer.set_evaluator(metrics=[metric], target="scripted", eval_steps=2, patience=2)
    trainer.train(print_steps=2)
    # best 0.8 at the 2nd evaluation (step 4); the 3rd and 4th are worse -> stop at step 8
    assert trainer.cur_train_step == 8 and metric.calls == 4
    assert trainer.evaluation.stopped_early and trainer.evaluation.best_step == 4
    best = str(tmp_path / "best")
    state = checkpoint.load_trainer_state(best)
    assert state["global_step"] == 4 and state["best_score"] == pytest.approx(0.8)
    at_step4 = checkpoint.load_model_state(str(tmp_path / "ckpt.step4"))
    for name, value in checkpoint.load_model_state(best).items():
        np.testing.assert_array_equal(np.asarray(value), np.asarray(at_step4[name]))
    out = capsys.readouterr().err  # log lines: stderr
    assert "global step: 4, eval intent: scripted: 0.8000" in out
    assert "early stopping at global step 8" in out
    assert not os.path.exists(tmp_path / "ckpt.step48")


def test_evaluates_at_the_end_without_patience(joint_data, tmp_path):
    trainer = _intent_trainer(joint_data, tmp_path, epochs=1)
    trainer.set_evaluator(eval_steps=5)  # default metrics of Classify: accuracy (target) and macro-F1
    trainer.train(print_steps=0)
    steps = [r["step"] for r in trainer.evaluation.history]
    assert steps == [5, 10, 12] and not trainer.evaluation.stopped_early
    assert set(trainer.evaluation.history[-1]["tasks"]["intent"]) == {"accuracy", "macro_f1"}


def test_multihead_evaluation_picks_best_by_mean_of_targets(joint_data, tmp_path):
    d = joint_data["dir"]
    vocab = os.path.join(d, "vocab.txt")
    config = tiny_config(sum(1 for _ in open(vocab, encoding="utf-8")))
    ernie = palm.backbone.ERNIE.from_config(config)
    label_map = os.path.join(d, "label_map.json")
    slot_reader = palm.reader.SequenceLabelReader(vocab, 32, label_map, seed=1)
    slot_reader.load_data(os.path.join(d, "slot", "train.tsv"), batch_size=16)
    cls_reader = palm.reader.ClassifyReader(vocab, 32, seed=1)
    cls_reader.load_data(os.path.join(d, "intent", "train.tsv"), batch_size=16)
    slot, intent = palm.Trainer("slot"), palm.Trainer("intent")
    slot.build_forward(ernie, palm.head.SequenceLabel(joint_data["slot_classes"], 32, 0.1, learning_rate=1.0))
    intent.build_forward(ernie, palm.head.Classify(joint_data["intent_classes"], 32, 0.1))
    slot_dev = palm.reader.SequenceLabelReader(vocab, 32, label_map, phase="eval")
    slot_dev.load_data(os.path.join(d, "slot", "dev.tsv"), batch_size=16)
    intent_dev = palm.reader.ClassifyReader(vocab, 32, phase="eval")
    intent_dev.load_data(os.path.join(d, "intent", "dev.tsv"), batch_size=16)
    trainer = palm.MultiHeadTrainer([slot, intent])
    loss_var = trainer.build_forward()
    trainer.build_backward(palm.optimizer.Adam(loss_var, 3e-3))
    trainer.fit_readers_with_mixratio([slot_reader, cls_reader], "slot", 2)
    slot.fit_reader(slot_dev, phase="eval")
    intent.fit_reader(intent_dev, phase="eval")
    trainer.set_saver(str(tmp_path), save_steps=1000)
    trainer.set_evaluator(eval_steps=12)
    trainer.train(print_steps=0)
    history = trainer.evaluation.history
    assert [r["step"] for r in history] == [12, 24, 36, 48]
    for record in history:
        tasks = record["tasks"]
        assert record["score"] == pytest.approx((tasks["slot"]["entity_f1"] + tasks["intent"]["accuracy"]) / 2)
    best = max(history, key=lambda r: r["score"])
    assert trainer.evaluation.best_step == best["step"]

    # the best checkpoint, loaded by a single-task predictor, reproduces the logged dev accuracy
    predictor = palm.Trainer("intent")
    pred_ernie = palm.backbone.ERNIE.from_config(config, phase="predict")
    pred_reader = palm.reader.ClassifyReader(vocab, 32, phase="predict")
    pred_reader.load_data(os.path.join(d, "intent", "dev.tsv"), batch_size=7)
    predictor.build_predict_forward(pred_ernie, palm.head.Classify(joint_data["intent_classes"], 32, phase="predict"))
    predictor.load_ckpt(str(tmp_path / "best"))
    predictor.fit_reader(pred_reader, phase="predict")
    gold = [int(line.split("\t")[0]) for line in open(os.path.join(d, "intent", "dev.tsv")).read().splitlines()[1:]]
    accuracy = metrics.accuracy([p["label"] for p in predictor.predict()], gold)
    assert accuracy == pytest.approx(best["tasks"]["intent"]["accuracy"])


def test_resume_keeps_the_best_score_and_the_patience_count(joint_data, tmp_path):
    """Scores 0.5, 0.8, 0.6 up to step 6, then the run is resumed: the next (worse) score must
    not become the best, and patience counts on from where it was."""
    first = _intent_trainer(joint_data, tmp_path)
    first.set_evaluator(metrics=[Scripted([0.5, 0.8, 0.6])], target="scripted", eval_steps=2, patience=2)
    first.max_steps = 6
    first.train(print_steps=0)
    resumed = _intent_trainer(joint_data, tmp_path)
    metric = Scripted([0.7, 0.9])
    resumed.set_evaluator(metrics=[metric], target="scripted", eval_steps=2, patience=2)
    resumed.load_ckpt(str(tmp_path / "ckpt.step6"))
    resumed.train(print_steps=0)
    assert resumed.cur_train_step == 8 and metric.calls == 1 and resumed.evaluation.stopped_early
    assert resumed.evaluation.best_step == 4
    assert checkpoint.load_trainer_state(str(tmp_path / "best"))["global_step"] == 4
