"""The fused LSTMP op (paddlepalm/utils/fused_lstmp.py): same outputs and gradients as the
pure-Paddle recurrence, the same biLM training step, the fallback when disabled or when
the build fails, and the on-disk cache (a second process loads without compiling)."""
import logging
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from paddlepalm.utils import fused_lstmp
from paddlepalm.utils.custom_ops import ops_dir
from paddlepalm.utils.lstmp import BiLSTMP, lstmp_layer_reference, lstmp_layer_unfused

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CELL_CLIP, PROJ_CLIP = 1.0, 0.8


@pytest.fixture
def op(monkeypatch):
    monkeypatch.setenv("PADDLEPALM_FUSED_LSTM", "1")
    if fused_lstmp.load_op() is None:
        pytest.skip("fused LSTMP op unavailable here (no compiler or no MKL in the paddle wheel)")
    return fused_lstmp


@pytest.fixture
def fresh_state():
    """Let a test redo this process's load attempt; the loaded op comes back afterwards."""
    fused_lstmp.reset()
    yield
    fused_lstmp.reset()  # the next use loads the cached library again


def _layer_inputs(seed=0, D=2, B=3, T=5, In=6, H=4, P=3):
    rng = np.random.RandomState(seed)
    shapes = [(D, B, T, In), (D, In, 4 * H), (D, 4 * H), (D, P, 4 * H), (D, H, P), (D, B, P), (D, B, H)]
    scales = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0]  # large enough that both clips bind
    return [(rng.randn(*s) * k).astype("float32") for s, k in zip(shapes, scales)], rng.randn(D, B, T, P)


def _run(fn, arrays, out_weight):
    tensors = [paddle.to_tensor(a, stop_gradient=False) for a in arrays]
    out = fn(*tensors, CELL_CLIP, PROJ_CLIP)
    (out * paddle.to_tensor(out_weight.astype("float32"))).sum().backward()
    return out.numpy(), [t.grad.numpy() for t in tensors]


def test_fused_op_matches_reference_outputs_and_gradients(op):
    arrays, out_weight = _layer_inputs()
    fused_out, fused_grads = _run(op.fused_layer, arrays, out_weight)
    ref_out, ref_grads = _run(lstmp_layer_unfused, arrays, out_weight)
    # both clips are active in this case
    assert (np.abs(ref_out) >= PROJ_CLIP - 1e-6).mean() > 0.05
    module = op.load_op()
    _, _, cells = getattr(module, op.OP_NAME)(*[paddle.to_tensor(a) for a in arrays], CELL_CLIP, PROJ_CLIP)
    assert (np.abs(cells.numpy()) >= CELL_CLIP - 1e-6).mean() > 0.05
    np.testing.assert_allclose(fused_out, ref_out, atol=1e-5)
    for name, fused, ref in zip(["x", "w_in", "bias", "w_rec", "w_proj", "h0", "c0"], fused_grads, ref_grads):
        np.testing.assert_allclose(fused, ref, atol=1e-5, err_msg=f"gradient of {name}")


def _bilm_step(monkeypatch, fused: bool, state, ids):
    monkeypatch.setenv("PADDLEPALM_FUSED_LSTM", "1" if fused else "0")
    config = {"input_type": "word", "vocab_size": 30, "cell_size": 8, "projection_size": 6, "dropout": 0.0,
              "cell_clip": 0.05, "proj_clip": 0.03}
    backbone = palm.backbone.ELMo.from_config(config)
    head = palm.head.BiLM(30, 6)
    if state is None:
        state = {**{f"b.{k}": v.numpy() for k, v in backbone.state_dict().items()},
                 **{f"h.{k}": v.numpy() for k, v in head.state_dict().items()}}
    backbone.set_state_dict({k[2:]: v for k, v in state.items() if k.startswith("b.")})
    head.set_state_dict({k[2:]: v for k, v in state.items() if k.startswith("h.")})
    opt = paddle.optimizer.Adam(1e-2, parameters=backbone.parameters() + head.parameters())
    inputs = {"token_ids": paddle.to_tensor(ids), "seq_lens": paddle.to_tensor([7, 4])}
    loss = head(inputs, backbone(inputs))["loss"]
    loss.backward()
    opt.step()
    params = {k: v.numpy() for k, v in backbone.state_dict().items()}
    return float(loss), params, state


