"""Trainer / MultiHeadTrainer behaviour through the public API on the generated joint sample."""
import os
import re

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from conftest import tiny_config


def build_joint(d, sizes, dropout=0.0, seed=0, lr=1e-3, batch_size=16, intent_ratio=0.5, slot_settings=None,
                intent_settings=None, balancer=None, recurrent=False, **fit_options):
    """The tiny slot + intent MultiHeadTrainer most tests use; ``fit_options`` go to
    ``fit_readers_with_mixratio`` (``joint``, ``tasks_per_update``), ``*_settings`` to the Trainers,
    ``balancer`` to the MultiHeadTrainer; ``recurrent``: a BiLSTM backbone instead of the ERNIE."""
    paddle.seed(seed)
    vocab = os.path.join(d, "vocab.txt")
    config = tiny_config(sum(1 for _ in open(vocab, encoding="utf-8")))
    config["hidden_dropout_prob"] = config["attention_probs_dropout_prob"] = dropout
    ernie = (palm.backbone.BiLSTM({"vocab_size": config["vocab_size"], "embedding_size": 16, "hidden_size": 32,
                                   "num_layers": 2, "dropout": dropout})
             if recurrent else palm.backbone.ERNIE.from_config(config))
    slot_reader = palm.reader.SequenceLabelReader(vocab, 32, os.path.join(d, "label_map.json"), seed=1)
    slot_reader.load_data(os.path.join(d, "slot", "train.tsv"), batch_size=batch_size)
    cls_reader = palm.reader.ClassifyReader(vocab, 32, seed=1)
    cls_reader.load_data(os.path.join(d, "intent", "train.tsv"), batch_size=batch_size)
    slot = palm.Trainer("slot", **(slot_settings or {}))
    intent = palm.Trainer("intent", mix_ratio=intent_ratio, **(intent_settings or {}))
    slot.build_forward(ernie, palm.head.SequenceLabel(sizes["slot_classes"], 32, dropout, learning_rate=1.0))
    intent.build_forward(ernie, palm.head.Classify(sizes["intent_classes"], 32, dropout))
    trainer = palm.MultiHeadTrainer([slot, intent], seed=3, balancer=balancer)
    loss_var = trainer.build_forward()
    sched = palm.lr_sched.TriangularSchedualer(5, 40)
    trainer.build_backward(palm.optimizer.Adam(loss_var, lr, sched), weight_decay=0.01)
    trainer.fit_readers_with_mixratio([slot_reader, cls_reader], "slot", 2, **fit_options)
    return trainer, config


def params(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def test_one_backbone_copy_and_one_head_per_task(joint_data):
    trainer, _ = build_joint(joint_data["dir"], joint_data)
    names = list(trainer.model.state_dict())
    backbone = [n for n in names if n.startswith("backbone.")]
    assert backbone and len(backbone) == len(trainer.trainers[0].backbone.state_dict())
    assert {n.split(".")[1] for n in names if n.startswith("heads.")} == {"slot", "intent"}
    ids = [id(p) for p in trainer.model.parameters()]
    assert len(ids) == len(set(ids))
    assert trainer.trainers[0].backbone is trainer.trainers[1].backbone


def test_inactive_head_is_not_updated(joint_data):
    trainer, _ = build_joint(joint_data["dir"], joint_data)
    for _ in range(3):  # warm the optimizer state of both heads
        trainer.train_one_step(trainer.get_one_batch())
    before = params(trainer.model)
    slot_batch = trainer.trainers[0].get_one_batch()
    slot_batch["__task_id"] = np.array(0)
    trainer.train_one_step(slot_batch)
    after = params(trainer.model)
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert any(k.startswith("heads.slot.") for k in changed)
    assert any(k.startswith("backbone.") for k in changed)
    assert not any(k.startswith("heads.intent.") for k in changed)


def test_training_logs_palm_lines_and_budget(joint_data, tmp_path, capsys):
    trainer, _ = build_joint(joint_data["dir"], joint_data)
    slot_steps = trainer.trainers[0].steps_pur_epoch  # 192 // 16
    assert trainer.overall_train_steps == 2 * slot_steps + int(2 * 0.5 * slot_steps)
    trainer.train(print_steps=5)
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith("global step")]
    pattern = r"global step: \d+, (slot|intent): step \d+/\d+ \(epoch \d+\), loss: \d+\.\d{3}, speed: \d+\.\d+ steps/s"
    assert lines and all(re.fullmatch(pattern, l) for l in lines), lines[:3]
    assert trainer.trainers[0].cur_train_step == 2 * slot_steps
    assert trainer.trainers[1].cur_train_step == slot_steps


def test_loss_falls(joint_data):
    trainer, _ = build_joint(joint_data["dir"], joint_data, lr=3e-3)
    losses = [trainer.train_one_step(trainer.get_one_batch())[0]["loss"] for _ in range(trainer.overall_train_steps)]
    assert np.mean(losses[-6:]) < 0.5 * np.mean(losses[:6])


