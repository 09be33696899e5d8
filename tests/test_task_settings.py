"""Issue 14, per-task optimization settings: the learning rate each parameter is actually
updated with (backbone / head multipliers, layer-wise decay, the CRF's ParamAttr rate), global
clipping, validation, and the settings recorded in checkpoints; on real ATIS sentences.

The effective learning rate is read off Adam's first update, which moves a parameter element
by exactly ``lr_eff * g / (|g| + eps)`` (Paddle's bias-corrected form at step 1), ``g`` being
its gradient: ``lr_eff = -delta * (|g| + eps) / g`` wherever ``g`` is not tiny."""
import json
import os
import warnings

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from conftest import tiny_config
from paddlepalm.model import to_tensors

LR = 1e-2
EPS = 1e-6  # the optimizers' epsilon
HIDDEN = 32


@pytest.fixture(scope="module")
def atis(data_root, tmp_path_factory):
    import prepare_data

    out = str(tmp_path_factory.mktemp("atis"))
    sizes = prepare_data.convert(os.path.join(data_root, "atis"), out)
    prepare_data.head(out, 500)  # the training sentences the tests train on (dev's labels need not be in the maps)
    return {"dir": out, **sizes}


def backbone(kind, d, dropout=0.0):
    with open(os.path.join(d, "vocab.txt"), encoding="utf-8") as f:
        config = tiny_config(sum(1 for _ in f), hidden=HIDDEN)
    config["hidden_dropout_prob"] = config["attention_probs_dropout_prob"] = dropout
    if kind in ("albert", "electra"):
        config["embedding_size"] = 16  # ELECTRA then has an embeddings projection (depth 0 too)
    return {"ernie": palm.backbone.ERNIE, "bert": palm.backbone.BERT, "albert": palm.backbone.ALBERT,
            "electra": palm.backbone.ELECTRA}[kind].from_config(config)


def build(atis, kind="ernie", optimizer="Adam", seed=0, dropout=0.0, crf_lr=1.0, slot=None, intent=None,
          weight_decay=None, **optimizer_kwargs):
    """slot (CRF tagger) + intent (classifier) on one backbone, trained on 500 ATIS training sentences."""
    d = atis["dir"]
    paddle.seed(seed)
    vocab = os.path.join(d, "vocab.txt")
    encoder = backbone(kind, d, dropout)
    slot_reader = palm.reader.SequenceLabelReader(vocab, 48, os.path.join(d, "label_map.json"), seed=1)
    slot_reader.load_data(os.path.join(d, "slot", "train_head.tsv"), batch_size=16)
    cls_reader = palm.reader.ClassifyReader(vocab, 48, seed=1)
    cls_reader.load_data(os.path.join(d, "intent", "train_head.tsv"), batch_size=16)
    slot_task, intent_task = palm.Trainer("slot", **(slot or {})), palm.Trainer("intent", **(intent or {}))
    slot_task.build_forward(encoder, palm.head.SequenceLabel(atis["slot_classes"], HIDDEN, dropout,
                                                             learning_rate=crf_lr))
    intent_task.build_forward(encoder, palm.head.Classify(atis["intent_classes"], HIDDEN, dropout))
    trainer = palm.MultiHeadTrainer([slot_task, intent_task], seed=3)
    loss_var = trainer.build_forward()
    optimizer_kwargs.setdefault("grad_clip_norm", None)
    trainer.build_backward(getattr(palm.optimizer, optimizer)(loss_var, LR, **optimizer_kwargs),
                           weight_decay=weight_decay)
    trainer.fit_readers_with_mixratio([slot_reader, cls_reader], "slot", 1)
    return trainer


def params(model):
    return {k: v.numpy().copy() for k, v in model.named_parameters()}


def step_task(trainer, task_index):
    """One public ``train_one_step`` on the next batch of task ``task_index``; returns the
    parameters before, after, and the gradient of that batch (same batch, no dropout)."""
    batch = trainer.trainers[task_index].get_one_batch()
    model = trainer.model
    before = params(model)
    loss = model(trainer.trainers[task_index].name, to_tensors(batch))["loss"]
    loss.backward()
    grads = {k: p.grad.numpy().copy() for k, p in model.named_parameters() if p.grad is not None}
    trainer.optimizer.clear_grad(set_to_zero=False)
    trainer.train_one_step(dict(batch, __task_id=np.array(task_index)))
    return before, params(model), grads


