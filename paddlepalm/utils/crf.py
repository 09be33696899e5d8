"""Linear-chain CRF: normalized negative log-likelihood and Viterbi decoding.

paddlenlp's ``LinearChainCrf`` loss is not normalized (its partition function
uses the transposed transition matrix), so the forward algorithm is written here
and tested against brute-force enumeration. Decoding uses
``paddle.text.viterbi_decode``.

Transition parameters have PALM's layout ``[num_tags + 2, num_tags]``: row 0
holds start scores, row 1 stop scores, rows 2.. the ``from -> to`` scores.
"""
from typing import Optional

import paddle

_NEG = -1e4


def split_transitions(transitions: paddle.Tensor):
    return transitions[0], transitions[1], transitions[2:]


GEMM_SPREAD = 40.0


def _masked_update(new_alpha, alpha, keep):
    keep = keep.unsqueeze(-1)
    return new_alpha * keep + alpha * (1 - keep)


def _forward_by_gemm(alpha, emissions, mask, trans):
    """The forward recursion with each step as a matrix product.

    logsumexp_i(alpha_i + trans_ij) = m + c_j + log(sum_i exp(alpha_i - m) exp(trans_ij - c_j)),
    m = max_i alpha_i, c_j = max_i trans_ij (constants for the gradient: the value does not
    depend on them). A [B, K] x [K, K] GEMM per step instead of a [B, K, K] broadcast and
    logsumexp (much faster: bench/op_micro.py). Exact while the transition scores span at most 40
    (the sum is then >= e^-40, far from float32 underflow); the broadcast form is used otherwise.
    """
    column_max = trans.max(axis=0, keepdim=True).detach()  # [1, K]
    exp_trans = paddle.exp(trans - column_max)  # [K, K], entries in [e^-40, 1]
    for t in range(1, emissions.shape[1]):
        row_max = alpha.max(axis=1, keepdim=True).detach()  # [B, 1]
        total = paddle.matmul(paddle.exp(alpha - row_max), exp_trans)
        new_alpha = paddle.log(total) + row_max + column_max + emissions[:, t]
        alpha = _masked_update(new_alpha, alpha, mask[:, t])
    return alpha


def crf_nll(emissions: paddle.Tensor, labels: paddle.Tensor, lengths: paddle.Tensor,
            transitions: paddle.Tensor) -> paddle.Tensor:
    """Per-sequence ``-log p(labels | emissions)``; emissions ``[B, T, K]``, lengths ``[B]`` (>= 1).

    On CPU in eager mode the whole loss and its gradient run in one C++ operator
    (:mod:`paddlepalm.utils.fused_crf`); elsewhere, or when it cannot be built,
    :func:`crf_nll_reference`."""
    from paddlepalm.utils.fused_crf import fused_nll

    fused = fused_nll(emissions, labels, paddle.clip(lengths, min=1), transitions)
    return fused if fused is not None else crf_nll_reference(emissions, labels, lengths, transitions)


def crf_nll_reference(emissions: paddle.Tensor, labels: paddle.Tensor, lengths: paddle.Tensor,
                      transitions: paddle.Tensor, gemm_spread: float = GEMM_SPREAD) -> paddle.Tensor:
    """:func:`crf_nll` in Paddle operations (the forward algorithm stepped over time): each step a
    matrix product while the transition scores span at most ``gemm_spread``, else the broadcast
    form (``gemm_spread=-1`` forces it)."""
    start, stop, trans = split_transitions(transitions)
    batch, steps, num_tags = emissions.shape
    mask = (paddle.arange(steps).unsqueeze(0) < lengths.unsqueeze(1)).astype(emissions.dtype)  # [B, T]
    one_hot = paddle.nn.functional.one_hot(labels, num_tags).astype(emissions.dtype)  # [B, T, K]

    # Score of the gold path.
    emit_score = (emissions * one_hot).sum(-1)  # [B, T]
    pair = paddle.einsum("btk,kj,btj->bt", one_hot[:, :-1], trans, one_hot[:, 1:]) if steps > 1 else None
    gold = (emit_score * mask).sum(1) + (one_hot[:, 0] * start).sum(-1)
    if pair is not None:
        gold = gold + (pair * mask[:, 1:]).sum(1)
    last = paddle.clip(lengths - 1, min=0)
    last_one_hot = paddle.nn.functional.one_hot(last, steps).astype(emissions.dtype)  # [B, T]
    last_tags = (one_hot * last_one_hot.unsqueeze(-1)).sum(1)  # [B, K]
    gold = gold + (last_tags * stop).sum(-1)

    # Log partition function by the forward algorithm.
    alpha = start.unsqueeze(0) + emissions[:, 0]  # [B, K]
    if float(trans.max() - trans.min()) <= gemm_spread:
        alpha = _forward_by_gemm(alpha, emissions, mask, trans)
    else:
        for t in range(1, steps):
            scores = alpha.unsqueeze(2) + trans.unsqueeze(0) + emissions[:, t].unsqueeze(1)  # [B, K, K]
            alpha = _masked_update(paddle.logsumexp(scores, axis=1), alpha, mask[:, t])
    log_z = paddle.logsumexp(alpha + stop.unsqueeze(0), axis=1)
    return log_z - gold