def test_resume_from_checkpoint_continues_exactly(joint_data, tmp_path):
    d = joint_data["dir"]
    full, _ = build_joint(d, joint_data, seed=4)
    full.train(print_steps=0)
    expected = params(full.model)

    first, _ = build_joint(d, joint_data, seed=4)
    first.set_saver(str(tmp_path), save_steps=10)
    half = 10
    first.max_steps = half  # stop after 10 steps, as an interrupted run would
    first.train(print_steps=0)
    assert os.path.isdir(tmp_path / "ckpt.step10")

    resumed, _ = build_joint(d, joint_data, seed=99)  # other init: everything must come from the checkpoint
    resumed.load_ckpt(str(tmp_path / "ckpt.step10"))
    resumed.train(print_steps=0)
    got = params(resumed.model)
    for k in expected:
        np.testing.assert_allclose(got[k], expected[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_checkpoint_is_written_whole_or_not_at_all(joint_data, tmp_path, monkeypatch):
    trainer, _ = build_joint(joint_data["dir"], joint_data)
    trainer.set_saver(str(tmp_path), save_steps=2)
    trainer.max_steps = 2
    calls = {"n": 0}
    real_save = paddle.save

    def failing_save(obj, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the optimizer file
            raise OSError("disk full")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(paddle, "save", failing_save)
    with pytest.raises(OSError):
        trainer.train(print_steps=0)
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(paddle, "save", real_save)
    trainer.state.global_step = 0
    trainer.train(print_steps=0)
    assert sorted(os.listdir(tmp_path / "ckpt.step2")) == ["DONE", "manifest.json", "model.pdparams", "optimizer.pdopt",
                                                         "rng.json", "trainer.json"]


def test_joint_checkpoint_predicts_identically_from_single_task_trainer(joint_data, tmp_path):
    d = joint_data["dir"]
    trainer, config = build_joint(d, joint_data)
    trainer.set_saver(str(tmp_path), save_steps=1000)
    trainer.train(print_steps=0)
    ckpt = str(tmp_path / f"ckpt.step{trainer.overall_train_steps}")
    vocab = os.path.join(d, "vocab.txt")

    def slot_reader():
        reader = palm.reader.SequenceLabelReader(vocab, 32, os.path.join(d, "label_map.json"), phase="predict")
        reader.load_data(os.path.join(d, "slot", "test.tsv"), batch_size=7)
        return reader

    def intent_reader():
        reader = palm.reader.ClassifyReader(vocab, 32, phase="predict")
        reader.load_data(os.path.join(d, "intent", "test.tsv"), batch_size=7)
        return reader

    # All heads at once through MultiHeadTrainer.predict ...
    pred_backbone = palm.backbone.ERNIE.from_config(config, phase="predict")
    slot, intent = palm.Trainer("slot"), palm.Trainer("intent")
    slot.build_predict_forward(pred_backbone, palm.head.SequenceLabel(joint_data["slot_classes"], 32, phase="predict"))
    intent.build_predict_forward(pred_backbone, palm.head.Classify(joint_data["intent_classes"], 32, phase="predict"))
    multi = palm.MultiHeadTrainer([slot, intent])
    multi.build_predict_forward()
    multi.load_ckpt(ckpt)
    multi.merge_inference_readers([slot_reader(), intent_reader()])
    joint = multi.predict(output_dir=str(tmp_path / "joint"))
    assert os.path.isfile(tmp_path / "joint" / "slot" / "predictions.json")

    # ... equal what a single-task Trainer predicts from the same joint checkpoint.
    for name, head, reader in (
            ("slot", palm.head.SequenceLabel(joint_data["slot_classes"], 32, phase="predict"), slot_reader()),
            ("intent", palm.head.Classify(joint_data["intent_classes"], 32, phase="predict"), intent_reader())):
        single = palm.Trainer(name)
        single.build_predict_forward(palm.backbone.ERNIE.from_config(config, phase="predict"), head)
        single.load_ckpt(ckpt)
        single.fit_reader(reader, phase="predict")
        results = single.predict(output_dir=str(tmp_path / name))
        assert [r["index"] for r in results] == list(range(reader.num_examples))
        assert [r["label"] for r in results] == [r["label"] for r in joint[name]]
        if name == "intent":
            np.testing.assert_allclose([r["probs"] for r in results], [r["probs"] for r in joint[name]], rtol=1e-5)
        else:
            gold = [line.rstrip("\n").split("\t")[0].split("\x02")
                    for line in open(os.path.join(d, "slot", "test.tsv"), encoding="utf-8").readlines()[1:]]
            assert [len(r["label"]) for r in results] == [len(words) for words in gold]


def test_load_pretrain_reports_and_refuses_mismatch(joint_data, tmp_path, capsys):
    trainer, config = build_joint(joint_data["dir"], joint_data)
    trainer.set_saver(str(tmp_path), save_steps=1000)
    trainer.max_steps = 1
    trainer.train(print_steps=0)
    other = palm.Trainer("x")
    other.build_forward(palm.backbone.ERNIE.from_config(config), palm.head.Classify(2, 32))
    report = other.load_pretrain(str(tmp_path / "ckpt.step1"))
    assert len(report.loaded) == len(other.backbone.state_dict()) and not report.missing
    assert f"loaded {len(report.loaded)} backbone parameters" in capsys.readouterr().err
    np.testing.assert_array_equal(other.backbone.state_dict()["model.embeddings.word_embeddings.weight"].numpy(),
                                  trainer.model.state_dict()["backbone.model.embeddings.word_embeddings.weight"].numpy())
    with pytest.raises(FileNotFoundError, match="does not exist"):
        other.load_pretrain(str(tmp_path / "no-such-dir"))
    paddle.save({"unrelated.weight": paddle.zeros([2])}, str(tmp_path / "model_state.pdparams"))
    with pytest.raises(ValueError, match="no parameter"):
        other.load_pretrain(str(tmp_path / "model_state.pdparams"))


def test_two_models_in_one_process_do_not_share_parameters(joint_data):
    a, _ = build_joint(joint_data["dir"], joint_data, seed=1)
    b, _ = build_joint(joint_data["dir"], joint_data, seed=2)
    before_b = params(b.model)
    for _ in range(3):
        a.train_one_step(a.get_one_batch())
    after_b = params(b.model)
    assert all(np.array_equal(before_b[k], after_b[k]) for k in before_b)
    assert not {id(p) for p in a.model.parameters()} & {id(p) for p in b.model.parameters()}


def test_reuse_head_with_shares_one_head(joint_data):
    d = joint_data["dir"]
    vocab = os.path.join(d, "vocab.txt")
    ernie = palm.backbone.ERNIE.from_config(tiny_config(sum(1 for _ in open(vocab, encoding="utf-8"))))
    a, b = palm.Trainer("a"), palm.Trainer("b", reuse_head_with="a")
    a.build_forward(ernie, palm.head.Classify(joint_data["intent_classes"], 32))
    b.build_forward(ernie, palm.head.Classify(joint_data["intent_classes"], 32))
    model = palm.MultiHeadTrainer([a, b]).build_forward()
    assert model.head_of("b") is model.head_of("a")
    assert not any(k.startswith("heads.b.") for k in model.state_dict())


def test_ema_predict_checkpoint_holds_averaged_weights_and_resumes(joint_data, tmp_path):
    d = joint_data["dir"]
    vocab = os.path.join(d, "vocab.txt")

    def build(seed):
        paddle.seed(seed)
        config = tiny_config(sum(1 for _ in open(vocab, encoding="utf-8")))
        config["hidden_dropout_prob"] = config["attention_probs_dropout_prob"] = 0.0
        reader = palm.reader.ClassifyReader(vocab, 32, seed=1)
        reader.load_data(os.path.join(d, "intent", "train.tsv"), batch_size=16, num_epochs=1)
        trainer = palm.Trainer("intent")
        model = trainer.build_forward(palm.backbone.ERNIE.from_config(config),
                                      palm.head.Classify(joint_data["intent_classes"], 32))
        trainer.build_backward(palm.optimizer.Adam(model, 1e-2), use_ema=True, ema_decay=0.5)
        trainer.fit_reader(reader)
        return trainer

    trainer = build(0)
    initial = params(trainer.model)
    ema = trainer.optimization.ema
    expected = {k: v.copy() for k, v in initial.items()}
    trainer.set_saver(str(tmp_path), save_steps=6, save_type="ckpt,predict")
    trainer.train_one_step(trainer.get_one_batch())
    decay = min(0.5, 1 / 10)  # warm-up: min(decay, (1 + t) / (10 + t)) at t = 0
    after = params(trainer.model)
    for k in ema.shadow:
        np.testing.assert_allclose(ema.shadow[k].numpy(), decay * expected[k] + (1 - decay) * after[k], rtol=1e-5,
                                   atol=1e-6)
    trainer.train(print_steps=0)  # to the end of the epoch (12 steps), saving at 6 and 12
    # pred.step12 is the inference model of the averaged weights, not of the raw ones
    import json
    from paddlepalm.evaluation import prediction_mode
    from paddlepalm.model import to_tensors
    meta = json.load(open(tmp_path / "pred.step12" / "palm_meta.json"))
    exported = paddle.jit.load(str(tmp_path / "pred.step12" / "inference"))
    batch = trainer.get_one_batch()
    probs = exported(*[paddle.to_tensor(batch[i["name"]]) for i in meta["inputs"]])
    probs = probs[[o["name"] for o in meta["outputs"]].index("probs")].numpy()
    raw = trainer.model.state_dict()
    averaged = {k: ema.shadow[k] if k in ema.shadow else v for k, v in raw.items()}
    with prediction_mode(trainer.model, "intent"):
        raw_probs = trainer.model("intent", to_tensors(batch))["probs"].numpy()
        trainer.model.set_state_dict(averaged)
        averaged_probs = trainer.model("intent", to_tensors(batch))["probs"].numpy()
    np.testing.assert_allclose(probs, averaged_probs, rtol=1e-5, atol=1e-6)
    assert not np.allclose(probs, raw_probs, atol=1e-4)
    resumed = build(1)
    resumed.load_ckpt(str(tmp_path / "ckpt.step6"))
    assert resumed.optimization.ema.steps == 6
