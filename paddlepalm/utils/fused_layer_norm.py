"""Layer normalization over the last axis in one Paddle custom C++ operator
(``csrc/layer_norm_op.cc``), forward and gradient.

Why: Paddle 3.3's CPU ``layer_norm_grad`` is slow, and the numpy gradient that
:class:`paddlepalm.utils.cpu_speed.CpuLayerNorm` used instead still makes several passes over the
tensor (docs/benchmarks.md, "GELU and layer normalization"). Built, cached and loaded by
:mod:`paddlepalm.utils.custom_ops`; ``PADDLEPALM_FUSED_LAYER_NORM=0`` or any failure to build or
load leaves ``CpuLayerNorm`` on its numpy gradient (one warning, recorded in :func:`status`).
"""
from typing import Optional

import paddle

from paddlepalm.utils.custom_ops import CustomOp

OP_NAME = "palm_layer_norm"
OP = CustomOp(OP_NAME, "layer_norm_op.cc", "PADDLEPALM_FUSED_LAYER_NORM",
              fallback="the numpy layer-norm gradient")


load_op = OP.load  # the compiled module, or None (switched off, or the build failed: status())
status = OP.status  # what this process uses: op, enabled, loaded, error, compile_seconds
reset = OP.reset  # forget this process's load attempt (tests)


def layer_norm(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor,
               epsilon: float) -> Optional[paddle.Tensor]:
    """The op's layer norm of ``x`` over its last axis, or None when the op is unavailable (the
    caller takes another path). Float32 CPU tensors in eager mode only."""
    module = OP.load()
    if module is None:
        return None
    out, _, _ = getattr(module, OP_NAME)(x, weight, bias, float(epsilon))
    return out
