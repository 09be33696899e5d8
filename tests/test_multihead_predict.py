import json
import os

import pytest

import paddlepalm as palm
from conftest import tiny_config


def _readers(d, vocab, phase, batch_size):
    slot = palm.reader.SequenceLabelReader(vocab, 32, os.path.join(d, "label_map.json"), phase=phase, seed=1)
    intent = palm.reader.ClassifyReader(vocab, 32, phase=phase, seed=1)
    split = "train" if phase == "train" else "test"
    slot.load_data(os.path.join(d, "slot", f"{split}.tsv"), batch_size=batch_size)
    intent.load_data(os.path.join(d, "intent", f"{split}.tsv"), batch_size=batch_size)
    return {"slot": slot, "intent": intent}


def _heads(joint_data, phase):
    return {"slot": palm.head.SequenceLabel(joint_data["slot_classes"], 32, phase=phase),
            "intent": palm.head.Classify(joint_data["intent_classes"], 32, phase=phase)}


def test_multihead_predict_equals_single_task_predictions(joint_data, tmp_path):
    d = joint_data["dir"]
    vocab = os.path.join(d, "vocab.txt")
    config = tiny_config(sum(1 for _ in open(vocab, encoding="utf-8")))
    ernie = palm.backbone.ERNIE.from_config(config)
    readers, heads = _readers(d, vocab, "train", 16), _heads(joint_data, "train")
    trainers = [palm.Trainer(t) for t in ("slot", "intent")]
    for t in trainers:
        t.build_forward(ernie, heads[t.name])
    trainer = palm.MultiHeadTrainer(trainers)
    loss_var = trainer.build_forward()
    trainer.build_backward(palm.optimizer.Adam(loss_var, 3e-3))
    trainer.fit_readers_with_mixratio([readers["slot"], readers["intent"]], "slot", 1)
    trainer.set_saver(str(tmp_path / "ckpt"), save_steps=1000)
    trainer.train(print_steps=0)
    ckpt = str(tmp_path / "ckpt" / f"ckpt.step{trainer.overall_train_steps}")

    # one MultiHeadTrainer predicting both heads
    pred_ernie = palm.backbone.ERNIE.from_config(config, phase="predict")
    pred_heads, pred_readers = _heads(joint_data, "predict"), _readers(d, vocab, "predict", 10)
    predictors = [palm.Trainer(t) for t in ("slot", "intent")]
    for p in predictors:
        p.build_predict_forward(pred_ernie, pred_heads[p.name])
    multi = palm.MultiHeadTrainer(predictors)
    multi.build_predict_forward()
    multi.load_ckpt(ckpt)
    multi.merge_inference_readers([pred_readers["slot"], pred_readers["intent"]])
    joint = multi.predict(output_dir=str(tmp_path / "multi"))
    assert set(joint) == {"slot", "intent"}

    for task in ("slot", "intent"):
        single = palm.Trainer(task)
        backbone = palm.backbone.ERNIE.from_config(config, phase="predict")
        single.build_predict_forward(backbone, _heads(joint_data, "predict")[task])
        single.load_ckpt(ckpt)
        reader = _readers(d, vocab, "predict", 7)[task]  # another batch size: results must not depend on it
        single.fit_reader(reader, phase="predict")
        alone = single.predict(output_dir=str(tmp_path / "single" / task))
        assert len(alone) == reader.num_examples == len(joint[task])
        for a, b in zip(alone, joint[task]):
            assert a["index"] == b["index"] and a["label"] == b["label"]
            if task == "intent":
                assert a["probs"] == pytest.approx(b["probs"], abs=1e-5)
        written = [json.loads(line) for line in open(tmp_path / "multi" / task / "predictions.json", encoding="utf-8")]
        # sequence labeling writes PALM's format, a list of tag ids per line; classification an object
        assert [w if task == "slot" else w["label"] for w in written] == [a["label"] for a in alone]

        batch = next(pred_readers[task].iter_epoch(0))
        one = multi.predict_one_batch(task, batch)  # PALM's answer: a dict of arrays
        assert len(one["logits"]) == len(batch["example_ids"])
        decoded = multi.pred_model.head_of(task).batch_results(one)
        assert [r["label"] for r in decoded] == [alone[i]["label"] for i in batch["example_ids"]]
    with pytest.raises(KeyError, match="no task named 'nope'"):
        multi.predict_one_batch("nope", batch)
