"""Issue 14: joint batches (several heads on the same examples, one backbone pass), several
tasks per update, micro-batch accumulation, loss weights and per-task clipping; exact resume in
each mode. Gradients are compared with an SGD step of learning rate 1 (the update is minus the
gradient) or with an Adam step made by hand on the summed losses."""
import os

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from paddlepalm.update import Optimization, train_update
from paddlepalm.model import to_tensors
from paddlepalm.sampling.draws import draw_task_order, draw_update_order
from test_reliability import DROPOUT, assert_same
from test_trainer import build_joint, params


def sgd(model):
    return paddle.optimizer.SGD(learning_rate=1.0, parameters=model.parameters())


def sgd_update(trainer, work):
    """Minus the change of every parameter in one ``train_update`` with SGD(lr=1): the gradient used."""
    before = params(trainer.model)
    train_update(trainer.model, Optimization(sgd(trainer.model)), work)
    after = params(trainer.model)
    return {k: before[k] - after[k] for k in before}


def task_gradient(model, task, batch, weight=1.0):
    """The gradient of ``weight * loss`` of one task alone (its own backbone pass)."""
    model.train()
    model.clear_gradients(set_to_zero=False)
    (model(task, to_tensors(batch))["loss"] * weight).backward()
    grads = {name: (p.grad.numpy().copy() if p.grad is not None else np.zeros(p.shape, "float32"))
             for name, p in model.named_parameters()}
    model.clear_gradients(set_to_zero=False)
    return grads


def joint_work(trainer):
    batch = trainer.get_one_batch()
    units = batch.pop("__units")
    return [([trainer.get_trainer(name) for name in unit], {name: batch[name] for name in unit}) for unit in units], batch


# ------------------------------------------------------------------ joint batches
def test_joint_batch_runs_the_backbone_once_per_update(joint_data):
    trainer, _ = build_joint(joint_data["dir"], joint_data, intent_ratio=1.0, joint=True)
    calls = []
    hook = trainer.model.backbone.register_forward_pre_hook(lambda layer, inputs: calls.append(1))
    trainer.max_steps = 5
    trainer.train(print_steps=0)
    hook.remove()
    assert trainer.overall_train_steps == 5 and len(calls) == 5
    assert [t.cur_train_step for t in trainer.trainers] == [5, 5]
    # the alternating mode over the same examples: one task per update, one pass each
    alternating, _ = build_joint(joint_data["dir"], joint_data, intent_ratio=1.0)
    assert alternating.overall_train_steps == 2 * trainer.trainers[0].steps_pur_epoch * 2
    assert trainer.trainers[0].budget == trainer.trainers[0].steps_pur_epoch * 2


def test_joint_gradient_is_the_sum_of_the_task_gradients(joint_data):
    trainer, _ = build_joint(joint_data["dir"], joint_data, intent_ratio=1.0, joint=True)
    work, batches = joint_work(trainer)
    assert batches["slot"]["token_ids"].shape == batches["intent"]["token_ids"].shape
    separate = [task_gradient(trainer.model, task, batches[task]) for task in ("slot", "intent")]
    used = sgd_update(trainer, work)
    for key, delta in used.items():
        expected = separate[0][key] + separate[1][key]
        np.testing.assert_allclose(delta, expected, rtol=1e-5, atol=1e-6, err_msg=key)
    backbone = [k for k in used if k.startswith("backbone.")]
    assert all(np.abs(separate[i][k]).sum() > 0 for i in (0, 1) for k in backbone[:3])  # both tasks move it


def test_joint_group_with_other_sentences_is_refused_naming_the_line(joint_data, tmp_path):
    d = joint_data["dir"]
    lines = open(os.path.join(d, "intent", "train.tsv"), encoding="utf-8").read().split("\n")
    label, text = lines[5].split("\t")
    lines[5] = f"{label}\t{text} extra words"
    changed = tmp_path / "intent_train.tsv"
    changed.write_text("\n".join(lines), encoding="utf-8")
    vocab = os.path.join(d, "vocab.txt")
    paddle.seed(0)
    from conftest import tiny_config
    ernie = palm.backbone.ERNIE.from_config(tiny_config(sum(1 for _ in open(vocab, encoding="utf-8"))))
    slot_reader = palm.reader.SequenceLabelReader(vocab, 32, os.path.join(d, "label_map.json"), seed=1)
    slot_reader.load_data(os.path.join(d, "slot", "train.tsv"), batch_size=16)
    cls_reader = palm.reader.ClassifyReader(vocab, 32, seed=1)
    cls_reader.load_data(str(changed), batch_size=16)
    slot, intent = palm.Trainer("slot"), palm.Trainer("intent")
    slot.build_forward(ernie, palm.head.SequenceLabel(joint_data["slot_classes"], 32))
    intent.build_forward(ernie, palm.head.Classify(joint_data["intent_classes"], 32))
    trainer = palm.MultiHeadTrainer([slot, intent])
    trainer.build_backward(palm.optimizer.Adam(trainer.build_forward(), 1e-3))
    with pytest.raises(ValueError, match=r"intent_train.tsv:6 is tokenized as"):
        trainer.fit_readers_with_mixratio([slot_reader, cls_reader], "slot", 1, joint=True)
    other_seed = palm.reader.ClassifyReader(vocab, 32, seed=2)
    other_seed.load_data(os.path.join(d, "intent", "train.tsv"), batch_size=16)
    with pytest.raises(ValueError, match="reader seed 2 vs 1"):
        trainer.fit_readers_with_mixratio([slot_reader, other_seed], "slot", 1, joint=True)
    with pytest.raises(ValueError, match="mix_ratio"):
        build_joint(d, joint_data, intent_ratio=0.5, joint=True)
    with pytest.raises(ValueError, match="more than one joint group"):
        build_joint(d, joint_data, intent_ratio=1.0, joint=[["slot", "intent"], ["intent", "slot"]])


