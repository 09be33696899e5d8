"""Issue 15, loss balancing: each method against a case worked by hand, its weights as used by
``train_update`` (an SGD step of learning rate 1 is minus the gradient used), and an exact resume
of a run using it (dropout on)."""
import json
import math
import os

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from paddlepalm.balancing.famo import famo_logit_gradient, famo_weights
from paddlepalm.balancing.gradnorm import gradnorm_weight_gradient
from paddlepalm.balancing.pcgrad import pcgrad_coefficients
from paddlepalm.balancing.gradient_bank import GradientBank
from paddlepalm.update import Optimization, train_update
from paddlepalm.model import to_tensors
from conftest import tiny_config
from test_joint_updates import joint_work, sgd, task_gradient
from test_reliability import DROPOUT, assert_same
from test_trainer import build_joint, params

TASKS = ["slot", "intent"]


def bound(balancer, tasks=("a", "b")):
    balancer.bind(list(tasks))
    return balancer


# ------------------------------------------------------------------------ PCGrad
def test_pcgrad_projects_two_conflicting_gradients_by_hand():
    g1, g2 = np.array([1.0, 0.0]), np.array([-1.0, 1.0])  # g1 . g2 = -1: they conflict
    gram = np.array([[g1 @ g1, g1 @ g2], [g2 @ g1, g2 @ g2]])
    a = pcgrad_coefficients(gram, [[1], [0]])
    # g1 - (-1/2) g2 = (0.5, 0.5) (orthogonal to g2); g2 - (-1/1) g1 = (0, 1) (orthogonal to g1)
    np.testing.assert_allclose(a[0] * g1 + a[1] * g2, [0.5, 1.5])
    np.testing.assert_allclose(a, [2.0, 1.5])
    g2 = np.array([1.0, 1.0])  # g1 . g2 = 1: no conflict, the plain sum
    gram = np.array([[1.0, 1.0], [1.0, 2.0]])
    np.testing.assert_allclose(pcgrad_coefficients(gram, [[1], [0]]), [1.0, 1.0])


def test_pcgrad_combines_shared_parameters_and_leaves_heads_alone():
    pc = bound(palm.balancing.PCGrad())
    t = lambda *v: paddle.to_tensor(np.array(v, dtype="float32"))  # noqa: E731
    grads = {"a": {0: t(1.0, 0.0), 1: t(5.0)}, "b": {0: t(-1.0, 1.0), 2: t(7.0)}}  # 0 shared, 1 and 2 heads
    total = pc.combine(grads)
    np.testing.assert_allclose(total[0].numpy(), [0.5, 1.5], rtol=1e-6)
    assert total[1].numpy().tolist() == [5.0] and total[2].numpy().tolist() == [7.0]
    grads["b"][0] = t(1.0, 1.0)
    np.testing.assert_allclose(pc.combine(grads)[0].numpy(), [2.0, 1.0])


def test_pcgrad_order_is_random_and_restored_from_its_state():
    # three tasks where the order of the projections changes the result
    g = np.array([[1.0, 0.0], [-1.0, 0.5], [-0.2, -1.0]])
    gram = g @ g.T
    results = {tuple(np.round(pcgrad_coefficients(gram, [[1, 2], [0, 2], [0, 1]]) @ g, 6)),
               tuple(np.round(pcgrad_coefficients(gram, [[2, 1], [2, 0], [1, 0]]) @ g, 6))}
    assert len(results) == 2
    pc = bound(palm.balancing.PCGrad(seed=4), "abc")
    pc.orders(3)
    saved = json.loads(json.dumps(pc.state_dict()))
    expected = [pc.orders(3) for _ in range(5)]
    other = bound(palm.balancing.PCGrad(seed=99), "abc")
    other.set_state_dict(saved)
    assert [other.orders(3) for _ in range(5)] == expected
    assert all(sorted(order[i] + [i]) == [0, 1, 2] for order in expected for i in range(3))


