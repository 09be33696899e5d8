"""Inter-task affinity (paddlepalm/affinity.py): the look-ahead measure against a two-task linear
model worked by hand; measuring changes nothing in training (bit for bit, with dropout on) and a run
with it resumes exactly; the records reach metrics.jsonl and ``palm affinity`` ranks them."""
import json
import os

import numpy as np
import paddle
import pytest

from paddlepalm.affinity import lookahead_affinity, rank_sources
from paddlepalm.cli import main
from paddlepalm.sinks import MetricsFile
from test_trainer import build_joint, params


class SharedLinear(paddle.nn.Layer):
    """Two regression tasks on one shared weight vector ``w``: L_t(w) = mean((X_t w - y_t)^2)."""

    def __init__(self, w):
        super().__init__()
        self.backbone = paddle.nn.Linear(len(w), 1, bias_attr=False)
        self.backbone.weight.set_value(np.asarray(w, dtype="float32").reshape(-1, 1))

    def forward(self, task, batch):
        return {"loss": ((self.backbone(batch["x"]) - batch["y"]) ** 2).mean()}


def by_hand(w, probes, lr):
    def loss(v, t):
        x, y = probes[t]["x"].astype("float64"), probes[t]["y"].astype("float64")
        return float(np.mean((x @ v - y) ** 2))

    z = {}
    for i in probes:
        x, y = probes[i]["x"].astype("float64"), probes[i]["y"].astype("float64")
        grad = 2.0 / len(x) * x.T @ (x @ w - y)
        stepped = w - lr * grad
        z[i] = {j: 1.0 - loss(stepped, j) / loss(w, j) for j in probes}
    return z


def test_lookahead_affinity_equals_the_hand_worked_linear_case():
    rng = np.random.RandomState(0)
    w = np.zeros((2, 1))
    probes = {"a": {"x": rng.randn(6, 2).astype("float32"), "y": rng.randn(6, 1).astype("float32")},
              "b": {"x": rng.randn(5, 2).astype("float32"), "y": rng.randn(5, 1).astype("float32")}}
    probes["c"] = {"x": probes["a"]["x"], "y": -probes["a"]["y"]}  # from w = 0 a step toward a's optimum moves away from c's
    model = SharedLinear(w.ravel())
    model.train()
    before = model.backbone.weight.numpy().copy()
    got = lookahead_affinity(model, probes, lr=0.1)
    expected = by_hand(w, probes, 0.1)
    for i in probes:
        for j in probes:
            assert got[i][j] == pytest.approx(expected[i][j], abs=1e-5), (i, j)
    assert got["a"]["a"] > 0 and got["a"]["c"] < 0  # a step on a lowers a's loss, raises its opposite's
    assert np.array_equal(model.backbone.weight.numpy(), before) and model.training  # put back as it was


def test_rank_sources_orders_by_mean_affinity_onto_the_target():
    records = [{"affinity": {"a": {"t": 0.1}, "b": {"t": -0.2}, "t": {"t": 0.5}}},
               {"affinity": {"a": {"t": 0.3}, "b": {"t": 0.0}, "t": {"t": 0.4}}}]
    ranked = rank_sources(records, "t")
    assert [r["task"] for r in ranked] == ["a", "b"] and ranked[0]["mean"] == pytest.approx(0.2)


def test_measuring_changes_nothing_in_training_and_resumes_exactly(joint_data, tmp_path):
    d = joint_data["dir"]
    plain, _ = build_joint(d, joint_data, dropout=0.1, seed=4)
    plain.max_steps = 8
    plain.train(print_steps=0)

    measured, _ = build_joint(d, joint_data, dropout=0.1, seed=4)
    measured.max_steps = 8
    measured.set_affinity(every=2)
    metrics = MetricsFile(str(tmp_path / "metrics.jsonl"))
    measured.train(print_steps=0, sinks=[metrics])
    assert len(measured.affinity.history) == 4
    for key, value in params(plain.model).items():
        assert np.array_equal(params(measured.model)[key], value), key  # bit for bit, dropout on

    first, _ = build_joint(d, joint_data, dropout=0.1, seed=4)
    first.set_affinity(every=2)
    first.set_saver(str(tmp_path / "ckpt"), save_steps=3)
    first.max_steps = 3
    first.train(print_steps=0)
    resumed, _ = build_joint(d, joint_data, dropout=0.1, seed=9)
    resumed.max_steps = 8
    resumed.set_affinity(every=2)
    resumed.load_ckpt(str(tmp_path / "ckpt" / "ckpt.step3"))
    resumed.train(print_steps=0)
    for key, value in params(plain.model).items():
        assert np.array_equal(params(resumed.model)[key], value), key
    assert [r["step"] for r in resumed.affinity.history] == [4, 6, 8]
    assert resumed.affinity.history[-1]["affinity"] == measured.affinity.history[-1]["affinity"]

    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl", encoding="utf-8")]
    affinity = [r for r in records if r["event"] == "affinity"]
    assert [r["step"] for r in affinity] == [2, 4, 6, 8] and set(affinity[0]["affinity"]) == {"slot", "intent"}


def test_a_recurrent_backbone_is_measured_without_changing_its_training(joint_data):
    """Paddle's rnn operator has no backward in eval mode: the measurement switches the LSTM alone
    back, with no dropout and no random draw, so training stays bit for bit the same."""
    d = joint_data["dir"]
    plain, _ = build_joint(d, joint_data, dropout=0.3, seed=4, recurrent=True)
    plain.max_steps = 6
    plain.train(print_steps=0)
    measured, _ = build_joint(d, joint_data, dropout=0.3, seed=4, recurrent=True)
    measured.max_steps = 6
    measured.set_affinity(every=2)
    measured.train(print_steps=0)
    for key, value in params(plain.model).items():
        assert np.array_equal(params(measured.model)[key], value), key
    last = measured.affinity.history[-1]["affinity"]
    assert set(last) == {"slot", "intent"} and all(np.isfinite(z) for row in last.values() for z in row.values())
    assert last["slot"]["slot"] > 0  # a step on a task lowers its own loss


def test_palm_affinity_ranks_from_metrics(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    with open(run / "metrics.jsonl", "w", encoding="utf-8") as f:
        for z in (0.1, 0.3):
            f.write(json.dumps({"event": "affinity", "step": 1, "affinity": {"aux": {"ner": z}, "ner": {"ner": 1.0}}})
                    + "\n")
    assert main(["affinity", str(run), "--target", "ner"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows == [{"target": "ner", "task": "aux", "mean": pytest.approx(0.2), "measurements": 2}]
    assert main(["affinity", str(run), "--target", "nr"]) == 2
    assert "did you mean 'ner'" in capsys.readouterr().err


def test_palm_plot_draws_the_affinity_of_every_pair(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    tasks = ("ner", "seg", "pos")
    with open(run / "metrics.jsonl", "w", encoding="utf-8") as f:
        for step in (10, 20, 30):
            matrix = {i: {j: (0.01 * step if i != j else 0.5) for j in tasks} for i in tasks}
            f.write(json.dumps({"event": "affinity", "step": step, "affinity": matrix}) + "\n")
    assert main(["plot", str(run)]) == 0
    written = capsys.readouterr().out.split()
    assert [os.path.basename(p) for p in written] == ["affinity.png"]
    import matplotlib.image

    height, width = matplotlib.image.imread(written[0]).shape[:2]
    assert width >= 800 and height >= 3 * 250  # a panel per target task