def effective_lrs(before, after, grads):
    """Per parameter with a usable gradient: the learning rate Adam's first step used."""
    lrs = {}
    for name, g in grads.items():
        usable = np.abs(g) > 1e-4
        if usable.any():
            delta = (after[name] - before[name])[usable]
            lrs[name] = float(np.median(-delta * (np.abs(g[usable]) + EPS) / g[usable]))
    return lrs


def assert_lrs(measured, expected_of):
    """``expected_of(name)`` is the factor on LR (None: parameter not checked here)."""
    checked = 0
    for name, lr in measured.items():
        factor = expected_of(name)
        if factor is not None:
            assert lr == pytest.approx(LR * factor, rel=2e-3), f"{name}: lr {lr:.6g}, expected {LR * factor:.6g}"
            checked += 1
    return checked


# ----------------------------------------------------------- layer-wise decay
def electra_depth(name):
    """Depth as google-research/electra's _get_layer_lrs counts it (2 layers): embeddings 0,
    layer i i+1, pooler 3 (above the top layer), heads 4; written out here, not computed by the
    code under test."""
    if name.startswith(("backbone.model.embeddings.", "backbone.model.embeddings_project.")):
        return 0
    if name.startswith("backbone.model.encoder.layers.0."):
        return 1
    if name.startswith("backbone.model.encoder.layers.1."):
        return 2
    if name.startswith(("backbone.model.pooler.", "backbone.pooler.")):
        return 3
    assert name.startswith("heads."), name
    return 4


@pytest.mark.parametrize("kind", ["ernie", "bert", "electra"])
def test_layerwise_decay_gives_each_layer_its_factor(atis, kind):
    trainer = build(atis, kind, layerwise_lr_decay=0.8)
    measured = effective_lrs(*step_task(trainer, 1))  # intent: the pooler and every layer get gradients
    groups = {electra_depth(name) for name in measured}
    assert groups == {0, 1, 2, 3, 4}, groups
    assert assert_lrs(measured, lambda name: 0.8 ** (4 - electra_depth(name))) == len(measured)


def test_backbone_and_head_multipliers_compose_with_decay_and_the_crf_rate(atis):
    trainer = build(atis, layerwise_lr_decay=0.9, backbone_lr_multiplier=0.5, crf_lr=0.1,
                    slot={"lr_multiplier": 4.0})

    def slot_factor(name):
        if name == "heads.slot.transitions":
            return 4.0 * 0.1  # the task's multiplier times SequenceLabel(learning_rate=0.1)
        if name.startswith("heads.slot."):
            return 4.0
        return 0.5 * 0.9 ** (4 - electra_depth(name))

    measured = effective_lrs(*step_task(trainer, 0))
    assert "heads.slot.transitions" in measured and "heads.slot.emission.weight" in measured
    assert assert_lrs(measured, slot_factor) == len(measured)
    # the intent head's first update (its Adam state is fresh): its own multiplier, 1
    measured = effective_lrs(*step_task(trainer, 1))
    intent = {k: v for k, v in measured.items() if k.startswith("heads.intent.")}
    assert len(intent) == 2 and assert_lrs(intent, lambda name: 1.0) == 2


def test_crf_rate_alone_still_applies(atis):
    measured = effective_lrs(*step_task(build(atis, crf_lr=0.1), 0))
    assert assert_lrs(measured, lambda name: 0.1 if name == "heads.slot.transitions" else 1.0) == len(measured)


def test_a_reused_head_keeps_its_owners_multiplier(atis):
    d = atis["dir"]
    paddle.seed(0)
    encoder = backbone("ernie", d)
    readers = []
    for _ in range(2):
        reader = palm.reader.ClassifyReader(os.path.join(d, "vocab.txt"), 48, seed=1)
        reader.load_data(os.path.join(d, "intent", "train_head.tsv"), batch_size=16)
        readers.append(reader)
    owner, reuser = palm.Trainer("intent", lr_multiplier=3.0), palm.Trainer("intent2", reuse_head_with="intent")
    owner.build_forward(encoder, palm.head.Classify(atis["intent_classes"], HIDDEN))
    reuser.build_forward(encoder, palm.head.Classify(atis["intent_classes"], HIDDEN))
    trainer = palm.MultiHeadTrainer([owner, reuser])
    trainer.build_backward(palm.optimizer.Adam(trainer.build_forward(), LR, grad_clip_norm=None))
    trainer.fit_readers_with_mixratio(readers, "intent", 1)
    measured = effective_lrs(*step_task(trainer, 1))  # a step of the reusing task
    assert assert_lrs(measured, lambda name: 3.0 if name.startswith("heads.intent.") else 1.0) == len(measured)
    with pytest.raises(ValueError, match="lr_multiplier belongs to the head's owner"):
        palm.Trainer("intent3", reuse_head_with="intent", lr_multiplier=2.0)