# ------------------------------------------------------------------- uncertainty
def test_uncertainty_reaches_its_fixed_point_log_loss():
    u = bound(palm.balancing.Uncertainty(lr=0.05))
    losses = {"a": 2.0, "b": 0.25}
    np.testing.assert_allclose(u.gradient(["a", "b"], losses), [1 - 2.0, 1 - 0.25])  # d/ds at s = 0
    assert u.loss_weights(["a", "b"]) == {"a": 1.0, "b": 1.0}
    for _ in range(3000):
        u.after_update(losses)
    np.testing.assert_allclose(u.log_vars, [math.log(2.0), math.log(0.25)], atol=1e-3)
    weights = u.loss_weights(["a", "b"])
    assert weights["a"] * 2.0 == pytest.approx(1.0, abs=1e-3) and weights["b"] * 0.25 == pytest.approx(1.0, abs=1e-3)
    u.after_update({"b": 0.25})  # an update without task a leaves a's parameter and moments alone
    assert u.optimizer.t.tolist() == [3000, 3001]


# --------------------------------------------------------------------------- DWA
def test_dwa_weights_from_the_last_two_windows():
    dwa = bound(palm.balancing.DWA(temperature=2.0, window=2))
    for losses in ({"a": 5.0, "b": 2.0}, {"a": 3.0, "b": 2.0}):  # window 1: means 4 and 2
        dwa.after_update(losses)
        assert dwa.loss_weights(["a", "b"]) == {"a": 1.0, "b": 1.0}
    dwa.after_update({"a": 2.0, "b": 1.0})
    assert dwa.loss_weights(["a"]) == {"a": 1.0}  # one window complete: still 1
    dwa.after_update({"a": 2.0, "b": 3.0})  # window 2: means 2 and 2 -> ratios 0.5 and 1
    e_a, e_b = math.exp(0.5 / 2), math.exp(1.0 / 2)
    weights = dwa.loss_weights(["a", "b"])
    assert weights["a"] == pytest.approx(2 * e_a / (e_a + e_b)) == pytest.approx(0.875647, abs=1e-6)
    assert weights["b"] == pytest.approx(2 * e_b / (e_a + e_b))
    for _ in range(2):  # window 3 without task b: b's ratio is 1, a's is 1 (2 -> 2)
        dwa.after_update({"a": 2.0})
    assert dwa.loss_weights(["a", "b"]) == {"a": pytest.approx(1.0), "b": pytest.approx(1.0)}
    restored = bound(palm.balancing.DWA(temperature=2.0, window=2))
    restored.set_state_dict(json.loads(json.dumps(dwa.state_dict())))
    assert restored.state_dict() == dwa.state_dict()


# -------------------------------------------------------------------------- FAMO
def test_famo_weights_and_logit_update_by_hand():
    # xi = 0: z = (1/2, 1/2); losses (1, 4): c = 1 / (0.5/1 + 0.5/4) = 1.6, factors c z / l = (0.8, 0.2)
    np.testing.assert_allclose(famo_weights(np.zeros(2), np.array([1.0, 4.0])), [0.8, 0.2])
    # after the step the losses are (0.5, 3.2): delta = (log 2, log 1.25);
    # J^T delta = z * (delta - z . delta) = 0.25 * (log 2 - log 1.25) * (1, -1) = +-0.117501
    delta = np.log([1.0, 4.0]) - np.log([0.5, 3.2])
    np.testing.assert_allclose(famo_logit_gradient(np.zeros(2), delta), [0.1175009, -0.1175009], rtol=1e-6)
    famo = bound(palm.balancing.FAMO(lr=0.1, gamma=0.0))
    assert famo.loss_weights(["a", "b"], {"a": 1.0, "b": 4.0}) == pytest.approx({"a": 0.8, "b": 0.2})
    famo.after_update({"a": 1.0, "b": 4.0}, reforward=lambda: {"a": 0.5, "b": 3.2})
    # Adam's first step is lr * sign: the task that improved most (a) loses weight
    np.testing.assert_allclose(famo.logits, [-0.1, 0.1], rtol=1e-6)
    z = np.exp([-0.1, 0.1]) / np.exp([-0.1, 0.1]).sum()  # (0.450166, 0.549834)
    inverse = z / np.array([0.5, 3.2])
    assert famo.loss_weights(["a", "b"], {"a": 0.5, "b": 3.2}) == pytest.approx(
        {"a": inverse[0] / inverse.sum(), "b": inverse[1] / inverse.sum()})
    # the decay gamma pulls the logits back to 0 when the losses fall equally
    decayed = bound(palm.balancing.FAMO(lr=0.1, gamma=0.5))
    decayed.logits = np.array([1.0, -1.0])
    np.testing.assert_allclose(famo_logit_gradient(decayed.logits, np.array([0.1, 0.1])), [0.0, 0.0], atol=1e-12)
    decayed.after_update({"a": 1.0, "b": 1.0}, reforward=lambda: {"a": 0.9, "b": 0.9})
    np.testing.assert_allclose(decayed.logits, [0.9, -0.9], rtol=1e-6)


