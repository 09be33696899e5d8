"""The softmax cross-entropy operators (paddlepalm/utils/fused_softmax.py, csrc/softmax_ce_op.cc):
the same loss and gradients (hidden, weight, bias) as ``matmul`` + ``cross_entropy`` over several
row blocks, and as the Paddle sampled softmax with accidental hits; the per-row loss in evaluation;
the BiLM head's training step on padded rows fused and unfused (full and sampled); and the fallback
when the op is switched off or cannot be built."""

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from paddlepalm.utils import fused_softmax
from op_fallback import assert_one_build_warning, capture_op_warnings, failing_build


@pytest.fixture
def op(monkeypatch):
    monkeypatch.setenv("PADDLEPALM_FUSED_SOFTMAX", "1")
    if fused_softmax.load_op() is None:
        pytest.skip(f"softmax op unavailable here: {fused_softmax.status()['error']}")
    return fused_softmax


def _inputs(seed, rows=23, dim=6, vocab=11):
    rng = np.random.RandomState(seed)
    targets = np.concatenate([[0, vocab - 1], rng.randint(0, vocab, rows - 2)]).astype("int64")  # both ends
    return (rng.randn(rows, dim).astype("float32"), rng.randn(vocab, dim).astype("float32"),
            rng.randn(vocab).astype("float32"), targets)


def _mean_loss_and_grads(hidden, weight, bias, targets, upstream=3.0):
    x, w, b = (paddle.to_tensor(a, stop_gradient=False) for a in (hidden, weight, bias))
    loss = fused_softmax.mean_softmax_cross_entropy(x, w, b, paddle.to_tensor(targets))
    (loss * upstream).backward()
    return float(loss), x.grad.numpy(), w.grad.numpy(), b.grad.numpy()


@pytest.mark.parametrize("block_rows", [1, 5, 256])  # many blocks, a short last block, one block
def test_op_matches_matmul_cross_entropy(op, monkeypatch, block_rows):
    monkeypatch.setattr(fused_softmax, "BLOCK_ROWS", block_rows)
    inputs = _inputs(block_rows)
    fused = _mean_loss_and_grads(*inputs)
    monkeypatch.setenv("PADDLEPALM_FUSED_SOFTMAX", "0")
    reference = _mean_loss_and_grads(*inputs)
    assert abs(fused[0] - reference[0]) < 1e-5
    for name, a, b in zip(["hidden", "weight", "bias"], fused[1:], reference[1:]):
        np.testing.assert_allclose(a, b, atol=1e-5, err_msg=f"gradient of {name}")


def _sampled_loss_and_grads(hidden, weight, bias, targets, sampled, upstream=3.0):
    x, w, b = (paddle.to_tensor(a, stop_gradient=False) for a in (hidden, weight, bias))
    log_q = paddle.to_tensor(np.linspace(-3, -0.5, len(weight)).astype("float32"))
    t, s = paddle.to_tensor(targets), paddle.to_tensor(sampled)
    loss = fused_softmax.mean_sampled_softmax_cross_entropy(x, w, b, t, s, log_q[t], log_q[s])
    (loss * upstream).backward()
    return float(loss), x.grad.numpy(), w.grad.numpy(), b.grad.numpy()


def test_sampled_op_matches_the_paddle_sampled_softmax(op, monkeypatch):
    hidden, weight, bias, targets = _inputs(7)
    sampled = np.array([0, 2, 3, 7, 10], dtype="int64")
    assert np.isin(targets, sampled).any() and not np.isin(targets, sampled).all()  # hits and misses
    fused = _sampled_loss_and_grads(hidden, weight, bias, targets, sampled)
    monkeypatch.setenv("PADDLEPALM_FUSED_SOFTMAX", "0")
    reference = _sampled_loss_and_grads(hidden, weight, bias, targets, sampled)
    assert abs(fused[0] - reference[0]) < 1e-5
    for name, a, b in zip(["hidden", "weight", "bias"], fused[1:], reference[1:]):
        np.testing.assert_allclose(a, b, atol=1e-5, err_msg=f"gradient of {name}")


