"""Task metrics computed from predictions and gold labels.

``chunk_f1`` follows conlleval: an entity is a maximal chunk of ``B-X I-X ...``
tags; an ``I-X`` that does not continue an ``X`` chunk starts a new one; BIOES
(``S-``/``E-``) and IOB1 tags are understood; ``O`` is never counted.
"""
from typing import Dict, List, Sequence, Set, Tuple

import numpy as np

Chunk = Tuple[str, int, int]  # (type, start, end exclusive)


def accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    return float((predictions == labels).mean()) if len(labels) else 0.0


def macro_f1(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """Mean of per-class F1 over the classes present in labels or predictions."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    scores = []
    for cls in np.union1d(predictions, labels):
        tp = np.sum((predictions == cls) & (labels == cls))
        fp = np.sum((predictions == cls) & (labels != cls))
        fn = np.sum((predictions != cls) & (labels == cls))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores)) if scores else 0.0


def _split_tag(tag: str) -> Tuple[str, str]:
    if tag == "O" or not tag:
        return "O", ""
    if "-" in tag:
        prefix, kind = tag.split("-", 1)
        if prefix in ("B", "I", "E", "S", "M"):
            return prefix, kind
    return "I", tag  # a bare type (IO scheme)


def chunks(tags: Sequence[str]) -> Set[Chunk]:
    """Entity chunks of one tag sequence."""
    found: Set[Chunk] = set()
    kind, start = None, 0
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, tag_kind = _split_tag(tag)
        ends = kind is not None and (prefix in ("O", "B", "S") or tag_kind != kind)
        if ends:
            found.add((kind, start, i))
            kind = None
        if prefix in ("B", "S") or (prefix in ("I", "M", "E") and kind is None):
            kind, start = tag_kind, i
        if prefix in ("S", "E") and kind is not None:
            found.add((kind, start, i + 1))
            kind = None
    return found


def chunk_f1(predicted: Sequence[Sequence[str]], gold: Sequence[Sequence[str]]) -> Dict[str, float]:
    """Entity-level precision, recall and F1 over sentences of tags."""
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predicted sentences for {len(gold)} gold sentences")
    correct = n_pred = n_gold = 0
    for pred_tags, gold_tags in zip(predicted, gold):
        if len(pred_tags) != len(gold_tags):
            raise ValueError(f"sentence with {len(gold_tags)} gold tags got {len(pred_tags)} predicted tags")
        p, g = chunks(pred_tags), chunks(gold_tags)
        correct += len(p & g)
        n_pred += len(p)
        n_gold += len(g)
    precision = correct / n_pred if n_pred else 0.0
    recall = correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "num_gold": n_gold, "num_predicted": n_pred}


def token_accuracy(predicted: Sequence[Sequence[str]], gold: Sequence[Sequence[str]]) -> float:
    flat_p: List[str] = [t for s in predicted for t in s]
    flat_g: List[str] = [t for s in gold for t in s]
    return accuracy(np.array(flat_p), np.array(flat_g))
