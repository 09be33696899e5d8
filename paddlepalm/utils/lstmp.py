"""Bidirectional multi-layer LSTM with a projection (LSTMP), as in ELMo's biLM.

Why not ``paddle.nn.LSTM(proj_size=...)``: with a projection it runs a Python
loop of small cell layers per direction and cannot go through ``to_static``
(see docs/benchmarks.md). This formulation does, per layer:

* one GEMM over all time steps for the input projections of both directions
  (``[2, B*T, in] @ [2, in, 4H]``);
* a time loop in which both directions advance together with one batched GEMM
  for the recurrent term (``bmm`` over a leading direction axis of 2), one
  ``sigmoid`` over the three fused gates and one batched GEMM for the projection.

The backward direction reads each sequence reversed *within its length*
(a gather), so padding always comes last and no masking is needed inside the loop.

Gate order inside the ``4H`` axis is (candidate, input, forget, output), the
layout of Paddle Fluid's ``dynamic_lstmp`` used by the released Paddle ELMo, so
its weights copy over without reordering. Cell states are clipped to
``[-cell_clip, cell_clip]`` and projections to ``[-proj_clip, proj_clip]``
(0 disables a clip).

The recurrence of a layer runs in the fused C++ op of
:mod:`paddlepalm.utils.fused_lstmp` when it is available (eager mode, float32 on CPU),
else stepped in Python (:func:`lstmp_layer_reference`).
"""
import warnings
from typing import List, Tuple

import paddle
import paddle.nn.functional as F
from paddle import nn

from paddlepalm.utils.fused_lstmp import fused_layer

DIRECTIONS = ("fw", "bw")


class LSTMPCell(nn.Layer):
    """Parameters of one direction of one layer.

    ``input_weight [in, 4H]`` (x @ W, no bias), ``recurrent_weight [P, 4H]``,
    ``bias [4H]``, ``projection_weight [H, P]``.
    """

    def __init__(self, input_size: int, cell_size: int, projection_size: int, init_scale: float = 0.05):
        super().__init__()
        uniform = nn.initializer.Uniform(-init_scale, init_scale)
        self.input_weight = self.create_parameter([input_size, 4 * cell_size], default_initializer=uniform)
        self.recurrent_weight = self.create_parameter([projection_size, 4 * cell_size], default_initializer=uniform)
        # forget-gate bias starts at 1 (remember by default), the usual LSTM initialization
        bias = paddle.zeros([4 * cell_size])
        bias[2 * cell_size:3 * cell_size] = 1.0
        self.bias = self.create_parameter([4 * cell_size], default_initializer=nn.initializer.Assign(bias))
        self.projection_weight = self.create_parameter([cell_size, projection_size], default_initializer=uniform)


def reverse_within_length(x: paddle.Tensor, lengths: paddle.Tensor) -> paddle.Tensor:
    """Reverse the first ``lengths[b]`` steps of each row of ``x [B, T, D]``; padding stays last.

    Applying it twice gives ``x`` back.
    """
    steps = x.shape[1]
    t = paddle.arange(steps, dtype="int64").unsqueeze(0)  # [1, T]
    lengths = lengths.astype("int64").unsqueeze(1)  # [B, 1]
    index = paddle.where(t < lengths, lengths - 1 - t, t)  # [B, T]
    return paddle.take_along_axis(x, index.unsqueeze(-1).expand([-1, -1, x.shape[2]]), axis=1)