@pytest.mark.parametrize("sampled", [False, True])
def test_frozen_output_layer_gives_the_hidden_gradient_only(op, monkeypatch, sampled):
    hidden, weight, bias, targets = _inputs(3)

    def hidden_grad():
        x = paddle.to_tensor(hidden, stop_gradient=False)
        w, b, t = paddle.to_tensor(weight), paddle.to_tensor(bias), paddle.to_tensor(targets)  # frozen
        if sampled:
            s = paddle.to_tensor(np.array([1, 4, 9]))
            loss = fused_softmax.mean_sampled_softmax_cross_entropy(x, w, b, t, s, paddle.zeros([len(targets)]),
                                                                    paddle.zeros([3]))
        else:
            loss = fused_softmax.mean_softmax_cross_entropy(x, w, b, t)
        (loss * 2.0).backward()
        assert w.grad is None and b.grad is None
        return x.grad.numpy()
    fused = hidden_grad()
    monkeypatch.setenv("PADDLEPALM_FUSED_SOFTMAX", "0")
    np.testing.assert_allclose(fused, hidden_grad(), atol=1e-6)


def test_per_row_loss_without_gradients(op):
    hidden, weight, bias, targets = map(paddle.to_tensor, _inputs(4))
    with paddle.no_grad():
        fused = fused_softmax.softmax_cross_entropy(hidden, weight, bias, targets).numpy()
    reference = fused_softmax.reference_loss(hidden, weight, bias, targets).numpy()
    assert fused.shape == (len(targets.numpy()),)
    np.testing.assert_allclose(fused, reference, atol=1e-5)


def _bilm_step(monkeypatch, fused: bool, ids, lengths, samples):
    monkeypatch.setenv("PADDLEPALM_FUSED_SOFTMAX", "1" if fused else "0")
    calls = []
    name = "sampled_reference_loss" if samples else "reference_loss"
    reference = getattr(fused_softmax, name)
    monkeypatch.setattr(fused_softmax, name, lambda *a: calls.append(1) or reference(*a))
    paddle.seed(0)
    head = palm.head.BiLM(30, 6, num_samples=samples, seed=5)
    lstm_out = [paddle.to_tensor(np.random.RandomState(i).randn(*ids.shape, 6).astype("float32"),
                                 stop_gradient=False) for i in (1, 2)]
    inputs = {"token_ids": paddle.to_tensor(ids), "seq_lens": paddle.to_tensor(lengths)}
    loss = head(inputs, {"lm_forward": lstm_out[0], "lm_backward": lstm_out[1]})["loss"]
    loss.backward()
    grads = [t.grad.numpy() for t in lstm_out] + [head.softmax_weight.grad.numpy(), head.softmax_bias.grad.numpy()]
    assert calls == ([] if fused else [1])  # the op, or the fallback
    return float(loss), grads


@pytest.mark.parametrize("samples", [0, 12])  # full softmax, sampled softmax
def test_bilm_head_training_step_is_the_same_fused_and_fallback(op, monkeypatch, samples):
    ids = np.random.RandomState(1).randint(3, 30, size=(3, 7)).astype("int64")
    lengths = np.array([7, 4, 2])  # padded rows: their positions get no loss and no gradient
    fused_loss, fused_grads = _bilm_step(monkeypatch, True, ids, lengths, samples)
    ref_loss, ref_grads = _bilm_step(monkeypatch, False, ids, lengths, samples)
    assert abs(fused_loss - ref_loss) < 1e-5
    for name, a, b in zip(["lm_forward", "lm_backward", "softmax_weight", "softmax_bias"], fused_grads, ref_grads):
        np.testing.assert_allclose(a, b, atol=1e-6, err_msg=name)
    assert not fused_grads[0][2, 1:].any() and not fused_grads[1][2, :1].any() and not fused_grads[1][2, 2:].any()


def test_switched_off_uses_the_fallback(monkeypatch):
    monkeypatch.setenv("PADDLEPALM_FUSED_SOFTMAX", "0")
    calls = []
    reference = fused_softmax.reference_loss
    monkeypatch.setattr(fused_softmax, "reference_loss", lambda *a: calls.append(1) or reference(*a))
    fused_softmax.mean_softmax_cross_entropy(*map(paddle.to_tensor, _inputs(0)))
    assert calls == [1] and fused_softmax.status()["enabled"] is False


def test_fallback_when_the_build_fails(monkeypatch, tmp_path, caplog):
    with failing_build(monkeypatch, tmp_path, fused_softmax, "PADDLEPALM_FUSED_SOFTMAX"):
        calls = []
        reference = fused_softmax.reference_loss
        monkeypatch.setattr(fused_softmax, "reference_loss", lambda *a: calls.append(1) or reference(*a))
        with capture_op_warnings(caplog):
            for _ in range(2):
                fused_softmax.mean_softmax_cross_entropy(*map(paddle.to_tensor, _inputs(0)))
        assert calls == [1, 1]
        assert_one_build_warning(caplog, fused_softmax)