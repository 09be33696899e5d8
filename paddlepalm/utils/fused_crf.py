"""The CRF loss in one operator: a Paddle custom C++ operator (``csrc/crf_op.cc``) that runs
the forward algorithm over the whole sequence and its gradient (forward-backward) in C++.

Why: in Paddle the forward algorithm is a Python loop over time steps, each a handful of small
kernels forward and again backward; the op is one call each way. Built, cached and loaded by
:mod:`paddlepalm.utils.custom_ops`; ``PADDLEPALM_FUSED_CRF=0`` forces the pure-Paddle
:func:`paddlepalm.utils.crf.crf_nll_reference`, and so does any failure to build or load (one
warning, recorded in :func:`status`). Only float32 CPU tensors in eager mode take the op.
"""
from typing import Optional

import paddle

from paddlepalm.utils.custom_ops import CustomOp

OP_NAME = "palm_crf"
OP = CustomOp(OP_NAME, "crf_op.cc", "PADDLEPALM_FUSED_CRF", fallback="the pure-Paddle CRF loss")


load_op = OP.load  # the compiled module, or None (switched off, or the build failed: status())
status = OP.status  # what this process uses: op, enabled, loaded, error, compile_seconds
reset = OP.reset  # forget this process's load attempt (tests)


def fused_nll(emissions: paddle.Tensor, labels: paddle.Tensor, lengths: paddle.Tensor,
              transitions: paddle.Tensor) -> Optional[paddle.Tensor]:
    """The op's per-sequence NLL, or None when it does not apply (not float32 on CPU, static
    graph) or is unavailable."""
    if (emissions.dtype != paddle.float32 or transitions.dtype != paddle.float32
            or not emissions.place.is_cpu_place() or not paddle.in_dynamic_mode()):
        return None
    module = OP.load()
    if module is None:
        return None
    return getattr(module, OP_NAME)(emissions, transitions, labels.astype("int64"), lengths.astype("int64"))