class BiLSTMP(nn.Layer):
    """``num_layers`` LSTMP layers in each direction; returns every layer's outputs.

    Parameters are named ``fw.<layer>.*`` and ``bw.<layer>.*`` (see :class:`LSTMPCell`).
    With ``residual`` every layer after the first adds its input to its output
    (ELMo's skip connection from the second layer on).
    """

    def __init__(self, input_size: int, cell_size: int, projection_size: int, num_layers: int = 2,
                 cell_clip: float = 3.0, proj_clip: float = 3.0, residual: bool = True, dropout: float = 0.0):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.cell_size, self.projection_size, self.num_layers = cell_size, projection_size, num_layers
        self.cell_clip, self.proj_clip, self.residual = float(cell_clip), float(proj_clip), bool(residual)
        self.dropout = float(dropout)
        sizes = [input_size] + [projection_size] * (num_layers - 1)
        self.fw = nn.LayerList([LSTMPCell(s, cell_size, projection_size) for s in sizes])
        self.bw = nn.LayerList([LSTMPCell(s, cell_size, projection_size) for s in sizes])

    def compile(self, time_bucket: int = 8) -> "BiLSTMP":
        """Run the layers as one static graph (``paddle.jit.to_static``, time loop unrolled).

        A graph is built per (batch size, padded length); lengths are padded up to a
        multiple of ``time_bucket`` to bound the number of graphs. Padding comes after
        each sequence in both directions, so it does not change the outputs.
        """
        # dy2static warns once per traced tensor-creation op; nothing to act on
        warnings.filterwarnings("ignore", message=r".*do not have 'place' interface for pir graph mode.*")
        self.time_bucket = int(time_bucket)
        self._static_stack = paddle.jit.to_static(self._stack, full_graph=True)
        return self

    def forward(self, x: paddle.Tensor, lengths: paddle.Tensor) -> List[Tuple[paddle.Tensor, paddle.Tensor]]:
        """``x [B, T, in]``, ``lengths [B]`` -> per layer ``(forward [B,T,P], backward [B,T,P])``.

        The backward outputs are in the original time order: position ``t`` of the
        backward direction has read tokens ``t..len-1``.
        """
        inputs = paddle.stack([x, reverse_within_length(x, lengths)])  # [2, B, T, in]
        steps = x.shape[1]
        static = getattr(self, "_static_stack", None)
        if static is None:
            hidden = self._stack(inputs)
        else:
            pad = (-steps) % self.time_bucket
            if pad:
                inputs = paddle.concat([inputs, paddle.zeros([2, x.shape[0], pad, x.shape[2]], x.dtype)], axis=2)
            hidden = static(inputs)[:, :, :, :steps]
        return [(hidden[k, 0], reverse_within_length(hidden[k, 1], lengths)) for k in range(self.num_layers)]

    def _stack(self, inputs: paddle.Tensor) -> paddle.Tensor:
        """``[2, B, T, in]`` (backward direction already reversed) -> ``[layers, 2, B, T, P]``."""
        outputs = []
        for layer in range(self.num_layers):
            layer_input = inputs
            if self.dropout > 0 and self.training:
                layer_input = F.dropout(layer_input, self.dropout)
            hidden = self._run_layer(layer_input, self.fw[layer], self.bw[layer])  # [2, B, T, P]
            if self.residual and layer > 0:
                hidden = hidden + inputs
            outputs.append(hidden)
            inputs = hidden
        return paddle.stack(outputs)

    def _run_layer(self, x: paddle.Tensor, fw: LSTMPCell, bw: LSTMPCell) -> paddle.Tensor:
        two, batch, steps, _ = x.shape
        w_in = paddle.stack([fw.input_weight, bw.input_weight])  # [2, in, 4H]
        w_rec = paddle.stack([fw.recurrent_weight, bw.recurrent_weight])  # [2, P, 4H]
        w_proj = paddle.stack([fw.projection_weight, bw.projection_weight])  # [2, H, P]
        bias = paddle.stack([fw.bias, bw.bias])  # [2, 4H]
        h0 = paddle.zeros([two, batch, self.projection_size], dtype=x.dtype)
        c0 = paddle.zeros([two, batch, self.cell_size], dtype=x.dtype)
        hidden = None
        if paddle.in_dynamic_mode():  # under to_static the recurrence is traced instead
            hidden = fused_layer(x, w_in, bias, w_rec, w_proj, h0, c0, self.cell_clip, self.proj_clip)
        if hidden is None:
            hidden = lstmp_layer_unfused(x, w_in, bias, w_rec, w_proj, h0, c0, self.cell_clip, self.proj_clip)
        return hidden


def lstmp_layer_unfused(x: paddle.Tensor, w_in: paddle.Tensor, bias: paddle.Tensor, w_rec: paddle.Tensor,
                        w_proj: paddle.Tensor, h0: paddle.Tensor, c0: paddle.Tensor, cell_clip: float,
                        proj_clip: float) -> paddle.Tensor:
    """One layer in Paddle ops (what :func:`paddlepalm.utils.fused_lstmp.fused_layer` computes):
    the input projections of all steps in one ``bmm`` (``x [D, B, T, In] @ w_in [D, In, 4H] + bias
    [D, 4H]``), then :func:`lstmp_layer_reference`."""
    two, batch, steps, _ = x.shape
    gates_x = paddle.bmm(x.reshape([two, batch * steps, -1]), w_in) + bias.unsqueeze(1)
    gates_x = gates_x.reshape([two, batch, steps, w_in.shape[2]])
    return lstmp_layer_reference(gates_x, w_rec, w_proj, h0, c0, cell_clip, proj_clip)


def _clip(x: paddle.Tensor, bound: float) -> paddle.Tensor:
    return paddle.clip(x, -bound, bound) if bound > 0 else x


def lstmp_layer_reference(gates_x: paddle.Tensor, w_rec: paddle.Tensor, w_proj: paddle.Tensor, h0: paddle.Tensor,
                          c0: paddle.Tensor, cell_clip: float, proj_clip: float) -> paddle.Tensor:
    """One layer's recurrence stepped in Python: the pure-Paddle path, and what the fused op computes.

    ``gates_x [D, B, T, 4H]`` (input projections plus bias), ``w_rec [D, P, 4H]``,
    ``w_proj [D, H, P]``, initial states ``h0 [D, B, P]``, ``c0 [D, B, H]``
    -> clipped projections ``[D, B, T, P]``.
    """
    h = gates_x.shape[3] // 4
    per_step = paddle.unbind(gates_x.transpose([2, 0, 1, 3]), axis=0)  # T x [D, B, 4H]
    proj, cell = h0, c0
    hiddens = []
    for gates_t in per_step:
        gates = gates_t + paddle.bmm(proj, w_rec)  # [D, B, 4H]
        candidate = paddle.tanh(gates[:, :, :h])
        ifo = F.sigmoid(gates[:, :, h:])
        cell = ifo[:, :, h:2 * h] * cell + ifo[:, :, :h] * candidate
        cell = _clip(cell, cell_clip)
        proj = _clip(paddle.bmm(ifo[:, :, 2 * h:] * paddle.tanh(cell), w_proj), proj_clip)
        hiddens.append(proj)
    return paddle.stack(hiddens, axis=2)  # [D, B, T, P]
