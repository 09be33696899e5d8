"""The softmax cross-entropy of an output layer in one operator: Paddle custom C++ operators
(``csrc/softmax_ce_op.cc``) that compute the loss and its gradients (hidden, weight, bias) in the
same pass. The full softmax takes the logits ``hidden @ weight.T + bias`` a block of rows at a
time; the sampled softmax (:func:`mean_sampled_softmax_cross_entropy`, the BiLM head's
``num_samples``) takes each row's target and a shared set of sampled ids, in one op instead of
about twenty Paddle ops and their gradients.

Why: ``matmul`` + ``cross_entropy`` writes the whole ``[N, V]`` logits (a biLM batch: 6272 x 20000,
500 MB) and its gradient, and page-faults a fresh buffer of that size each step; the op reuses one
``[block, V]`` buffer and needs no second pass for the gradient. Its gradients are those of the
mean loss, so the ``mean_*`` functions are the entry points that differentiate; a per-row loss
(:func:`softmax_cross_entropy`) is forward-only through the op.

Built, cached and loaded by :mod:`paddlepalm.utils.custom_ops`; ``PADDLEPALM_FUSED_SOFTMAX=0``
forces the plain ``matmul`` + ``cross_entropy``, and so does any failure to build or load (one
warning, recorded in :func:`status`). Only float32 CPU tensors in eager mode take the op.
"""

import paddle
import paddle.nn.functional as F
from paddle.autograd import PyLayer

from paddlepalm.utils.custom_ops import CustomOp

OP_NAME = "palm_softmax_ce"
OP = CustomOp(OP_NAME, "softmax_ce_op.cc", "PADDLEPALM_FUSED_SOFTMAX", needs_mkl=True,
              fallback="matmul + cross_entropy")
BLOCK_ROWS = 256  # rows of logits per block: a [256, V] buffer


load_op = OP.load  # the compiled module, or None (switched off, or the build failed: status())
status = OP.status  # what this process uses: op, enabled, loaded, error, compile_seconds
reset = OP.reset  # forget this process's load attempt (tests)


def reference_loss(hidden: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor,
                   targets: paddle.Tensor) -> paddle.Tensor:
    """Per-row NLL through Paddle's ``matmul`` + ``cross_entropy`` (the fallback)."""
    logits = paddle.matmul(hidden, weight, transpose_y=True) + bias
    return F.cross_entropy(logits, targets.unsqueeze(-1), reduction="none").squeeze(-1)


def _applies(*tensors: paddle.Tensor) -> bool:
    return (paddle.in_dynamic_mode() and all(t.dtype == paddle.float32 and t.place.is_cpu_place() for t in tensors))


def _module():
    return OP.load()


def _save(ctx, inputs, grads) -> None:
    """Keep the op's gradients of the inputs that take one (a PyLayer must return None for the others)."""
    ctx.wanted = [not t.stop_gradient for t in inputs]
    ctx.save_for_backward(*[g for g, w in zip(grads, ctx.wanted) if w])


def _scaled(ctx, upstream: paddle.Tensor) -> tuple:
    """The saved gradients (of the mean loss) times the scalar upstream gradient, None where an input
    takes none; Paddle's broadcast ``multiply`` by a 0-d tensor is slow on CPU, ``scale`` by a float
    is not, and 1 needs neither."""
    factor = float(upstream)
    saved = iter(ctx.saved_tensor())
    grads = []
    for wanted in ctx.wanted:
        grad = next(saved) if wanted else None
        grads.append(grad if grad is None or factor == 1.0 else paddle.scale(grad, factor))
    return tuple(grads)


class _MeanSoftmaxCE(PyLayer):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets):
        rows = hidden.shape[0]
        loss, dx, dw, db = getattr(_module(), OP_NAME)(hidden, weight, bias, targets, True, 1.0 / max(rows, 1),
                                                       BLOCK_ROWS)
        _save(ctx, (hidden, weight, bias), (dx, dw, db))
        return loss.mean()

    @staticmethod
    def backward(ctx, grad):
        return _scaled(ctx, grad)