# ---------------------------------------------------------------------- GradNorm
def test_gradnorm_weight_update_by_hand():
    # w = (1, 1), |grad_W L| = (2, 1), L/L(0) = (0.5, 1): r = (2/3, 4/3); alpha = 1:
    # G = (2, 1), mean 1.5, target = (1, 2): sign(G - target) * |grad| = (+2, -1)
    grad = gradnorm_weight_gradient(np.ones(2), np.array([2.0, 1.0]), np.array([0.5, 1.0]), np.ones(2), 1.0)
    np.testing.assert_allclose(grad, [2.0, -1.0])
    # three tasks at their first update (r = 1): G = (1, 3, 3), mean 7/3: gradient (-1, 3, 3);
    # Adam's first step (lr 0.1) gives (1.1, 0.9, 0.9), renormalised to sum 3: x 3/2.9
    gn = bound(palm.balancing.GradNorm(alpha=1.0, lr=0.1), "abc")
    gn.step(["a", "b", "c"], {"a": 2.0, "b": 1.0, "c": 3.0}, np.array([1.0, 3.0, 3.0]))
    np.testing.assert_allclose(gn.weights, np.array([1.1, 0.9, 0.9]) * 3 / 2.9, rtol=1e-6)
    np.testing.assert_allclose(gn.initial, [2.0, 1.0, 3.0])
    assert gn.weights.sum() == pytest.approx(3.0)


@pytest.mark.parametrize("backbone,layer,count", [
    ("ERNIE", "backbone.model.encoder.layers.1", 16),  # tiny_config: 2 layers; the last one's 16 tensors
    ("ALBERT", "backbone.model.encoder.albert_layer_groups.0.albert_layers.0", 16)])  # shared by every depth
