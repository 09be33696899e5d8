"""Faster training on CPU: layers that route around slow Paddle 3.3 CPU kernels (measured in
docs/benchmarks.md, "CPU speed": bench/op_micro.py, bench/cpu_speedups.py, bench/compare_torch.py).

* The bias gradient of ``nn.Linear`` is a column sum that Paddle's CPU reduce kernel computes
  slowly; as a product with a ones vector it runs in MKL. ``CpuLinear`` computes all three
  gradients as GEMMs, and adds the bias in numpy.
* Paddle's CPU dropout is slow on attention probabilities. ``CpuDropout`` draws 16 random bits per
  element from numpy's PCG64, seeded from Paddle's generator so that ``paddle.seed`` still makes a
  run repeatable.
* Paddle's CPU ``layer_norm_grad`` is slow (and, in Paddle 3.3.1, wrong for the input when the
  scale is frozen); ``CpuLayerNorm`` runs the layer norm and its gradient in a custom operator
  (:mod:`paddlepalm.utils.fused_layer_norm`), or where that cannot be built keeps Paddle's
  forward kernel and computes the gradient in numpy (row sums as GEMVs, in-place arithmetic).
* Paddle's CPU ``gelu`` kernels evaluate ``erf`` one element at a time; a sublayer whose
  ``activation`` is ``F.gelu`` (transformer layers, the masked-LM and ELECTRA heads) gets the
  vectorized operator of :mod:`paddlepalm.utils.fused_gelu` (same function).

``accelerate(model)`` swaps the class of the plain ``nn.Linear``, ``nn.Dropout``,
``nn.MultiHeadAttention`` and ``nn.LayerNorm`` sublayers in place, and the GELU activations:
parameters, names and checkpoints are unchanged. It does nothing on GPU, where Paddle's own
kernels are the fast ones. ``PALM_CPU_KERNELS`` chooses which swaps are made:
``all`` (default), ``none``, or a comma list of ``linear``, ``dropout``, ``layer_norm``, ``gelu``.
"""
import os
from typing import Dict

import numpy as np
import paddle
from paddle import nn
from paddle.autograd import PyLayer
import paddle.nn.functional as F


def on_cpu() -> bool:
    return paddle.get_device() == "cpu"


def _eager_training() -> bool:
    """Dynamic graph with autograd on; under ``to_static`` Paddle's own layers are traced instead."""
    return paddle.in_dynamic_mode() and paddle.is_grad_enabled()


def _numpy(t: paddle.Tensor) -> np.ndarray:
    """A read-only view of a CPU tensor's buffer (a copy if it is not contiguous)."""
    t = t.detach()
    return np.from_dlpack(t) if t.is_contiguous() else t.numpy()


def _tensor(array: np.ndarray) -> paddle.Tensor:
    """A tensor over numpy's buffer, without a copy (``paddle.to_tensor`` copies)."""
    return paddle.utils.dlpack.from_dlpack(array)


def numpy_add(a: paddle.Tensor, b: paddle.Tensor) -> paddle.Tensor:
    """``a + b`` (numpy broadcasting) computed in numpy (faster than Paddle's CPU add: bench/op_micro.py)."""
    return _tensor(np.add(_numpy(a), _numpy(b)))


class _LinearFunction(PyLayer):
    """``x @ weight + bias`` whose backward is three GEMMs (no reduce kernel)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.needs_grad = (not x.stop_gradient, not weight.stop_gradient, not bias.stop_gradient)
        # numpy's broadcast add is the faster one here (bench/op_micro.py)
        return numpy_add(paddle.matmul(x, weight), bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensor()
        grad_rows = grad.reshape([-1, grad.shape[-1]])
        needs_x, needs_weight, needs_bias = ctx.needs_grad
        grad_x = paddle.matmul(grad, weight, transpose_y=True) if needs_x else None
        grad_weight = (paddle.matmul(x.reshape([-1, x.shape[-1]]), grad_rows, transpose_x=True)
                       if needs_weight else None)
        ones = paddle.ones([1, grad_rows.shape[0]], dtype=grad_rows.dtype)
        grad_bias = paddle.matmul(ones, grad_rows).reshape([-1]) if needs_bias else None
        return grad_x, grad_weight, grad_bias


class CpuLinear(nn.Linear):
    """``nn.Linear`` with GEMM-only gradients; same parameters and names."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.bias is None or not _eager_training() or x.dtype != paddle.float32:
            return F.linear(x, self.weight, self.bias)
        return _LinearFunction.apply(x, self.weight, self.bias)