def mean_softmax_cross_entropy(hidden: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor,
                               targets: paddle.Tensor) -> paddle.Tensor:
    """Mean over rows of ``cross_entropy(hidden @ weight.T + bias, targets)``: ``hidden [N, P]``,
    ``weight [V, P]``, ``bias [V]``, int64 ``targets [N]`` in ``[0, V)``. Through the op when it
    applies, else the fallback; the same value and gradients either way."""
    if hidden.shape[0] == 0 or not _applies(hidden, weight, bias) or _module() is None:
        return reference_loss(hidden, weight, bias, targets).mean()
    return _MeanSoftmaxCE.apply(hidden, weight, bias, targets.astype("int64"))


def softmax_cross_entropy(hidden: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor,
                          targets: paddle.Tensor) -> paddle.Tensor:
    """Per-row NLL ``[N]``. The op computes it only when no gradient is needed (evaluation); with
    gradients, or when the op is unavailable, it is the fallback."""
    needs_grad = paddle.is_grad_enabled() and not all(t.stop_gradient for t in (hidden, weight, bias))
    if needs_grad or hidden.shape[0] == 0 or not _applies(hidden, weight, bias) or _module() is None:
        return reference_loss(hidden, weight, bias, targets)
    loss = getattr(_module(), OP_NAME)(hidden, weight, bias, targets.astype("int64"), False, 1.0, BLOCK_ROWS)[0]
    return loss



SAMPLED_OP_NAME = "palm_sampled_softmax_ce"
HIT_LOGIT = -1e9  # the logit of a sampled id equal to the row's target (an accidental hit)


def sampled_reference_loss(hidden: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor,
                           targets: paddle.Tensor, sampled: paddle.Tensor, log_q_targets: paddle.Tensor,
                           log_q_sampled: paddle.Tensor) -> paddle.Tensor:
    """Per-row sampled-softmax NLL in Paddle ops (the fallback): candidates are the row's target
    and the ``sampled`` ids, logits corrected by ``-log Q``, accidental hits set to ``HIT_LOGIT``."""
    true_logit = (hidden * paddle.gather(weight, targets)).sum(-1) + paddle.gather(bias, targets) - log_q_targets
    sampled_logits = paddle.matmul(hidden, paddle.gather(weight, sampled), transpose_y=True) \
        + paddle.gather(bias, sampled) - log_q_sampled  # [N, S]
    hits = targets.unsqueeze(1) == sampled.unsqueeze(0)
    sampled_logits = paddle.where(hits, paddle.full_like(sampled_logits, HIT_LOGIT), sampled_logits)
    logits = paddle.concat([true_logit.unsqueeze(1), sampled_logits], axis=1)
    return F.cross_entropy(logits, paddle.zeros([logits.shape[0], 1], dtype="int64"), reduction="none").squeeze(-1)


class _MeanSampledSoftmaxCE(PyLayer):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, sampled, log_q_targets, log_q_sampled):
        rows = hidden.shape[0]
        loss, dx, dw, db = getattr(_module(), SAMPLED_OP_NAME)(hidden, weight, bias, targets, sampled, log_q_targets,
                                                               log_q_sampled, True, 1.0 / max(rows, 1))
        _save(ctx, (hidden, weight, bias), (dx, dw, db))
        return loss.mean()

    @staticmethod
    def backward(ctx, grad):
        return _scaled(ctx, grad)


def mean_sampled_softmax_cross_entropy(hidden: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor,
                                       targets: paddle.Tensor, sampled: paddle.Tensor, log_q_targets: paddle.Tensor,
                                       log_q_sampled: paddle.Tensor) -> paddle.Tensor:
    """Mean over rows of :func:`sampled_reference_loss` (int64 ``targets [N]`` and ``sampled [S]``,
    ``log_q_*`` constants), through the op when it applies, else the fallback."""
    tensors = (hidden, weight, bias, log_q_targets, log_q_sampled)
    if hidden.shape[0] == 0 or not _applies(*tensors) or _module() is None:
        return sampled_reference_loss(hidden, weight, bias, targets, sampled, log_q_targets, log_q_sampled).mean()
    return _MeanSampledSoftmaxCE.apply(hidden, weight, bias, targets.astype("int64"), sampled.astype("int64"),
                                       log_q_targets.detach(), log_q_sampled.detach())
