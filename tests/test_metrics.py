import pytest

from paddlepalm import metrics


def test_chunks_conlleval_rules():
    assert metrics.chunks(["B-PER", "I-PER", "O", "B-LOC"]) == {("PER", 0, 2), ("LOC", 3, 4)}
    # I- without a B- starts a chunk; a type change inside I- splits it.
    assert metrics.chunks(["I-PER", "I-PER", "I-LOC"]) == {("PER", 0, 2), ("LOC", 2, 3)}
    assert metrics.chunks(["B-PER", "B-PER"]) == {("PER", 0, 1), ("PER", 1, 2)}
    # BIOES.
    assert metrics.chunks(["S-ORG", "B-PER", "E-PER", "O"]) == {("ORG", 0, 1), ("PER", 1, 3)}
    assert metrics.chunks(["O", "O"]) == set()


def test_chunk_f1_counts_entities_not_tokens():
    gold = [["B-city", "I-city", "O", "B-day"], ["O", "B-city"]]
    pred = [["B-city", "O", "O", "B-day"], ["O", "B-city"]]
    scores = metrics.chunk_f1(pred, gold)
    # "new york" cut short is a wrong entity even though 3 of 4 tokens match.
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)
    assert metrics.token_accuracy(pred, gold) == pytest.approx(5 / 6)


def test_accuracy_and_macro_f1():
    assert metrics.accuracy([1, 2, 3], [1, 2, 0]) == pytest.approx(2 / 3)
    # class 0: tp=1 fp=0 fn=1 -> 2/3; class 1: tp=1 fp=1 fn=0 -> 2/3
    assert metrics.macro_f1([0, 1, 1], [0, 0, 1]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        metrics.accuracy([1], [1, 2])