def crf_decode(emissions: paddle.Tensor, lengths: paddle.Tensor, transitions: paddle.Tensor,
               num_tags: Optional[int] = None) -> paddle.Tensor:
    """Best tag path per sequence ``[B, T]`` (positions past ``lengths`` are 0).

    ``num_tags`` below the layer's width decodes over the first ``num_tags`` tags
    only (a head sized larger than its label map never yields an id outside it).
    """
    start, stop, trans = split_transitions(transitions)
    width = emissions.shape[-1]
    if num_tags is not None and num_tags < width:
        emissions, start, stop, trans = (emissions[:, :, :num_tags], start[:num_tags], stop[:num_tags],
                                         trans[:num_tags, :num_tags])
    batch, steps, num_tags = emissions.shape
    # viterbi_decode's own start/stop: with include_bos_eos_tag it adds row -1 (start
    # tag) at the first step and row -2 (stop tag) at the last (measured against brute
    # force: the stop score is read from the row, not the column). Both extra tags get
    # impossible emissions.
    full = paddle.full([num_tags + 2, num_tags + 2], _NEG, dtype=emissions.dtype)
    full[:num_tags, :num_tags] = trans
    full[num_tags + 1, :num_tags] = start
    full[num_tags, :num_tags] = stop
    impossible = paddle.full_like(emissions[:, :, :1], _NEG)  # full_like: also for dynamic shapes (export)
    padded = paddle.concat([emissions, impossible, impossible], axis=-1)
    _, paths = paddle.text.viterbi_decode(padded, full, lengths.astype("int64"), include_bos_eos_tag=True)
    return paths


def viterbi_decode_numpy(emissions, lengths, transitions, num_tags: Optional[int] = None):
    """:func:`crf_decode` in numpy, for models whose graph cannot hold the decoder (ONNX):
    emissions ``[B, T, K]``, lengths ``[B]``, transitions in the layout above. Returns int64
    ``[B, T]`` paths, 0 past each length."""
    import numpy as np

    emissions = np.asarray(emissions, dtype="float32")
    transitions = np.asarray(transitions, dtype="float32")
    start, stop, trans = transitions[0], transitions[1], transitions[2:]
    if num_tags is not None and num_tags < emissions.shape[-1]:
        emissions, start, stop, trans = (emissions[:, :, :num_tags], start[:num_tags], stop[:num_tags],
                                         trans[:num_tags, :num_tags])
    batch, steps, _ = emissions.shape
    paths = np.zeros((batch, steps), dtype="int64")
    for row in range(batch):
        length = int(max(1, min(int(lengths[row]), steps)))
        score = start + emissions[row, 0]
        back = []
        for t in range(1, length):
            candidates = score[:, None] + trans  # [from, to]
            back.append(candidates.argmax(axis=0))
            score = candidates.max(axis=0) + emissions[row, t]
        tag = int((score + stop).argmax())
        paths[row, length - 1] = tag
        for t in range(length - 1, 0, -1):
            tag = int(back[t - 1][tag])
            paths[row, t - 1] = tag
    return paths
