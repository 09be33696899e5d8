"""The CPU layers of paddlepalm.utils.cpu_speed compute what Paddle's layers compute."""
import os

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from paddlepalm.utils import cpu_speed


def _pair(layer_factory, seed=0):
    paddle.seed(seed)
    reference = layer_factory()
    fast = layer_factory()
    fast.set_state_dict(reference.state_dict())
    assert sum(cpu_speed.accelerate(fast).values()) >= 1
    return reference, fast


def _grads(layer, x, grad):
    x = x.detach()
    x.stop_gradient = False
    out = layer(x)
    out.backward(grad)
    grads = {"x": x.grad.numpy()}
    grads.update({name: p.grad.numpy() for name, p in layer.named_parameters() if p.grad is not None})
    return out.numpy(), grads


def _assert_same(reference, fast, x, rtol=1e-5, atol=1e-5):
    grad = paddle.randn(reference(x).shape)
    out_ref, grads_ref = _grads(reference, x, grad)
    out_fast, grads_fast = _grads(fast, x, grad)
    np.testing.assert_allclose(out_fast, out_ref, rtol=rtol, atol=atol)
    assert grads_fast.keys() == grads_ref.keys()
    for name in grads_ref:
        np.testing.assert_allclose(grads_fast[name], grads_ref[name], rtol=rtol, atol=atol, err_msg=name)


def test_linear_gradients_match_paddle():
    reference, fast = _pair(lambda: paddle.nn.Linear(24, 40))
    assert type(fast) is cpu_speed.CpuLinear
    _assert_same(reference, fast, paddle.randn([3, 7, 24]))


def test_linear_frozen_weight_gets_no_gradient():
    _, fast = _pair(lambda: paddle.nn.Linear(8, 4))
    fast.weight.stop_gradient = True
    x = paddle.randn([5, 8])
    x.stop_gradient = False
    fast(x).sum().backward()
    assert fast.weight.grad is None
    assert fast.bias.grad is not None and x.grad is not None
    np.testing.assert_allclose(fast.bias.grad.numpy(), np.full([4], 5.0), rtol=1e-6)


def test_layer_norm_gradients_match_paddle():
    reference, fast = _pair(lambda: paddle.nn.LayerNorm(32, epsilon=1e-5))
    reference.weight.set_value(paddle.rand([32]) + 0.5)
    fast.weight.set_value(reference.weight)
    assert type(fast) is cpu_speed.CpuLayerNorm
    _assert_same(reference, fast, paddle.randn([4, 9, 32]) * 3 + 1, rtol=1e-4, atol=1e-4)


def test_dropout_mask_statistics_and_gradient():
    paddle.seed(3)
    x = paddle.ones([1000, 1000])
    x.stop_gradient = False
    out = cpu_speed.dropout(x, 0.1)
    values = out.numpy()
    dropped = float((values == 0).mean())
    assert abs(dropped - 0.1) < 0.002, dropped
    assert abs(float(values.mean()) - 1.0) < 0.005  # inverted dropout keeps the expectation
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), values)  # the same mask scales the gradient


def test_dropout_repeats_under_paddle_seed_and_is_identity_in_eval():
    x = paddle.randn([64, 64])
    paddle.seed(7)
    first = cpu_speed.dropout(x, 0.3).numpy()
    paddle.seed(7)
    again = cpu_speed.dropout(x, 0.3).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, cpu_speed.dropout(x, 0.3).numpy())
    np.testing.assert_array_equal(cpu_speed.dropout(x, 0.3, training=False).numpy(), x.numpy())