def test_bilm_training_step_is_the_same_fused_and_fallback(op, monkeypatch):
    paddle.seed(0)
    ids = np.random.RandomState(1).randint(3, 30, size=(2, 7)).astype("int64")
    fused_loss, fused_params, state = _bilm_step(monkeypatch, True, None, ids)
    ref_loss, ref_params, _ = _bilm_step(monkeypatch, False, state, ids)
    assert abs(fused_loss - ref_loss) < 1e-5
    for name, value in ref_params.items():
        np.testing.assert_allclose(fused_params[name], value, atol=1e-5, err_msg=name)
    assert not np.allclose(ref_params["lstm.fw.0.recurrent_weight"], state["b.lstm.fw.0.recurrent_weight"])


def _bilstmp_output():
    paddle.seed(3)
    lstm = BiLSTMP(4, 5, 3, num_layers=2, cell_clip=0.5, proj_clip=0.3)
    return lstm(paddle.randn([2, 6, 4]), paddle.to_tensor([6, 3]))[-1][0].numpy()


def test_fallback_when_disabled(monkeypatch):
    monkeypatch.setenv("PADDLEPALM_FUSED_LSTM", "0")
    assert fused_lstmp.load_op() is None
    assert fused_lstmp.fused_layer(*[paddle.to_tensor(a) for a in _layer_inputs()[0]], 1.0, 1.0) is None
    calls = []
    monkeypatch.setattr("paddlepalm.utils.lstmp.lstmp_layer_reference",
                        lambda *a: calls.append(1) or lstmp_layer_reference(*a))
    assert _bilstmp_output().shape == (2, 6, 3)
    assert len(calls) == 2  # one per layer: the pure-Paddle path ran


def test_fallback_when_compile_fails(monkeypatch, tmp_path, caplog, fresh_state):
    from paddle.utils import cpp_extension

    monkeypatch.setenv("PADDLEPALM_FUSED_LSTM", "1")
    monkeypatch.setenv("PADDLEPALM_OPS_DIR", str(tmp_path))  # nothing cached there

    def broken_compiler(*args, **kwargs):
        raise RuntimeError("g++: command not found\nmore lines")
    monkeypatch.setattr(cpp_extension, "load", broken_compiler)
    calls = []
    monkeypatch.setattr("paddlepalm.utils.lstmp.lstmp_layer_reference",
                        lambda *a: calls.append(1) or lstmp_layer_reference(*a))
    with caplog.at_level(logging.WARNING, logger="paddlepalm.utils.custom_ops"):
        out = _bilstmp_output()
        assert fused_lstmp.load_op() is None  # tried once, not again
    warnings = [r for r in caplog.records if r.name == "paddlepalm.utils.custom_ops"]
    assert len(warnings) == 1 and "g++: command not found" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()
    assert len(calls) == 2 and out.shape == (2, 6, 3)


def test_fused_path_is_taken_when_available(op, monkeypatch):
    monkeypatch.setattr("paddlepalm.utils.lstmp.lstmp_layer_reference",
                        lambda *a: pytest.fail("the pure-Paddle recurrence ran although the op is available"))
    assert _bilstmp_output().shape == (2, 6, 3)


def test_compiled_op_is_cached_on_disk(op):
    """A second process loads the library from the cache directory: its compiler is broken,
    yet it gets the op, with no compile time."""
    code = ("import paddlepalm\nfrom paddle.utils import cpp_extension\n"
            "def boom(*a, **k): raise RuntimeError('recompiled')\n"
            "cpp_extension.load = boom\n"
            "from paddlepalm.utils import fused_lstmp\n"
            "assert fused_lstmp.load_op() is not None\n"
            "assert fused_lstmp.status()['compile_seconds'] is None\n"
            "print('loaded', fused_lstmp.build_dir())\n")
    env = dict(os.environ, PYTHONPATH=ROOT, PADDLEPALM_FUSED_LSTM="1", PADDLEPALM_OPS_DIR=ops_dir())
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"loaded {op.build_dir()}" in result.stdout
