"""The fused LSTMP layer: a Paddle custom C++ operator (``csrc/lstmp_op.cc``) that runs
one layer's whole time loop, both directions, forward and backward, in C++.

Why: stepped in Python, each time step of :class:`paddlepalm.utils.lstmp.BiLSTMP` is
about 30 small kernels (gate slices, activations, cell update, clips and their
gradients) that Paddle 3 on CPU does not fuse; the op does one GEMM for the recurrent
term and one for the projection per step, with the elementwise work in one loop. The input
projections (one GEMM over all steps, plus the bias) and every weight gradient are GEMMs over
all ``B*T`` rows inside the op too, outside Paddle's slower ``bmm``/broadcast-add gradients.

Built, cached and loaded by :mod:`paddlepalm.utils.custom_ops`; ``PADDLEPALM_FUSED_LSTM=0``
forces the pure-Paddle path; so does any failure to build or load, which logs one line and is
recorded in :func:`status`. Only float32 CPU tensors take the op.
"""
from typing import Any, Dict, Optional

import paddle

from paddlepalm.utils.custom_ops import CustomOp

OP_NAME = "palm_lstmp"
OP = CustomOp(OP_NAME, "lstmp_op.cc", "PADDLEPALM_FUSED_LSTM", needs_mkl=True, fallback="the pure-Paddle LSTM")


def enabled() -> bool:
    """False when ``PADDLEPALM_FUSED_LSTM`` is ``0``/``false``/``off``."""
    return OP.enabled()


def build_dir() -> str:
    return OP.build_dir()


def load_op():
    """The op module (compiled on first use, cached on disk and in this process), or None:
    disabled by ``PADDLEPALM_FUSED_LSTM=0``, or the build/load failed (logged once)."""
    return OP.load()


def status() -> Dict[str, Any]:
    return OP.status()


def fused_layer(x: paddle.Tensor, w_in: paddle.Tensor, bias: paddle.Tensor, w_rec: paddle.Tensor,
                w_proj: paddle.Tensor, h0: paddle.Tensor, c0: paddle.Tensor, cell_clip: float,
                proj_clip: float) -> Optional[paddle.Tensor]:
    """The op's ``hidden [D, B, T, P]`` for the layer input ``x [D, B, T, In]``, ``w_in [D, In, 4H]``
    and ``bias [D, 4H]`` (the op forms ``x @ w_in + bias`` itself), or None when the op is
    unavailable or does not apply (not float32 on CPU)."""
    if x.dtype != paddle.float32 or not x.place.is_cpu_place():
        return None
    module = load_op()
    if module is None:
        return None
    hidden, _act, _cell = getattr(module, OP_NAME)(x, w_in, bias, w_rec, w_proj, h0, c0, float(cell_clip),
                                                   float(proj_clip))
    return hidden


def reset() -> None:
    """Forget this process's load attempt (tests)."""
    OP.reset()