def test_gradnorm_takes_the_last_encoder_layers_gradient_per_task(joint_data, backbone, layer, count):
    d = joint_data["dir"]
    vocab = os.path.join(d, "vocab.txt")
    config = tiny_config(sum(1 for _ in open(vocab, encoding="utf-8")))
    config["hidden_dropout_prob"] = config["attention_probs_dropout_prob"] = 0.0
    paddle.seed(0)
    encoder = getattr(palm.backbone, backbone).from_config(config)
    slot_reader = palm.reader.SequenceLabelReader(vocab, 32, os.path.join(d, "label_map.json"), seed=1)
    slot_reader.load_data(os.path.join(d, "slot", "train.tsv"), batch_size=8)
    intent_reader = palm.reader.ClassifyReader(vocab, 32, seed=1)
    intent_reader.load_data(os.path.join(d, "intent", "train.tsv"), batch_size=8)
    slot, intent = palm.Trainer("slot"), palm.Trainer("intent")
    slot.build_forward(encoder, palm.head.SequenceLabel(joint_data["slot_classes"], 32))
    intent.build_forward(encoder, palm.head.Classify(joint_data["intent_classes"], 32))
    gn = palm.balancing.GradNorm()
    trainer = palm.MultiHeadTrainer([slot, intent], balancer=gn)
    trainer.build_backward(palm.optimizer.Adam(trainer.build_forward(), 1e-3))
    trainer.fit_readers_with_mixratio([slot_reader, intent_reader], "slot", 1, joint=True)
    assert gn.layer == layer
    model = trainer.model
    _, batches = joint_work(trainer)
    bank = GradientBank(model.parameters(), only=gn.layer_parameters(model), boundary=gn.layer_input)
    model.train()
    outputs = model.forward_tasks({task: to_tensors(batches[task]) for task in TASKS})
    assert (gn.layer_input() is None) == (backbone == "ALBERT")  # ALBERT's layer ran twice: whole backward
    for task in TASKS:
        bank.add(task, outputs[task]["loss"], retain_graph=True)
    names = {id(p): name for name, p in model.named_parameters()}
    for task in TASKS:
        full = task_gradient(model, task, batches[task])
        got = bank.gradients_of(gn.layer_parameters(model))[task]
        assert len(got) == len(gn.layer_parameters(model)) == count
        for p, grad in zip(gn.layer_parameters(model), got):
            np.testing.assert_allclose(grad.numpy(), full[names[id(p)]], rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------ in the training update
def update_gradient(trainer, work, balancer):
    """Minus the parameter change of one train_update with SGD(lr=1)."""
    before = params(trainer.model)
    train_update(trainer.model, Optimization(sgd(trainer.model)), work, balancer=balancer)
    after = params(trainer.model)
    return {k: before[k] - after[k] for k in before}


@pytest.mark.parametrize("make", [lambda: palm.balancing.Uncertainty(lr=0.2), lambda: palm.balancing.DWA(window=1),
                                  lambda: palm.balancing.FAMO(lr=0.2), lambda: palm.balancing.GradNorm(lr=0.2)],
                         ids=["uncertainty", "dwa", "famo", "gradnorm"])
def test_update_uses_the_balancers_weights(joint_data, make):
    balancer = make()
    trainer, _ = build_joint(joint_data["dir"], joint_data, intent_ratio=1.0, joint=True, balancer=balancer)
    trainer.trainers[1].loss_weight = 0.5  # the balancer weighs the weighted loss
    for _ in range(2):  # let the balancer learn
        update_gradient(trainer, joint_work(trainer)[0], balancer)
    work, batches = joint_work(trainer)
    trainer.model.train()
    losses = {t: float(trainer.model(t, to_tensors(batches[t]))["loss"]) * (0.5 if t == "intent" else 1.0)
              for t in TASKS}
    weights = balancer.loss_weights(TASKS, losses)
    assert abs(weights["slot"] - weights["intent"]) > 1e-3  # no longer equal weights
    expected = {t: task_gradient(trainer.model, t, batches[t], weight=weights[t] * (0.5 if t == "intent" else 1.0))
                for t in TASKS}
    used = update_gradient(trainer, work, balancer)
    for key, delta in used.items():
        np.testing.assert_allclose(delta, expected["slot"][key] + expected["intent"][key], rtol=1e-4, atol=1e-6,
                                   err_msg=key)


def test_update_with_pcgrad_projects_the_backbone_gradient(joint_data):
    pc = palm.balancing.PCGrad()
    trainer, _ = build_joint(joint_data["dir"], joint_data, intent_ratio=1.0, joint=True, balancer=pc)
    conflicts = 0
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    for _ in range(6):  # new batches on the same parameters (SGD at learning rate 1 would diverge)
        trainer.model.set_state_dict(start)
        work, batches = joint_work(trainer)
        g = {t: task_gradient(trainer.model, t, batches[t]) for t in TASKS}
        shared = [k for k in g["slot"] if k.startswith("backbone.") and "pooler" not in k]
        flat = {t: np.concatenate([g[t][k].ravel() for k in shared]).astype("float64") for t in TASKS}
        dot = flat["slot"] @ flat["intent"]
        a_slot = a_intent = 1.0
        if dot < 0:  # each projected onto the other's normal plane
            conflicts += 1
            a_slot, a_intent = 1 - dot / (flat["slot"] @ flat["slot"]), 1 - dot / (flat["intent"] @ flat["intent"])
        used = update_gradient(trainer, work, pc)
        for key, delta in used.items():
            if key in shared:
                expected = a_slot * g["slot"][key] + a_intent * g["intent"][key]
            else:  # heads and the pooler (intent only): their task's own gradient
                expected = g["slot"][key] + g["intent"][key]
            np.testing.assert_allclose(delta, expected, rtol=1e-4, atol=1e-6, err_msg=key)
    assert conflicts > 0


def test_static_is_the_loss_weighted_sum(joint_data, tmp_path):
    trainer, _ = build_joint(joint_data["dir"], joint_data, intent_ratio=1.0, joint=True,
                             balancer=palm.balancing.Static())
    trainer.trainers[1].loss_weight = 0.25
    work, batches = joint_work(trainer)
    slot, intent = (task_gradient(trainer.model, t, batches[t]) for t in TASKS)
    used = update_gradient(trainer, work, trainer.balancer)
    for key, delta in used.items():
        np.testing.assert_allclose(delta, slot[key] + 0.25 * intent[key], rtol=1e-5, atol=1e-6, err_msg=key)
    # the default is Static, and its checkpoints hold no balancer state (trainer.json as before)
    default, _ = build_joint(joint_data["dir"], joint_data, intent_ratio=1.0, joint=True)
    assert type(default.balancer) is palm.balancing.Static
    default.max_steps = 2
    default.set_saver(str(tmp_path), save_steps=2)
    default.train(print_steps=0)
    assert "balancer" not in json.load(open(tmp_path / "ckpt.step2" / "trainer.json"))


@pytest.mark.parametrize("make", [palm.balancing.PCGrad, palm.balancing.GradNorm, palm.balancing.FAMO])
def test_methods_comparing_tasks_refuse_updates_of_one_task(joint_data, make):
    with pytest.raises(ValueError, match=r"update 1 of \d+: .*2 or more tasks.*holds \['(slot|intent)'\]"):
        build_joint(joint_data["dir"], joint_data, balancer=make())
    with pytest.raises(ValueError, match=r"update 13 of 24: .*holds \[.slot.\]"):  # unequal budgets: a tail of one task
        build_joint(joint_data["dir"], joint_data, balancer=make(), tasks_per_update="all")
    trainer, _ = build_joint(joint_data["dir"], joint_data, balancer=make(), tasks_per_update="all", intent_ratio=1.0)
    assert all((row >= 0).sum() == 2 for row in trainer.plan.updates)


def test_famo_refuses_micro_batches(joint_data):
    with pytest.raises(ValueError, match="micro_batches would save no memory"):
        build_joint(joint_data["dir"], joint_data, balancer=palm.balancing.FAMO(), joint=True, intent_ratio=1.0,
                    slot_settings={"micro_batches": 2}, intent_settings={"micro_batches": 2})


# -------------------------------------------------------------------- exact resume
MAKERS = {"static": palm.balancing.Static, "uncertainty": lambda: palm.balancing.Uncertainty(lr=0.1),
          "dwa": lambda: palm.balancing.DWA(window=3), "famo": lambda: palm.balancing.FAMO(lr=0.1),
          "pcgrad": lambda: palm.balancing.PCGrad(seed=2), "gradnorm": lambda: palm.balancing.GradNorm(lr=0.1)}


@pytest.mark.parametrize("method", list(MAKERS))
def test_resume_is_exact_with_every_balancer(joint_data, tmp_path, method):
    d = joint_data["dir"]
    mode = dict(joint=True, intent_ratio=1.0, dropout=DROPOUT)
    full, _ = build_joint(d, joint_data, balancer=MAKERS[method](), **mode)
    total = 8
    full.max_steps = total
    full.train(print_steps=0)
    first, _ = build_joint(d, joint_data, balancer=MAKERS[method](), **mode)
    first.max_steps = total // 2
    first.set_saver(str(tmp_path), save_steps=total // 2)
    first.train(print_steps=0)
    ckpt = tmp_path / f"ckpt.step{total // 2}"
    saved = json.load(open(ckpt / "trainer.json")).get("balancer")
    assert (saved is None) == (method == "static")
    second, _ = build_joint(d, joint_data, balancer=MAKERS[method](), seed=7, **mode)
    second.max_steps = total
    second.load_ckpt(str(ckpt))
    second.train(print_steps=0)
    assert_same(params(second.model), params(full.model))
    assert second.balancer.state_dict() == full.balancer.state_dict()
    if method != "static":
        fresh = MAKERS[method]()
        fresh.bind(TASKS, full.model)
        assert full.balancer.state_dict() != fresh.state_dict()  # it learned or drew something


def test_resume_with_another_balancer_is_refused(joint_data, tmp_path):
    first, _ = build_joint(joint_data["dir"], joint_data, balancer=palm.balancing.Uncertainty(), joint=True,
                           intent_ratio=1.0)
    first.max_steps = 2
    first.set_saver(str(tmp_path), save_steps=2)
    first.train(print_steps=0)
    for other in (palm.balancing.DWA(), None):
        second, _ = build_joint(joint_data["dir"], joint_data, balancer=other, joint=True, intent_ratio=1.0)
        second.load_ckpt(str(tmp_path / "ckpt.step2"))
        with pytest.raises(ValueError, match="trained with uncertainty loss balancing"):
            second.train(print_steps=0)
