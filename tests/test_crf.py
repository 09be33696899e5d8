"""The CRF loss is a normalized NLL and Viterbi finds the best path (checked by brute force)."""
import itertools

import numpy as np
import paddle
import pytest

from paddlepalm.utils.crf import crf_decode, crf_nll


def path_score(emissions, transitions, path):
    start, stop, trans = transitions[0], transitions[1], transitions[2:]
    score = start[path[0]] + stop[path[-1]] + sum(emissions[t, tag] for t, tag in enumerate(path))
    return score + sum(trans[a, b] for a, b in zip(path[:-1], path[1:]))


def random_case(seed, batch=4, steps=5, tags=3):
    rng = np.random.RandomState(seed)
    emissions = rng.randn(batch, steps, tags).astype("float32") * 2
    transitions = rng.randn(tags + 2, tags).astype("float32")
    lengths = np.array([steps, 3, 1, 4][:batch])
    return emissions, transitions, lengths


def test_nll_equals_brute_force_and_is_normalized():
    emissions, transitions, lengths = random_case(0)
    tags = emissions.shape[-1]
    for b, length in enumerate(lengths):
        paths = list(itertools.product(range(tags), repeat=int(length)))
        labels = np.zeros((len(paths), emissions.shape[1]), dtype="int64")
        labels[:, :length] = paths
        nll = crf_nll(paddle.to_tensor(np.repeat(emissions[b:b + 1], len(paths), 0)), paddle.to_tensor(labels),
                      paddle.to_tensor(np.full(len(paths), length)), paddle.to_tensor(transitions)).numpy()
        scores = np.array([path_score(emissions[b, :length], transitions, p) for p in paths])
        log_z = np.log(np.exp(scores - scores.max()).sum()) + scores.max()
        np.testing.assert_allclose(nll, log_z - scores, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np.exp(-nll).sum(), 1.0, rtol=1e-4)


def test_viterbi_equals_brute_force():
    for seed in range(5):
        emissions, transitions, lengths = random_case(seed)
        paths = crf_decode(paddle.to_tensor(emissions), paddle.to_tensor(lengths), paddle.to_tensor(transitions))
        paths = paths.numpy()
        for b, length in enumerate(lengths):
            candidates = list(itertools.product(range(emissions.shape[-1]), repeat=int(length)))
            best = max(candidates, key=lambda p: path_score(emissions[b, :length], transitions, p))
            assert tuple(paths[b, :length]) == best


def test_nll_gradient_flows_to_transitions():
    emissions, transitions, lengths = random_case(1)
    trans = paddle.to_tensor(transitions, stop_gradient=False)
    em = paddle.to_tensor(emissions, stop_gradient=False)
    loss = crf_nll(em, paddle.zeros([4, 5], dtype="int64"), paddle.to_tensor(lengths), trans).mean()
    loss.backward()
    assert float(paddle.abs(trans.grad).sum()) > 0 and float(paddle.abs(em.grad).sum()) > 0


@pytest.mark.parametrize("scale", [0.1, 3.0, 6.0])
def test_gemm_forward_algorithm_equals_broadcast_form(monkeypatch, scale):
    """The matrix-product recursion gives the broadcast-logsumexp loss and gradients."""
    import paddlepalm.utils.crf as crf
    rng = np.random.RandomState(int(scale * 10))
    batch, steps, tags = 6, 11, 9
    em_np = (rng.randn(batch, steps, tags) * scale * 3).astype("float32")
    tr_np = (rng.randn(tags + 2, tags) * scale).astype("float32")
    labels = paddle.to_tensor(rng.randint(0, tags, (batch, steps)))
    lengths = paddle.to_tensor(rng.randint(1, steps + 1, (batch,)))
    assert tr_np[2:].max() - tr_np[2:].min() <= crf.GEMM_SPREAD
    results = []
    for spread in (crf.GEMM_SPREAD, -1.0):  # GEMM form, then forced broadcast form
        em, tr = paddle.to_tensor(em_np), paddle.to_tensor(tr_np)
        em.stop_gradient = tr.stop_gradient = False
        nll = crf.crf_nll_reference(em, labels, lengths, tr, gemm_spread=spread)
        nll.sum().backward()
        results.append((nll.numpy(), em.grad.numpy(), tr.grad.numpy()))
    for gemm, broadcast in zip(*results):
        np.testing.assert_allclose(gemm, broadcast, rtol=2e-5, atol=2e-5)
