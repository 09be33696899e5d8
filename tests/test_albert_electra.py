"""ALBERT and ELECTRA backbones under Trainer (Classify, SequenceLabel) and MultiHeadTrainer."""
import os

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from conftest import tiny_config


def backbone_config(kind: str, vocab_size: int) -> dict:
    config = tiny_config(vocab_size)
    config["embedding_size"] = 16  # factorized: smaller than hidden_size 32
    if kind == "albert":
        config.update(num_hidden_layers=4, num_hidden_groups=2, inner_group_num=1)
    return config


BACKBONES = {"albert": palm.backbone.ALBERT, "electra": palm.backbone.ELECTRA}


def _vocab(joint_data):
    path = os.path.join(joint_data["dir"], "vocab.txt")
    return path, sum(1 for _ in open(path, encoding="utf-8"))


@pytest.mark.parametrize("kind", sorted(BACKBONES))
def test_config_keys_are_read(kind):
    backbone = BACKBONES[kind].from_config(backbone_config(kind, 50))
    assert backbone.embedding_size == 16
    outputs = backbone({"token_ids": paddle.to_tensor([[2, 5, 6, 3]]), "segment_ids": paddle.zeros([1, 4], "int64"),
                        "position_ids": paddle.arange(4).unsqueeze(0), "input_mask": paddle.ones([1, 4, 1])})
    assert set(outputs) == set(backbone.outputs_attr)
    assert outputs["embedding_table"].shape == [50, 16]
    assert outputs["encoder_outputs"].shape == [1, 4, 32]
    assert outputs["sentence_embedding"].shape == [1, 32]
    if kind == "albert":
        # 4 layer applications share 2 groups of 1 layer: 2 sets of layer weights
        assert len(backbone.model.encoder.albert_layer_groups) == 2


@pytest.mark.parametrize("kind", sorted(BACKBONES))
def test_padding_does_not_change_outputs(kind):
    """The attention mask must hide padding (ELECTRA needs an additive mask)."""
    paddle.seed(0)
    backbone = BACKBONES[kind].from_config(backbone_config(kind, 50), phase="predict")

    def run(ids, width):
        ids = ids + [0] * (width - len(ids))
        mask = [[1.0 if i < 4 else 0.0] for i in range(width)]
        return backbone({"token_ids": paddle.to_tensor([ids]), "segment_ids": paddle.zeros([1, width], "int64"),
                         "position_ids": paddle.arange(width).unsqueeze(0), "input_mask": paddle.to_tensor([mask])})

    short, padded = run([2, 5, 6, 3], 4), run([2, 5, 6, 3], 9)
    np.testing.assert_allclose(short["encoder_outputs"].numpy(), padded["encoder_outputs"].numpy()[:, :4], atol=1e-5)
    np.testing.assert_allclose(short["sentence_embedding"].numpy(), padded["sentence_embedding"].numpy(), atol=1e-5)


@pytest.mark.parametrize("kind", sorted(BACKBONES))
def test_trains_with_classify_and_sequence_label(kind, joint_data, tmp_path):
    d = joint_data["dir"]
    vocab, size = _vocab(joint_data)
    paddle.seed(1)
    for task, reader, head in [
        ("intent", palm.reader.ClassifyReader(vocab, 32, seed=1),
         palm.head.Classify(joint_data["intent_classes"], 32, 0.1)),
        ("slot", palm.reader.SequenceLabelReader(vocab, 32, os.path.join(d, "label_map.json"), seed=1),
         palm.head.SequenceLabel(joint_data["slot_classes"], 32, 0.1)),
    ]:
        backbone = BACKBONES[kind].from_config(backbone_config(kind, size))
        reader.load_data(os.path.join(d, task, "train.tsv"), batch_size=32, num_epochs=2)
        trainer = palm.Trainer(task)
        loss_var = trainer.build_forward(backbone, head)
        trainer.build_backward(palm.optimizer.Adam(loss_var, 3e-3))
        trainer.fit_reader(reader)
        batch = trainer.get_one_batch()
        first = trainer.train_one_step(batch)["loss"]
        for _ in range(8):
            last = trainer.train_one_step(batch)["loss"]
        assert last < first, f"{kind}/{task}: loss did not fall on a repeated batch ({first} -> {last})"
        trainer.set_saver(str(tmp_path / kind / task), save_steps=100)
        trainer.train(print_steps=0)
        # the 9 steps above count towards the budget of 2 epochs
        assert os.listdir(tmp_path / kind / task) == [f"ckpt.step{2 * reader.steps_per_epoch}"]

        # predict from the checkpoint
        pred_reader = reader.clone("predict")
        pred_reader.load_data(os.path.join(d, task, "test.tsv"), batch_size=16)
        predictor = palm.Trainer(task)
        pred_head = type(head)(head.num_classes, 32, phase="predict")
        predictor.build_predict_forward(BACKBONES[kind].from_config(backbone_config(kind, size), phase="predict"),
                                        pred_head)
        ckpt = sorted(os.listdir(tmp_path / kind / task))[-1]
        predictor.load_ckpt(str(tmp_path / kind / task / ckpt))
        predictor.fit_reader(pred_reader, phase="predict")
        results = predictor.predict()
        assert len(results) == pred_reader.num_examples


@pytest.mark.parametrize("kind", sorted(BACKBONES))
def test_trains_under_multihead_trainer(kind, joint_data, tmp_path):
    d = joint_data["dir"]
    vocab, size = _vocab(joint_data)
    paddle.seed(2)
    backbone = BACKBONES[kind].from_config(backbone_config(kind, size))
    slot_reader = palm.reader.SequenceLabelReader(vocab, 32, os.path.join(d, "label_map.json"), seed=1)
    slot_reader.load_data(os.path.join(d, "slot", "train.tsv"), batch_size=16)
    cls_reader = palm.reader.ClassifyReader(vocab, 32, seed=1)
    cls_reader.load_data(os.path.join(d, "intent", "train.tsv"), batch_size=16)
    slot, intent = palm.Trainer("slot"), palm.Trainer("intent")
    slot.build_forward(backbone, palm.head.SequenceLabel(joint_data["slot_classes"], 32, 0.1))
    intent.build_forward(backbone, palm.head.Classify(joint_data["intent_classes"], 32, 0.1))
    trainer = palm.MultiHeadTrainer([slot, intent])
    loss_var = trainer.build_forward()
    trainer.build_backward(palm.optimizer.Adam(loss_var, 1e-3), weight_decay=0.01)
    trainer.fit_readers_with_mixratio([slot_reader, cls_reader], "slot", 1)
    trainer.set_saver(str(tmp_path), save_steps=100)
    trainer.train(print_steps=0)
    assert trainer.overall_train_steps == 24
    assert os.path.isdir(tmp_path / "ckpt.step24")