def test_palm_style_loop_over_joint_batches(joint_data):
    """get_one_batch / train_one_step carry a joint update as PALM's loop expects."""
    trainer, _ = build_joint(joint_data["dir"], joint_data, intent_ratio=1.0, joint=True)
    out, ids = trainer.train_one_step(trainer.get_one_batch())
    assert ids == (0, 1) and set(out["losses"]) == {"slot", "intent"}
    assert out["loss"] == pytest.approx(sum(out["losses"].values()), rel=1e-6)
    assert [t.cur_train_step for t in trainer.trainers] == [1, 1]


# ------------------------------------------------------------- several tasks per update
def test_update_schedule_draws_distinct_tasks_within_budgets():
    rows = draw_update_order([1.0, 2.0, 1.0], [50, 80, 30], [False] * 3, per_update=2, seed=4)
    assert rows.shape[1] == 2
    for row in rows:
        drawn = row[row >= 0]
        assert len(set(drawn.tolist())) == len(drawn)
    assert np.bincount(rows[rows >= 0], minlength=3).tolist() == [50, 80, 30]
    one = draw_update_order([1.0, 2.0], [20, 40], [False, False], per_update=1, seed=3)
    np.testing.assert_array_equal(one[:, 0], draw_task_order([1.0, 2.0], [20, 40], [False, False], seed=3))
    every = draw_update_order([1.0, 1.0], [5, 7], [False, False], per_update="all")
    assert every.tolist() == [[0, 1]] * 5 + [[1, -1]] * 2
    with pytest.raises(ValueError, match="tasks_per_update"):
        draw_update_order([1.0, 1.0], [5, 5], [False, False], per_update=3)


def test_k_tasks_per_update_is_one_update_on_the_summed_losses(joint_data):
    trainer, _ = build_joint(joint_data["dir"], joint_data, tasks_per_update="all")
    reference, _ = build_joint(joint_data["dir"], joint_data, seed=1)
    reference.model.set_state_dict(trainer.model.state_dict())
    for _ in range(2):  # also past the first Adam step
        batch = trainer.get_one_batch()
        assert batch["__units"] == [("slot",), ("intent",)]
        out, ids = trainer.train_one_step(dict(batch))
        assert ids == (0, 1)
        model, optimizer = reference.model, reference.optimizer
        model.train()
        loss = model("slot", to_tensors(batch["slot"]))["loss"] + model("intent", to_tensors(batch["intent"]))["loss"]
        loss.backward()
        optimizer.step()
        optimizer.clear_grad(set_to_zero=False)
        reference.optimization.lr_scheduler.step()
        assert out["loss"] == pytest.approx(float(loss), rel=1e-5)
    got, expected = params(trainer.model), params(reference.model)
    for key in got:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-6, err_msg=key)


# ------------------------------------------------------------------- micro-batches
def test_micro_batches_equal_one_batch_of_their_total_size(joint_data):
    whole, _ = build_joint(joint_data["dir"], joint_data, batch_size=16)
    split, _ = build_joint(joint_data["dir"], joint_data, batch_size=16,
                           slot_settings={"micro_batches": 4}, intent_settings={"micro_batches": 3})
    split.model.set_state_dict(whole.model.state_dict())
    for _ in range(4):
        batch = whole.get_one_batch()
        out_whole, task = whole.train_one_step(dict(batch))
        out_split, _ = split.train_one_step(dict(batch))
        assert out_split["loss"] == pytest.approx(out_whole["loss"], rel=1e-5)
    got, expected = params(split.model), params(whole.model)
    for key in got:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_masked_lm_micro_batches_weigh_by_masked_tokens(joint_data):
    vocab = os.path.join(joint_data["dir"], "vocab.txt")
    reader = palm.reader.MaskLMReader(vocab, 32, seed=3)
    reader.load_data(os.path.join(joint_data["dir"], "intent", "train.tsv"), batch_size=8)
    batch = next(reader.iter_epoch(0))
    pieces = reader.split_batch(batch, 3)
    assert sum(w for _, w in pieces) == pytest.approx(1.0)
    width = batch["token_ids"].shape[1]
    rebuilt = []
    first_row = 0
    for piece, weight in pieces:
        assert weight == pytest.approx(len(piece["mask_pos"]) / len(batch["mask_pos"]))
        assert (piece["mask_pos"] < len(piece["token_ids"]) * width).all()
        rebuilt.extend((piece["mask_pos"] + first_row * width).tolist())
        first_row += len(piece["token_ids"])
    assert rebuilt == batch["mask_pos"].tolist()
    with pytest.raises(ValueError, match="micro_batches"):
        palm.Trainer("mlm", micro_batches=0)


