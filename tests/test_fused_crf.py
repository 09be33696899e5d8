"""The CRF loss operator (paddlepalm/utils/fused_crf.py, csrc/crf_op.cc): the same losses and
gradients as the pure-Paddle forward algorithm (padded rows, one-step rows, wide transition
spreads), a normalized distribution (brute force), and the fallback when it is switched off or
cannot be built."""
import itertools

import numpy as np
import paddle
import pytest

from paddlepalm.utils import crf, fused_crf
from op_fallback import assert_one_build_warning, capture_op_warnings, failing_build


@pytest.fixture
def op(monkeypatch):
    monkeypatch.setenv("PADDLEPALM_FUSED_CRF", "1")
    if fused_crf.load_op() is None:
        pytest.skip(f"CRF op unavailable here: {fused_crf.status()['error']}")
    return fused_crf


def _inputs(seed, B=6, T=9, K=7, spread=1.0):
    rng = np.random.RandomState(seed)
    emissions = rng.randn(B, T, K).astype("float32") * 2
    transitions = (rng.randn(K + 2, K) * spread).astype("float32")
    labels = rng.randint(0, K, (B, T)).astype("int64")
    lengths = np.concatenate([[T, 1], rng.randint(1, T + 1, B - 2)]).astype("int64")  # a full and a 1-step row
    return emissions, transitions, labels, lengths


def _loss_and_grads(fn, emissions, transitions, labels, lengths, weights):
    e = paddle.to_tensor(emissions, stop_gradient=False)
    t = paddle.to_tensor(transitions, stop_gradient=False)
    nll = fn(e, paddle.to_tensor(labels), paddle.to_tensor(lengths), t)
    (nll * paddle.to_tensor(weights)).sum().backward()
    return nll.numpy(), e.grad.numpy(), t.grad.numpy()


@pytest.mark.parametrize("spread", [1.0, 30.0])  # 30: beyond the reference's GEMM range (its broadcast path)
@pytest.mark.parametrize("seed", [0, 1])
def test_op_matches_the_reference_values_and_gradients(op, seed, spread):
    inputs = _inputs(seed, spread=spread)
    weights = np.linspace(0.5, 2.0, len(inputs[3])).astype("float32")  # upstream gradients differ per row
    fused = _loss_and_grads(op.fused_nll, *inputs, weights)
    reference = _loss_and_grads(crf.crf_nll_reference, *inputs, weights)
    scale = max(1.0, float(np.abs(reference[0]).max()))
    np.testing.assert_allclose(fused[0], reference[0], atol=2e-5 * scale, err_msg="loss")
    np.testing.assert_allclose(fused[1], reference[1], atol=2e-4, err_msg="emission gradient")
    np.testing.assert_allclose(fused[2], reference[2], atol=2e-4 * max(1.0, spread / 10), err_msg="transition gradient")
    emissions, _, _, lengths = inputs
    for row, length in enumerate(lengths):  # positions past a row's length get no gradient
        assert not fused[1][row, length:].any()


def test_op_is_a_normalized_distribution(op):
    """exp(-nll) over every tag path of a short sequence sums to 1."""
    rng = np.random.RandomState(4)
    K, T = 3, 4
    emissions, transitions = rng.randn(1, T, K).astype("float32"), rng.randn(K + 2, K).astype("float32")
    paths = np.array(list(itertools.product(range(K), repeat=T)), dtype="int64")
    nll = op.fused_nll(paddle.to_tensor(np.repeat(emissions, len(paths), 0)), paddle.to_tensor(paths),
                       paddle.to_tensor(np.full(len(paths), T, dtype="int64")), paddle.to_tensor(transitions))
    assert abs(float(np.exp(-nll.numpy().astype("float64")).sum()) - 1.0) < 1e-4


def test_crf_nll_takes_the_op_when_available(op, monkeypatch):
    monkeypatch.setattr(crf, "crf_nll_reference", lambda *a: pytest.fail("the pure-Paddle loss ran"))
    emissions, transitions, labels, lengths = _inputs(2)
    assert crf.crf_nll(*map(paddle.to_tensor, (emissions, labels, lengths, transitions))).shape == [len(lengths)]


def test_fallback_when_disabled(monkeypatch):
    monkeypatch.setenv("PADDLEPALM_FUSED_CRF", "0")
    calls = []
    reference = crf.crf_nll_reference
    monkeypatch.setattr(crf, "crf_nll_reference", lambda *a: calls.append(1) or reference(*a))
    emissions, transitions, labels, lengths = _inputs(3)
    crf.crf_nll(*map(paddle.to_tensor, (emissions, labels, lengths, transitions)))
    assert calls == [1] and fused_crf.status()["enabled"] is False


def test_fallback_when_the_build_fails(monkeypatch, tmp_path, caplog):
    with failing_build(monkeypatch, tmp_path, fused_crf, "PADDLEPALM_FUSED_CRF"):
        calls = []
        reference = crf.crf_nll_reference
        monkeypatch.setattr(crf, "crf_nll_reference", lambda *a: calls.append(1) or reference(*a))
        emissions, transitions, labels, lengths = _inputs(5)
        with capture_op_warnings(caplog):
            for _ in range(2):
                crf.crf_nll(*map(paddle.to_tensor, (emissions, labels, lengths, transitions)))
        assert calls == [1, 1]
        assert_one_build_warning(caplog, fused_crf)