"""Extractive MRC metrics: the CMRC 2018 official metric (Chinese) and SQuAD v1.1's (English).

CMRC 2018 (``cmrc2018_evaluate.py`` v5, the SQuAD-style version) scores one
question as the best over its gold answers of

* EM: the prediction equals the answer after lower-casing, stripping and
  removing the characters of ``CMRC_PUNCTUATION``;
* F1: over "mixed segments" with those characters removed: every CJK
  character (U+4E00..U+9FA5) is one segment, and each run of other characters
  between them is split into words. F1 uses the length of the longest common
  *contiguous* run of segments (the official ``find_lcs``), not a bag of words.

The official script splits non-CJK runs with ``nltk.word_tokenize``, which needs
NLTK's punkt data (not installable offline). :func:`_split_words` follows
NLTK's Treebank rules for what occurs in answers (words, numbers with ``.``/``,``
inside, other punctuation as separate tokens); answers made of CJK characters,
Latin words and numbers score the same as with the official script.

Quirks of the official script kept on purpose: ``'……'`` is in its punctuation
list but is compared with single characters, so neither ``…`` nor ``……`` is ever
removed; ASCII quotes, ``.``, ``,``, ``!``, ``?`` and ``(``/``)`` are *not*
removed; a question without a prediction counts as 0 (and as skipped).

Scores are percentages (0..100) as in both official scripts.
"""
import collections
import re
import string
from typing import Dict, Iterable, List, Mapping, Sequence

CMRC_PUNCTUATION = frozenset(['-', ':', '_', '*', '^', '/', '\\', '~', '`', '+', '=',
                              '，', '。', '：', '？', '！', '“', '”', '；', '’', '《', '》', '……', '·', '、',
                              '「', '」', '（', '）', '－', '～', '『', '』'])
_CJK = re.compile(r"[\u4e00-\u9fa5]")
_WORD = re.compile(r"\d+(?:[.,]\d+)+|\w+(?:'\w+)?|[^\w\s]")


def _split_words(text: str) -> List[str]:
    return _WORD.findall(text)


def mixed_segmentation(text: str, remove_punctuation: bool = False) -> List[str]:
    """CJK characters one by one, other runs split into words (the official segmentation)."""
    segments: List[str] = []
    run = ""
    for char in text.lower().strip():
        if remove_punctuation and char in CMRC_PUNCTUATION:
            continue
        if _CJK.match(char) or char in CMRC_PUNCTUATION:
            if run:
                segments.extend(_split_words(run))
                run = ""
            segments.append(char)
        else:
            run += char
    if run:
        segments.extend(_split_words(run))
    return segments


def strip_cmrc_punctuation(text: str) -> str:
    return "".join(c for c in text.lower().strip() if c not in CMRC_PUNCTUATION)


def longest_common_run(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common contiguous subsequence (the official ``find_lcs``)."""
    best = 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                current[j + 1] = previous[j] + 1
                best = max(best, current[j + 1])
        previous = current
    return best


def cmrc_f1(answers: Iterable[str], prediction: str) -> float:
    """Best F1 (0..1) of ``prediction`` over the gold ``answers``."""
    scores = [0.0]
    predicted = mixed_segmentation(prediction, remove_punctuation=True)
    for answer in answers:
        gold = mixed_segmentation(answer, remove_punctuation=True)
        common = longest_common_run(gold, predicted)
        if common:
            precision, recall = common / len(predicted), common / len(gold)
            scores.append(2 * precision * recall / (precision + recall))
    return max(scores)


def cmrc_em(answers: Iterable[str], prediction: str) -> float:
    predicted = strip_cmrc_punctuation(prediction)
    return float(any(strip_cmrc_punctuation(a) == predicted for a in answers))


def normalize_squad_answer(text: str) -> str:
    """SQuAD v1.1: lower case, drop ASCII punctuation and articles, squeeze whitespace."""
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def squad_f1(answers: Iterable[str], prediction: str) -> float:
    predicted = normalize_squad_answer(prediction).split()
    scores = [0.0]
    for answer in answers:
        gold = normalize_squad_answer(answer).split()
        common = sum((collections.Counter(predicted) & collections.Counter(gold)).values())
        if common:
            precision, recall = common / len(predicted), common / len(gold)
            scores.append(2 * precision * recall / (precision + recall))
    return max(scores)


def squad_em(answers: Iterable[str], prediction: str) -> float:
    predicted = normalize_squad_answer(prediction)
    return float(any(normalize_squad_answer(a) == predicted for a in answers))


_SCORERS = {"cn": (cmrc_em, cmrc_f1), "zh": (cmrc_em, cmrc_f1), "en": (squad_em, squad_f1)}


def mrc_scores(gold: Mapping[str, Sequence[str]], predictions: Mapping[str, str], lang: str = "cn") -> Dict[str, float]:
    """EM, F1 and their average (percent) over every question of ``gold`` (question id -> answers).

    ``lang='cn'`` uses the CMRC 2018 metric, ``'en'`` SQuAD v1.1's. Questions missing
    from ``predictions`` score 0 and are counted in ``skipped``.
    """
    if lang not in _SCORERS:
        raise ValueError(f"lang must be 'cn' or 'en', got {lang!r}")
    em_fn, f1_fn = _SCORERS[lang]
    em = f1 = 0.0
    skipped = 0
    for qid, answers in gold.items():
        if qid not in predictions:
            skipped += 1
            continue
        em += em_fn(answers, predictions[qid])
        f1 += f1_fn(answers, predictions[qid])
    total = max(len(gold), 1)
    em, f1 = 100.0 * em / total, 100.0 * f1 / total
    return {"em": em, "f1": f1, "average": (em + f1) / 2, "total": len(gold), "skipped": skipped}


def gold_answers(squad_json: Mapping) -> Dict[str, List[str]]:
    """Question id -> gold answer texts of a SQuAD-format data set."""
    return {qa["id"]: [a["text"] for a in qa.get("answers", [])]
            for article in squad_json["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]}