@pytest.mark.parametrize("optimizer", ["AdamW", "LAMB"])
def test_every_optimizer_applies_the_multipliers(atis, optimizer):
    """AdamW's and LAMB's first updates are linear in the learning rate (LAMB's trust ratio does
    not depend on it): with the settings, each parameter moves by its factor times the plain move."""
    settings = dict(layerwise_lr_decay=0.8, backbone_lr_multiplier=0.5)
    plain = step_task(build(atis, optimizer=optimizer), 0)
    tuned = step_task(build(atis, optimizer=optimizer, slot={"lr_multiplier": 2.0}, **settings), 0)
    assert all(np.array_equal(plain[0][k], tuned[0][k]) for k in plain[0])  # same start
    checked = 0
    for name, g in plain[2].items():
        moved = np.abs(plain[1][name] - plain[0][name]) > 1e-6
        if not moved.any():
            continue
        ratio = np.median((tuned[1][name] - tuned[0][name])[moved] / (plain[1][name] - plain[0][name])[moved])
        expected = 2.0 if name.startswith("heads.slot.") else 0.5 * 0.8 ** (4 - electra_depth(name))
        assert ratio == pytest.approx(expected, rel=2e-3), name
        checked += 1
    assert checked > 20


def test_albert_refuses_layerwise_decay_and_elmo_defines_it(atis):
    trainer = palm.Trainer("intent")
    model = trainer.build_forward(backbone("albert", atis["dir"]), palm.head.Classify(3, HIDDEN))
    with pytest.raises(ValueError, match="ALBERT: its layers share one set of parameters"):
        trainer.build_backward(palm.optimizer.Adam(model, LR, layerwise_lr_decay=0.8))
    trainer.build_backward(palm.optimizer.Adam(model, LR, backbone_lr_multiplier=0.5))  # a multiplier is defined

    elmo = palm.backbone.ELMo.from_config({"input_type": "word", "vocab_size": 30, "cell_size": 16,
                                           "projection_size": 8, "num_layers": 2})
    task = palm.Trainer("intent")
    model = task.build_forward(elmo, palm.head.Classify(3, 16))
    factors = palm.optimizer.Adam(model, LR, layerwise_lr_decay=0.5).lr_multipliers(model, {"intent": 1.0})
    assert factors["backbone.word_embedding.weight"] == 0.5 ** 4
    assert factors["backbone.lstm.fw.0.input_weight"] == factors["backbone.lstm.bw.0.bias"] == 0.5 ** 3
    assert factors["backbone.lstm.fw.1.recurrent_weight"] == 0.5 ** 2
    assert factors["backbone.scalar_mix.intent.weights"] == 0.5
    assert {factors[k] for k in factors if k.startswith("heads.")} == {1.0}


# ------------------------------------------------------------------- clipping
def test_global_clipping_updates_with_the_clipped_gradient(atis):
    """Two Adam steps with grad_clip_norm=c equal two steps without clipping on the gradients
    scaled by min(1, c / global norm) (Adam's first step hardly depends on the scale; the
    second does, through the ratio of the two steps' scales)."""
    clip = 0.05
    clipped = build(atis, grad_clip_norm=clip)
    reference = build(atis)
    norms = []
    for _ in range(2):
        batch = clipped.trainers[1].get_one_batch()
        clipped.train_one_step(dict(batch, __task_id=np.array(1)))
        reference.trainers[1].get_one_batch()
        model = reference.model
        model.train()
        model("intent", to_tensors(batch))["loss"].backward()
        norm = float(np.sqrt(sum((p.grad.numpy().astype("float64") ** 2).sum()
                                 for p in model.parameters() if p.grad is not None)))
        norms.append(norm)
        for p in model.parameters():
            if p.grad is not None:
                paddle.assign(p.grad * min(1.0, clip / norm), p.grad)
        reference.optimizer.step()
        reference.optimizer.clear_grad(set_to_zero=False)
    assert min(norms) > 2 * clip and abs(norms[0] - norms[1]) > 0.01 * norms[0]  # clipping was active, unequally
    got, want = params(clipped.model), params(reference.model)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=2e-6, err_msg=name)
    unclipped = build(atis)
    for _ in range(2):
        batch = unclipped.trainers[1].get_one_batch()
        unclipped.train_one_step(dict(batch, __task_id=np.array(1)))
    moved = max(np.abs(params(unclipped.model)[k] - want[k]).max() for k in want)
    assert moved > 1e-4  # without clipping the result is far from the clipped one