# --------------------------------------------------------------- weights and clipping
def test_loss_weight_scales_the_task_gradient(joint_data):
    trainer, _ = build_joint(joint_data["dir"], joint_data, intent_ratio=1.0, joint=True,
                             intent_settings={"loss_weight": 0.25})
    work, batches = joint_work(trainer)
    slot = task_gradient(trainer.model, "slot", batches["slot"])
    intent = task_gradient(trainer.model, "intent", batches["intent"])
    used = sgd_update(trainer, work)
    for key, delta in used.items():
        np.testing.assert_allclose(delta, slot[key] + 0.25 * intent[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_per_task_clip_clips_that_task_before_the_sum(joint_data):
    trainer, _ = build_joint(joint_data["dir"], joint_data, intent_ratio=1.0, joint=True,
                             slot_settings={"clip_norm": 0.05})
    work, batches = joint_work(trainer)
    slot = task_gradient(trainer.model, "slot", batches["slot"])
    intent = task_gradient(trainer.model, "intent", batches["intent"])
    norm = np.sqrt(sum((g.astype("float64") ** 2).sum() for g in slot.values()))
    assert norm > 0.05  # the clip is active
    used = sgd_update(trainer, work)
    for key, delta in used.items():
        np.testing.assert_allclose(delta, slot[key] * (0.05 / norm) + intent[key], rtol=1e-4, atol=1e-6,
                                   err_msg=key)


# -------------------------------------------------------------------- exact resume
@pytest.mark.parametrize("mode", [dict(joint=True, intent_ratio=1.0), dict(tasks_per_update="all"),
                                  dict(slot_settings={"micro_batches": 2})], ids=["joint", "all_tasks", "micro"])
def test_resume_is_exact_in_every_update_mode(joint_data, tmp_path, mode):
    d = joint_data["dir"]
    full, _ = build_joint(d, joint_data, dropout=DROPOUT, **mode)
    total = min(8, full.overall_train_steps)
    full.max_steps = total
    full.train(print_steps=0)
    first, _ = build_joint(d, joint_data, dropout=DROPOUT, **mode)
    first.max_steps = total // 2
    first.set_saver(str(tmp_path), save_steps=total // 2)
    first.train(print_steps=0)
    second, _ = build_joint(d, joint_data, dropout=DROPOUT, seed=7, **mode)
    second.max_steps = total
    second.load_ckpt(str(tmp_path / f"ckpt.step{total // 2}"))
    second.train(print_steps=0)
    assert_same(params(second.model), params(full.model))


def test_a_word_the_tokenizer_drops_keeps_its_place_in_both_readers(joint_data, tmp_path):
    """SNIPS has a 'word' of U+FFFD characters: the tokenizer drops it, the sequence-label reader
    needs a token for its tag ([UNK]); the classify reader must give the same ids, or the two
    files of one data set could not train on joint batches."""
    d = joint_data["dir"]
    vocab = os.path.join(d, "vocab.txt")
    (tmp_path / "intent.tsv").write_text("label\ttext_a\n0\tshow \ufffd\ufffd flights\n1\tfares\n", encoding="utf-8")
    (tmp_path / "slot.tsv").write_text("text_a\tlabel\nshow\x02\ufffd\ufffd\x02flights\tO\x02O\x02O\nfares\tO\n",
                                       encoding="utf-8")
    intent = palm.reader.ClassifyReader(vocab, 32, seed=1)
    intent.load_data(str(tmp_path / "intent.tsv"), batch_size=1)
    slot = palm.reader.SequenceLabelReader(vocab, 32, os.path.join(d, "label_map.json"), seed=1)
    slot.load_data(str(tmp_path / "slot.tsv"), batch_size=1)
    ids = [f["token_ids"] for f in intent.features]
    assert ids == [f["token_ids"] for f in slot.features]
    assert len(ids[0]) == 5 and intent.tokenizer.convert_ids_to_tokens(ids[0])[2] == "[UNK]"
