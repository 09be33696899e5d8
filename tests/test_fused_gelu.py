"""The exact-GELU operator (paddlepalm/utils/fused_gelu.py, csrc/gelu_op.cc): Paddle's values and
gradients (tails, zero, denormal-small inputs), swapped into the transformer layers by
``cpu_speed.accelerate`` (Paddle's kernel under ``to_static``), and the fallback when it is
switched off or cannot be built."""
import math

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

import paddlepalm as palm
from paddlepalm.utils import cpu_speed, fused_gelu
from op_fallback import assert_one_build_warning, capture_op_warnings, failing_build, switched_on


@pytest.fixture
def op(monkeypatch):
    with switched_on(monkeypatch, fused_gelu, "PADDLEPALM_FUSED_GELU") as module:
        yield module


def _values(seed: int = 0) -> np.ndarray:
    rng = np.random.RandomState(seed)
    special = [0.0, -0.0, 1e-30, -1e-30, 1e-7, -1e-7, 3.0, -3.0, 8.0, -8.0, 12.0, -12.0, 40.0, -40.0]
    return np.concatenate([special, rng.randn(3000) * 3]).astype("float32").reshape(2, -1)


def _value_and_grad(fn, values, upstream):
    x = paddle.to_tensor(values, stop_gradient=False)
    y = fn(x)
    (grad,) = paddle.grad(y, x, paddle.to_tensor(upstream))
    return y.numpy(), grad.numpy()


def _exact(values: np.ndarray, upstream: np.ndarray):
    """GELU and its gradient in float64 (math.erfc: no cancellation in the negative tail)."""
    x = values.astype(np.float64)
    cdf = 0.5 * np.vectorize(math.erfc)(-x / math.sqrt(2))
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return x * cdf, upstream * (cdf + x * pdf)


def test_values_and_gradients_match_exact_gelu_as_closely_as_paddles(op):
    values = _values()
    upstream = np.random.RandomState(1).randn(*values.shape).astype("float32")
    y_true, g_true = _exact(values, upstream)
    y_ref, g_ref = _value_and_grad(F.gelu, values, upstream)
    y, g = _value_and_grad(op.gelu, values, upstream)
    assert op.status()["loaded"]
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=2e-6)  # Paddle's, to float32 rounding
    np.testing.assert_allclose(g, g_ref, rtol=0, atol=2e-6)
    for ours, paddles, true in ((y, y_ref, y_true), (g, g_ref, g_true)):
        assert np.abs(ours - true).max() <= np.abs(paddles - true).max() + 1e-7
        np.testing.assert_allclose(ours, true, rtol=1e-4, atol=1e-30)  # the negative tail too
    assert y[0, 0] == 0 and np.all(np.isfinite(g))
    assert y[0, values[0].tolist().index(-40.0)] == 0 and y[0, values[0].tolist().index(40.0)] == 40.0


def test_accelerate_swaps_the_gelu_of_transformer_layers_and_heads(op, monkeypatch):
    monkeypatch.setenv("PALM_CPU_KERNELS", "all")
    config = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
              "vocab_size": 50}
    trainer = palm.Trainer("mlm")
    model = trainer.build_forward(palm.backbone.ERNIE.from_config(config), palm.head.MaskLM(32, 50, "gelu"))
    assert model.cpu_layers["gelu"] == 3  # two encoder layers and the head's transform
    monkeypatch.setenv("PALM_CPU_KERNELS", "linear,dropout,layer_norm")
    plain = palm.Trainer("mlm")
    model = plain.build_forward(palm.backbone.ERNIE.from_config(config), palm.head.MaskLM(32, 50, "gelu"))
    assert "gelu" not in model.cpu_layers
    assert all(getattr(layer, "activation", None) is not fused_gelu.gelu for layer in model.sublayers())


def test_a_swapped_encoder_layer_traces_under_to_static(op):
    paddle.seed(3)
    layer = paddle.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, activation="gelu")
    assert cpu_speed.accelerate(layer).get("gelu") == 1
    layer.eval()
    x = paddle.randn([2, 5, 16])
    static = paddle.jit.to_static(layer, full_graph=True)
    np.testing.assert_allclose(static(x).numpy(), layer(x).numpy(), rtol=1e-5, atol=1e-6)


def test_fallback_when_switched_off(monkeypatch):
    monkeypatch.setenv("PADDLEPALM_FUSED_GELU", "0")
    fused_gelu.reset()
    try:
        values = _values(2)
        np.testing.assert_array_equal(fused_gelu.gelu(paddle.to_tensor(values)).numpy(),
                                      F.gelu(paddle.to_tensor(values)).numpy())
        assert fused_gelu.status()["enabled"] is False and fused_gelu.status()["loaded"] is False
    finally:
        fused_gelu.reset()


def test_fallback_when_the_build_fails(monkeypatch, tmp_path, caplog):
    with failing_build(monkeypatch, tmp_path, fused_gelu, "PADDLEPALM_FUSED_GELU"):
        values = _values(3)
        upstream = np.ones_like(values)
        with capture_op_warnings(caplog):
            for _ in range(2):
                y, g = _value_and_grad(fused_gelu.gelu, values, upstream)
        y_ref, g_ref = _value_and_grad(F.gelu, values, upstream)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(g, g_ref)
        assert_one_build_warning(caplog, fused_gelu)