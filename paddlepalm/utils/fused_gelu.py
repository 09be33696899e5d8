"""Exact GELU in one Paddle custom C++ operator (``csrc/gelu_op.cc``), forward and gradient.

Why: Paddle 3.3's CPU ``gelu`` and ``gelu_grad`` kernels evaluate ``erf`` one element at a time;
the op's loops vectorize (docs/benchmarks.md, "GELU"). It computes what
``paddle.nn.functional.gelu(x)`` (``approximate=False``) computes, to float32 rounding. Built,
cached and loaded by :mod:`paddlepalm.utils.custom_ops`; ``PADDLEPALM_FUSED_GELU=0`` or any failure
to build or load keeps Paddle's kernel (one warning, recorded in :func:`status`). Only float32 CPU
tensors in eager mode take the op; :func:`gelu` falls back to Paddle's for anything else.
"""

import paddle
import paddle.nn.functional as F

from paddlepalm.utils.custom_ops import CustomOp

OP_NAME = "palm_gelu"
OP = CustomOp(OP_NAME, "gelu_op.cc", "PADDLEPALM_FUSED_GELU", fallback="Paddle's gelu kernel")


load_op = OP.load  # the compiled module, or None (switched off, or the build failed: status())
status = OP.status  # what this process uses: op, enabled, loaded, error, compile_seconds
reset = OP.reset  # forget this process's load attempt (tests)


def gelu(x: paddle.Tensor, approximate: bool = False, name=None) -> paddle.Tensor:
    """``paddle.nn.functional.gelu`` with the exact form on float32 CPU tensors run by the op."""
    if approximate or not paddle.in_dynamic_mode() or x.dtype != paddle.float32 or not x.place.is_cpu_place():
        return F.gelu(x, approximate=approximate)
    module = OP.load()
    if module is None:
        return F.gelu(x)
    return getattr(module, OP_NAME)(x)