def _keep_mask(shape, p: float):
    """A bool keep-mask and its exact scale: 16 random bits per element, dropped when below ``p * 2**16``."""
    threshold = int(round(p * 65536))
    seed = paddle.randint(0, 2 ** 31 - 1, [1]).item()  # from Paddle's generator: paddle.seed repeats it
    count = int(np.prod(shape))
    bits = np.frombuffer(np.random.default_rng(seed).bytes(2 * count), dtype=np.uint16)
    return (bits >= threshold).reshape(shape), np.float32(65536.0 / (65536 - threshold))


def _masked(x: paddle.Tensor, keep: np.ndarray, scale: np.float32) -> paddle.Tensor:
    out = np.multiply(_numpy(x), keep)
    out *= scale
    return _tensor(out)


class _DropoutFunction(PyLayer):
    """Inverted dropout (``upscale_in_train``); keeps the 1-byte mask, like Paddle's kernel."""

    @staticmethod
    def forward(ctx, x, p):
        ctx.keep, ctx.scale = _keep_mask(x.shape, p)
        return _masked(x, ctx.keep, ctx.scale)

    @staticmethod
    def backward(ctx, grad):
        return _masked(grad, ctx.keep, ctx.scale)


def dropout(x: paddle.Tensor, p: float, training: bool = True) -> paddle.Tensor:
    """``F.dropout(x, p, training=training)`` (mode ``upscale_in_train``), faster on CPU."""
    if not training or p == 0.0:
        return x
    if p == 1.0 or x.dtype != paddle.float32 or not on_cpu() or not paddle.in_dynamic_mode():
        return F.dropout(x, p, training=training)
    if x.stop_gradient or not paddle.is_grad_enabled():
        return _masked(x, *_keep_mask(x.shape, p))
    return _DropoutFunction.apply(x, p)


