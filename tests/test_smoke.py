import os

import paddlepalm as palm
from conftest import tiny_config


def test_joint_training_runs_and_predicts(joint_data, tmp_path):
    d = joint_data["dir"]
    vocab = os.path.join(d, "vocab.txt")
    config = tiny_config(sum(1 for _ in open(vocab, encoding="utf-8")))
    ernie = palm.backbone.ERNIE.from_config(config)
    slot_reader = palm.reader.SequenceLabelReader(vocab, 32, os.path.join(d, "label_map.json"), seed=1)
    slot_reader.load_data(os.path.join(d, "slot", "train.tsv"), batch_size=16)
    cls_reader = palm.reader.ClassifyReader(vocab, 32, seed=1)
    cls_reader.load_data(os.path.join(d, "intent", "train.tsv"), batch_size=16)
    slot = palm.Trainer("slot")
    intent = palm.Trainer("intent")
    slot.build_forward(ernie, palm.head.SequenceLabel(joint_data["slot_classes"], 32, 0.1))
    intent.build_forward(ernie, palm.head.Classify(joint_data["intent_classes"], 32, 0.1))
    trainer = palm.MultiHeadTrainer([slot, intent])
    loss_var = trainer.build_forward()
    trainer.build_backward(palm.optimizer.Adam(loss_var, 1e-3), weight_decay=0.01)
    trainer.fit_readers_with_mixratio([slot_reader, cls_reader], "slot", 1)
    trainer.set_saver(str(tmp_path), save_steps=100)
    trainer.train(print_steps=5)
    assert trainer.overall_train_steps == 24
    assert os.path.isdir(tmp_path / "ckpt.step24")
