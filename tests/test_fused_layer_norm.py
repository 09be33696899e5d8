"""The layer-norm operator (paddlepalm/utils/fused_layer_norm.py, csrc/layer_norm_op.cc) behind
``cpu_speed.CpuLayerNorm``: Paddle's values and gradients (rows far from zero, a constant row, a
3-D input), the exact input gradient with a frozen scale (where Paddle's kernel is wrong), and the
numpy gradient when the op is switched off or cannot be built."""

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from paddlepalm.utils import cpu_speed, fused_layer_norm
from op_fallback import assert_one_build_warning, capture_op_warnings, failing_build, switched_on


@pytest.fixture
def op(monkeypatch):
    with switched_on(monkeypatch, fused_layer_norm, "PADDLEPALM_FUSED_LAYER_NORM") as module:
        yield module


def _inputs(seed: int, shape=(3, 7, 48)):
    rng = np.random.RandomState(seed)
    x = rng.randn(*shape).astype("float32")
    x[0, 0] += 1000.0  # a row far from zero: the variance is taken around the mean
    x[0, 1] = 0.25  # a constant row: only epsilon in the variance
    x[1] *= 30.0
    weight = (1 + 0.3 * rng.randn(shape[-1])).astype("float32")
    bias = (0.1 * rng.randn(shape[-1])).astype("float32")
    upstream = rng.randn(*shape).astype("float32")
    return x, weight, bias, upstream


def _run(layer_fn, x, weight, bias, upstream, frozen_weight=False):
    xs = paddle.to_tensor(x, stop_gradient=False)
    w = paddle.to_tensor(weight, stop_gradient=frozen_weight)
    b = paddle.to_tensor(bias, stop_gradient=False)
    y = layer_fn(xs, w, b)
    wanted = [xs, b] if frozen_weight else [xs, w, b]
    grads = paddle.grad(y, wanted, paddle.to_tensor(upstream))
    return [y.numpy()] + [g.numpy() for g in grads]


def _paddle(x, w, b):
    return F.layer_norm(x, x.shape[-1:], w, b, 1e-5)


def _run_cpu_layer(x, weight, bias, upstream):
    """``nn.LayerNorm`` swapped by ``cpu_speed.accelerate``: its output and the x, scale, bias gradients."""
    layer = paddle.nn.LayerNorm(x.shape[-1], epsilon=1e-5)
    cpu_speed.accelerate(layer)
    assert type(layer) is cpu_speed.CpuLayerNorm
    layer.weight.set_value(weight)
    layer.bias.set_value(bias)
    xs = paddle.to_tensor(x, stop_gradient=False)
    y = layer(xs)
    grads = paddle.grad(y, [xs, layer.weight, layer.bias], paddle.to_tensor(upstream))
    return [y.numpy()] + [g.numpy() for g in grads]


def _exact_grad_x(x, weight, upstream):
    """d(layer_norm)/dx in float64."""
    x = x.astype(np.float64)
    centered = x - x.mean(-1, keepdims=True)
    rstd = 1 / np.sqrt((centered ** 2).mean(-1, keepdims=True) + 1e-5)
    normed, scaled = centered * rstd, upstream * weight
    return rstd * (scaled - scaled.mean(-1, keepdims=True) - normed * (scaled * normed).mean(-1, keepdims=True))


def test_op_matches_paddles_layer_norm(op):
    x, weight, bias, upstream = _inputs(0)
    reference = _run(_paddle, x, weight, bias, upstream)
    ours = _run(lambda a, w, b: op.layer_norm(a, w, b, 1e-5), x, weight, bias, upstream)
    assert op.status()["loaded"]
    for got, want in zip(ours, reference):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-4)
    np.testing.assert_allclose(ours[1], _exact_grad_x(x, weight, upstream), rtol=1e-4, atol=2e-4)


def test_op_with_a_frozen_scale_keeps_the_scale_in_the_input_gradient(op):
    """Paddle 3.3.1's CPU layer_norm_grad drops the scale from the input gradient when the scale
    needs no gradient (found here: its input gradient then equals that of a scale of ones); the op
    does not."""
    x, weight, bias, upstream = _inputs(4)
    _, grad_x, grad_bias = _run(lambda a, w, b: op.layer_norm(a, w, b, 1e-5), x, weight, bias, upstream,
                                frozen_weight=True)
    np.testing.assert_allclose(grad_x, _exact_grad_x(x, weight, upstream), rtol=1e-4, atol=2e-4)
    np.testing.assert_allclose(grad_bias, upstream.reshape(-1, upstream.shape[-1]).sum(0), rtol=1e-4, atol=2e-4)


def test_cpu_layer_norm_takes_the_op(op, monkeypatch):
    monkeypatch.setattr(cpu_speed, "layer_norm_grads", lambda *a: pytest.fail("the numpy gradient ran"))
    x, weight, bias, upstream = _inputs(1)
    for got, want in zip(_run_cpu_layer(x, weight, bias, upstream), _run(_paddle, x, weight, bias, upstream)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-4)


def test_numpy_gradient_when_switched_off(monkeypatch):
    monkeypatch.setenv("PADDLEPALM_FUSED_LAYER_NORM", "0")
    fused_layer_norm.reset()
    calls = []
    numpy_grads = cpu_speed.layer_norm_grads
    monkeypatch.setattr(cpu_speed, "layer_norm_grads", lambda *a: calls.append(1) or numpy_grads(*a))
    try:
        x, weight, bias, upstream = _inputs(2)
        for got, want in zip(_run_cpu_layer(x, weight, bias, upstream), _run(_paddle, x, weight, bias, upstream)):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-4)
        assert calls == [1] and fused_layer_norm.status()["enabled"] is False
    finally:
        fused_layer_norm.reset()


def test_numpy_gradient_when_the_build_fails(monkeypatch, tmp_path, caplog):
    with failing_build(monkeypatch, tmp_path, fused_layer_norm, "PADDLEPALM_FUSED_LAYER_NORM"):
        x, weight, bias, upstream = _inputs(3)
        with capture_op_warnings(caplog):
            for _ in range(2):
                ours = _run_cpu_layer(x, weight, bias, upstream)
        for got, want in zip(ours, _run(_paddle, x, weight, bias, upstream)):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-4)
        assert_one_build_warning(caplog, fused_layer_norm)