class CpuDropout(nn.Dropout):
    """``nn.Dropout`` drawing its mask with numpy; same arguments, no parameters."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.axis is not None or self.mode != "upscale_in_train":
            return super().forward(x)
        return dropout(x, self.p, self.training)


class _AddConstant(PyLayer):
    """``x + constant`` (broadcast; no gradient for ``constant``) in numpy, the faster of the two for
    the attention mask add (bench/op_micro.py)."""

    @staticmethod
    def forward(ctx, x, constant):
        return numpy_add(x, constant)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class CpuMultiHeadAttention(nn.MultiHeadAttention):
    """``nn.MultiHeadAttention`` whose mask add and attention-probability dropout run in numpy."""

    def forward(self, query, key=None, value=None, attn_mask=None, cache=None):
        if cache is not None or self.need_weights or not self.training or not _eager_training() or \
                (attn_mask is not None and attn_mask.dtype != query.dtype):
            return super().forward(query, key, value, attn_mask, cache)
        key = query if key is None else key
        value = query if value is None else value
        q, k, v = self._prepare_qkv(query, key, value, cache)
        product = paddle.matmul(x=q * (self.head_dim ** -0.5), y=k, transpose_y=True)
        if attn_mask is not None:
            product = _AddConstant.apply(product, attn_mask) if attn_mask.stop_gradient else product + attn_mask
        weights = dropout(F.softmax(product), self.dropout, self.training)
        out = paddle.matmul(weights, v).transpose([0, 2, 1, 3])
        return self.out_proj(out.reshape([0, 0, out.shape[2] * out.shape[3]]))


def layer_norm_grads(x: np.ndarray, grad: np.ndarray, weight: np.ndarray, epsilon: float):
    width = x.shape[-1]
    x, grad = x.reshape(-1, width), grad.reshape(-1, width)
    mean_of = np.full(width, 1.0 / width, dtype=np.float32)  # row means as GEMVs
    centered = x - (x @ mean_of)[:, None]
    rstd = (1.0 / np.sqrt(np.einsum("ij,ij->i", centered, centered) / width + epsilon)).astype(np.float32)
    normed = centered
    normed *= rstd[:, None]
    ones = np.ones(x.shape[0], dtype=np.float32)
    grad_bias = ones @ grad
    grad_weight = ones @ (grad * normed)
    grad_x = grad * weight
    mean_grad = grad_x @ mean_of
    mean_grad_normed = np.einsum("ij,ij->i", grad_x, normed) / width
    grad_x -= mean_grad[:, None]
    normed *= mean_grad_normed[:, None]
    grad_x -= normed
    grad_x *= rstd[:, None]
    return grad_x, grad_weight, grad_bias


class _LayerNormFunction(PyLayer):
    @staticmethod
    def forward(ctx, x, weight, bias, epsilon):
        ctx.save_for_backward(x, weight)
        ctx.epsilon = epsilon
        return F.layer_norm(x, x.shape[-1:], weight, bias, epsilon)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensor()
        grads = layer_norm_grads(_numpy(x), _numpy(grad), _numpy(weight), ctx.epsilon)
        grad_x, grad_weight, grad_bias = (_tensor(g) for g in grads)
        return grad_x.reshape(x.shape), grad_weight, grad_bias


class CpuLayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` over the last axis by the operator of :mod:`paddlepalm.utils.fused_layer_norm`,
    or, where it cannot be built, with its gradient computed in numpy."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if (len(self._normalized_shape) != 1 or self.weight is None or self.bias is None
                or x.dtype != paddle.float32 or not _eager_training()):
            return super().forward(x)
        from paddlepalm.utils import fused_layer_norm

        out = fused_layer_norm.layer_norm(x, self.weight, self.bias, float(self._epsilon))
        if out is not None:
            return out
        return _LayerNormFunction.apply(x, self.weight, self.bias, float(self._epsilon))


_FASTER = {
    "linear": {nn.Linear: CpuLinear},
    "dropout": {nn.Dropout: CpuDropout, nn.MultiHeadAttention: CpuMultiHeadAttention},
    "layer_norm": {nn.LayerNorm: CpuLayerNorm},
    "gelu": {},  # not a class swap: see _swap_gelu
}


def enabled_kinds() -> tuple:
    """The swaps ``PALM_CPU_KERNELS`` asks for."""
    value = os.environ.get("PALM_CPU_KERNELS", "all").strip().lower()
    if value in ("all", ""):
        return tuple(_FASTER)
    if value in ("none", "0"):
        return ()
    kinds = tuple(k.strip() for k in value.split(",") if k.strip())
    unknown = [k for k in kinds if k not in _FASTER]
    if unknown:
        raise ValueError(f"PALM_CPU_KERNELS: unknown {unknown}; use all, none or a comma list of {list(_FASTER)}")
    return kinds


def _swap_gelu(model: nn.Layer) -> int:
    """Sublayers whose ``activation`` attribute is Paddle's exact GELU (``nn.TransformerEncoderLayer``,
    the masked-LM and ELECTRA heads) get the vectorized operator of :mod:`paddlepalm.utils.fused_gelu`
    (it computes the same function; it keeps Paddle's kernel where the op does not apply)."""
    from paddlepalm.utils import fused_gelu

    swapped = 0
    for layer in model.sublayers(include_self=True):
        if getattr(layer, "activation", None) is F.gelu:
            layer.activation = fused_gelu.gelu
            swapped += 1
    return swapped


def accelerate(model: nn.Layer) -> Dict[str, int]:
    """Swap plain ``nn.Linear``/``nn.Dropout``/``nn.MultiHeadAttention``/``nn.LayerNorm`` sublayers
    for the CPU versions chosen by ``PALM_CPU_KERNELS``; returns how many of each kind were swapped
    (``{}`` on GPU, where Paddle's own kernels are the fast ones: nothing is swapped there).
    ``MultiTaskModel`` records the result (``cpu_layers``, shown in its repr; ``env.json``)."""
    if not on_cpu():
        return {}
    swapped: Dict[str, int] = {}
    for kind in enabled_kinds():
        if kind == "gelu":
            count = _swap_gelu(model)
            if count:
                swapped[kind] = count
            continue
        table = _FASTER[kind]
        for layer in model.sublayers(include_self=True):
            faster = table.get(type(layer))
            if faster is not None:
                layer.__class__ = faster
                swapped[kind] = swapped.get(kind, 0) + 1
    return swapped