# ----------------------------------------------------------------- validation
BAD = [0, -1.0, float("nan"), float("inf"), True, "2"]


@pytest.mark.parametrize("setting", ["loss_weight", "lr_multiplier", "clip_norm"])
@pytest.mark.parametrize("value", BAD)
def test_trainer_refuses_bad_settings(setting, value):
    with pytest.raises(ValueError, match=f"{setting} must be a positive finite number"):
        palm.Trainer("task", **{setting: value})


@pytest.mark.parametrize("value", BAD)
def test_optimizer_refuses_bad_backbone_multiplier(value):
    with pytest.raises(ValueError, match="backbone_lr_multiplier must be a positive finite number"):
        palm.optimizer.Adam(None, 1e-3, backbone_lr_multiplier=value)


@pytest.mark.parametrize("value", BAD + [1.5])
def test_optimizer_refuses_bad_layerwise_decay(value):
    with pytest.raises(ValueError, match="layerwise_lr_decay must be"):
        palm.optimizer.LAMB(None, 1e-3, layerwise_lr_decay=value)


def test_settings_are_kept_as_given():
    task = palm.Trainer("task", loss_weight=2, lr_multiplier=0.5, clip_norm=1)
    assert (task.loss_weight, task.lr_multiplier, task.clip_norm) == (2.0, 0.5, 1.0)
    assert palm.Trainer("other").clip_norm is None
    opt = palm.optimizer.AdamW(None, 1e-3, backbone_lr_multiplier=0.1, layerwise_lr_decay=1.0)
    assert (opt.backbone_lr_multiplier, opt.layerwise_lr_decay, opt.grad_clip_norm) == (0.1, 1.0, 1.0)
    with pytest.raises(TypeError):
        palm.optimizer.Adam(None, 1e-3, None, 1.0, 0.5)  # the new settings are keyword-only


# --------------------------------------------------------- checkpoints, resume
SETTINGS = dict(layerwise_lr_decay=0.8, backbone_lr_multiplier=0.5, grad_clip_norm=1.0, crf_lr=0.1,
                slot={"lr_multiplier": 2.0, "loss_weight": 0.7}, intent={"clip_norm": 0.5})


def run(atis, save_path, steps, seed=0, resume_from=None, **overrides):
    trainer = build(atis, seed=seed, dropout=0.1, weight_decay=0.01, **{**SETTINGS, **overrides})
    trainer.max_steps = steps
    if resume_from is not None:
        trainer.load_ckpt(resume_from)
    trainer.set_saver(str(save_path), save_steps=3)
    trainer.train(print_steps=0)
    return trainer


def test_settings_are_recorded_and_resume_is_bit_identical(atis, tmp_path):
    reference = run(atis, tmp_path / "ref", 6)
    with open(tmp_path / "ref" / "ckpt.step3" / "trainer.json", encoding="utf-8") as f:
        recorded = json.load(f)["settings"]
    assert recorded == {
        "optimizer": {"type": "Adam", "lr": LR, "grad_clip_norm": 1.0, "backbone_lr_multiplier": 0.5,
                      "layerwise_lr_decay": 0.8, "weight_decay": 0.01},
        "tasks": {"slot": {"loss_weight": 0.7, "lr_multiplier": 2.0, "clip_norm": None, "micro_batches": 1},
                  "intent": {"loss_weight": 1.0, "lr_multiplier": 1.0, "clip_norm": 0.5, "micro_batches": 1}},
        "updates": {"units": [["slot"], ["intent"]], "units_per_update": 1}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same settings: no warning
        resumed = run(atis, tmp_path / "resumed", 6, seed=7, resume_from=str(tmp_path / "ref" / "ckpt.step3"))
    want, got = params(reference.model), params(resumed.model)
    assert [k for k in want if not np.array_equal(want[k], got[k])] == []


def test_resume_with_other_settings_warns_naming_them(atis, tmp_path):
    run(atis, tmp_path / "ref", 3)
    with pytest.warns(UserWarning, match=r"optimizer\.layerwise_lr_decay: 0\.8 -> 0\.9; "
                                         r"tasks\.slot\.lr_multiplier: 2\.0 -> 3\.0"):
        run(atis, tmp_path / "other", 4, resume_from=str(tmp_path / "ref" / "ckpt.step3"),
            layerwise_lr_decay=0.9, slot={"lr_multiplier": 3.0, "loss_weight": 0.7})