def test_attention_matches_paddle_without_dropout(monkeypatch):
    reference, fast = _pair(lambda: paddle.nn.MultiHeadAttention(32, 4, dropout=0.1))
    assert type(fast) is cpu_speed.CpuMultiHeadAttention
    # Only the dropout differs: with it removed in both, outputs and gradients agree.
    monkeypatch.setattr(cpu_speed, "dropout", lambda x, p, training=True: x)
    monkeypatch.setattr(paddle.nn.functional, "dropout", lambda x, *a, **k: x)
    mask = paddle.to_tensor(np.where(np.arange(6) < 4, 0.0, -1e4).astype("float32").reshape(1, 1, 1, 6))
    grad = paddle.randn([2, 6, 32])
    x = paddle.randn([2, 6, 32])
    outs = []
    for layer in (reference, fast):
        x_in = x.detach()
        x_in.stop_gradient = False
        out = layer(x_in, attn_mask=mask)
        out.backward(grad)
        outs.append((out.numpy(), x_in.grad.numpy()))
    np.testing.assert_allclose(outs[1][0], outs[0][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outs[1][1], outs[0][1], rtol=1e-5, atol=1e-6)


def test_accelerate_keeps_parameter_names_and_obeys_switch(monkeypatch):
    config = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
              "vocab_size": 50}
    backbone = palm.backbone.ERNIE.from_config(config)
    names = list(backbone.state_dict())
    monkeypatch.setenv("PALM_CPU_KERNELS", "none")
    plain = palm.Trainer("t")
    plain.build_forward(palm.backbone.ERNIE.from_config(config), palm.head.Classify(2, 32))
    assert not any(type(layer).__module__ == cpu_speed.__name__ for layer in plain.model.sublayers())
    monkeypatch.setenv("PALM_CPU_KERNELS", "all")
    trainer = palm.Trainer("t")
    model = trainer.build_forward(backbone, palm.head.Classify(2, 32))
    kinds = {type(layer).__name__ for layer in model.sublayers()}
    assert {"CpuLinear", "CpuDropout", "CpuLayerNorm", "CpuMultiHeadAttention"} <= kinds
    assert list(backbone.state_dict()) == names
    monkeypatch.setenv("PALM_CPU_KERNELS", "linear,fused_everything")
    with pytest.raises(ValueError, match="fused_everything"):
        cpu_speed.enabled_kinds()


def test_training_step_matches_paddle_layers_without_dropout(monkeypatch):
    """A whole ERNIE + Classify step: same loss and same updated parameters with and without the swaps."""
    config = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
              "vocab_size": 60, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    rng = np.random.RandomState(0)
    batch = {"token_ids": rng.randint(1, 60, (4, 10)).astype("int64"),
             "position_ids": np.tile(np.arange(10), (4, 1)).astype("int64"),
             "segment_ids": np.zeros((4, 10), "int64"),
             "input_mask": np.ones((4, 10, 1), "float32"),
             "label_ids": rng.randint(0, 2, (4,)).astype("int64")}
    results = []
    for kernels in ("none", "all"):
        monkeypatch.setenv("PALM_CPU_KERNELS", kernels)
        paddle.seed(5)
        trainer = palm.Trainer("t")
        model = trainer.build_forward(palm.backbone.ERNIE.from_config(config), palm.head.Classify(2, 32, 0.0))
        trainer.build_backward(palm.optimizer.Adam(model, 1e-3), weight_decay=0.01)
        losses = [trainer.train_one_step(batch)["loss"] for _ in range(3)]
        results.append((losses, {k: v.numpy() for k, v in model.state_dict().items()}))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-5)
    for name, value in results[0][1].items():
        np.testing.assert_allclose(results[1][1][name], value, rtol=1e-4, atol=1e-5, err_msg=name)


def test_layers_trace_under_to_static():
    """Under to_static the swapped layers run Paddle's own ops (numpy cannot be traced)."""
    paddle.seed(2)
    model = paddle.nn.Sequential(paddle.nn.Linear(8, 8), paddle.nn.LayerNorm(8), paddle.nn.Dropout(0.5))
    assert sum(cpu_speed.accelerate(model).values()) == 3
    model.eval()
    x = paddle.randn([3, 8])
    static = paddle.jit.to_static(model, full_graph=True)
    np.testing.assert_allclose(static(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("vendor, expected", [("AuthenticAMD", "5"), ("GenuineIntel", None)])
def test_mkl_amd_code_path_is_chosen_on_amd_only(monkeypatch, vendor, expected):
    """MKL_DEBUG_CPU_TYPE=5 speeds Paddle's MKL up on AMD and slows it down on Intel: set on AMD only,
    and a value the user set is kept."""
    from paddlepalm import runtime

    monkeypatch.delenv("MKL_DEBUG_CPU_TYPE", raising=False)
    monkeypatch.setattr(runtime, "cpu_vendor", lambda: vendor)
    runtime.configure()
    assert os.environ.get("MKL_DEBUG_CPU_TYPE") == expected
    monkeypatch.setenv("MKL_DEBUG_CPU_TYPE", "0")
    runtime.configure()
    assert os.environ["MKL_DEBUG_CPU_TYPE"] == "0"


def test_cpu_vendor_reads_proc_cpuinfo():
    from paddlepalm import runtime

    vendor = runtime.cpu_vendor()
    if os.path.exists("/proc/cpuinfo"):
        assert vendor in open("/proc/cpuinfo").read()
        assert vendor
