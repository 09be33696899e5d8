"""Masked-LM corruption: dynamic token masking, n-gram masking and whole-word masking.

A sequence is described by its token ids and its *units*: lists of positions that
are masked together. A unit is one token (BERT), one word's pieces (whole-word
masking: WordPiece ``##`` continuations, or the characters of a jieba word for
Chinese), and n-gram masking takes ``n`` consecutive units at once with
``p(n) ∝ 1/n`` for ``n <= max_ngram`` (ALBERT). Special tokens are never units.

Of the chosen positions, 80% become ``[MASK]``, 10% a random non-special token and
10% stay as they were; the label of every chosen position is its ORIGINAL token id
(albert_zh labelled Chinese whole-word masks with ``##``-prefixed tokens, which the
model never sees as input; we do not).

Masking is dynamic: readers call these functions when they build a batch, with a
generator seeded per (seed, epoch, batch), so every epoch sees new masks and a
resumed run sees the same masks as an uninterrupted one.
"""
import logging
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np

Units = List[List[int]]


@dataclass
class MaskedSequence:
    token_ids: List[int]   # corrupted input
    positions: List[int]   # chosen positions, ascending
    labels: List[int]      # original ids at ``positions``


@dataclass
class Masker:
    """Corrupts sequences for masked-LM training (see module docstring)."""

    mask_id: int
    vocab_size: int
    special_ids: Set[int]
    mask_prob: float = 0.15
    max_ngram: int = 1
    mask_ratio: float = 0.8
    random_ratio: float = 0.1

    def __post_init__(self):
        if not 0 < self.mask_prob < 1:
            raise ValueError(f"mask_prob must be in (0, 1), got {self.mask_prob}")
        if self.max_ngram < 1:
            raise ValueError(f"max_ngram must be >= 1, got {self.max_ngram}")
        if self.mask_ratio + self.random_ratio > 1:
            raise ValueError("mask_ratio + random_ratio must be <= 1")
        self._replacements = np.array([i for i in range(self.vocab_size) if i not in self.special_ids], dtype="int64")
        sizes = np.arange(1, self.max_ngram + 1)
        self._ngram_probs = (1.0 / sizes) / (1.0 / sizes).sum()

    def token_units(self, token_ids: Sequence[int]) -> Units:
        """One unit per non-special token (plain BERT masking)."""
        return [[i] for i, t in enumerate(token_ids) if t not in self.special_ids]

    def choose(self, units: Units, rng: np.random.RandomState) -> List[int]:
        """Positions to mask: about ``mask_prob`` of the units' tokens (at least one)."""
        num_tokens = sum(len(u) for u in units)
        if num_tokens == 0:
            return []
        budget = max(1, int(round(num_tokens * self.mask_prob)))
        chosen: List[int] = []
        covered = set()
        for start in rng.permutation(len(units)):
            if len(chosen) >= budget:
                break
            n = int(rng.choice(len(self._ngram_probs), p=self._ngram_probs)) + 1
            span = None
            while n >= 1:
                candidate = [p for unit in units[start:start + n] for p in unit]
                if len(chosen) + len(candidate) <= budget:
                    span = candidate
                    break
                n -= 1
            if span is None or covered.intersection(span):
                continue
            covered.update(span)
            chosen.extend(span)
        if not chosen:  # every unit is longer than the budget: take the shortest whole
            chosen = list(min(units, key=len))
        return sorted(chosen)

    def corrupt(self, token_ids: Sequence[int], positions: Iterable[int],
                rng: np.random.RandomState) -> MaskedSequence:
        ids = list(token_ids)
        positions = list(positions)
        labels = [ids[p] for p in positions]
        for p in positions:
            draw = rng.random_sample()
            if draw < self.mask_ratio:
                ids[p] = self.mask_id
            elif draw < self.mask_ratio + self.random_ratio:
                ids[p] = int(self._replacements[rng.randint(len(self._replacements))])
        return MaskedSequence(ids, positions, labels)

    def mask(self, token_ids: Sequence[int], rng: np.random.RandomState,
             units: Optional[Units] = None) -> MaskedSequence:
        """Choose positions among ``units`` (default: every non-special token) and corrupt them."""
        if units is None:
            units = self.token_units(token_ids)
        return self.corrupt(token_ids, self.choose(units, rng), rng)


def word_units(word_lengths: Sequence[int], offset: int) -> Units:
    """Units for words of ``word_lengths`` tokens laid out from position ``offset``."""
    units, position = [], offset
    for length in word_lengths:
        if length:
            units.append(list(range(position, position + length)))
        position += length
    return units


def wordpiece_word_lengths(tokens: Sequence[str]) -> List[int]:
    """Lengths of words made of a piece and its ``##`` continuations."""
    lengths: List[int] = []
    for token in tokens:
        if token.startswith("##") and lengths:
            lengths[-1] += 1
        else:
            lengths.append(1)
    return lengths


def jieba_segment(text: str, tokenize) -> Tuple[List[str], List[int]]:
    """Tokens of ``text`` and the number of tokens of each jieba word, for whole-word masking.

    Tokens are what ``tokenize`` makes of each jieba word (single characters for
    Chinese), so they are the ordinary vocabulary tokens; only the grouping comes
    from jieba.
    """
    import jieba  # imported lazily: loading its dictionary takes about a second

    jieba.setLogLevel(logging.WARNING)

    tokens: List[str] = []
    lengths: List[int] = []
    for word in jieba.lcut(text):
        pieces = tokenize(word)
        if pieces:
            tokens.extend(pieces)
            lengths.append(len(pieces))
    return tokens, lengths


def batch_seed(seed: int, epoch: int, batch: int) -> int:
    """Seed of the masking generator of one batch: fixed by (seed, epoch, batch index)."""
    return (seed * 1000003 + epoch * 10007 + batch) % (2 ** 32)
