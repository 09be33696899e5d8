"""Raw-text corpus reader for language-model pretraining (ELMo's biLM), streamed.

Input: plain UTF-8 text files, one sentence per line (blank lines are document
boundaries, which a biLM does not need: they are skipped and counted). Lines are
split by a word-level tokenizer (``'whitespace'``, ``'jieba'`` or ``'char'``)
over an ELMo vocabulary (``<S>``, ``</S>``, ``<UNK>``; build one with
:func:`build_vocab_from_corpus`) and become ``<S> w1 .. wn </S>``.

Memory does not grow with the corpus: ``load_data`` makes one counting pass and
keeps only counts; every epoch re-reads the files and batches from a window of
``batch_size * 50`` sentences (shuffled and grouped by length within the window).

Bad input, all reported rather than silently dropped:

* an empty corpus (no non-blank line), bytes that are not UTF-8 or a NUL byte raise
  :class:`DataFormatError` naming the file (and line); a leading UTF-8 byte-order
  mark is dropped;
* a line longer than ``max_len - 2`` words is cut into consecutive pieces of at
  most that many words (every word is kept; counted in ``num_split_lines``);
* words outside the vocabulary become ``<UNK>`` (counted in ``num_oov_tokens``
  out of ``num_tokens``); with character input their characters are kept.
"""
import itertools
import os
from typing import Dict, Iterator, List, Optional, Sequence, Union

import numpy as np

from paddlepalm.reader.base_reader import Batch, Feature, Reader, check_load_args, _BUCKET_BATCHES
from paddlepalm.reader.corpus import read_lines
from paddlepalm.reader.errors import DataFormatError
from paddlepalm.reader.tokenization import Lang
from paddlepalm.reader.word_tokenizer import SPLITS, WordSplit, build_word_vocab, split_text

Paths = Union[str, Sequence[str]]


def _as_paths(paths: Paths) -> List[str]:
    paths = [paths] if isinstance(paths, str) else list(paths)
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"corpus file not found: {path}")
    return paths


def iter_corpus_lines(paths: Paths) -> Iterator[tuple]:
    """``(path, line_number, text)`` for every non-blank line, read lazily."""
    for path in _as_paths(paths):
        for number, text in read_lines(path):
            if text:
                yield path, number, text


def build_vocab_from_corpus(paths: Paths, split: str = "whitespace", min_freq: int = 1,
                            max_size: Optional[int] = None, lowercase: bool = False) -> List[str]:
    """``<S>``, ``</S>``, ``<UNK>``, then the corpus words by falling frequency (one streamed pass)."""
    lines = iter_corpus_lines(paths)
    first = next(lines, None)
    if first is None:
        raise DataFormatError(", ".join(_as_paths(paths)), None, "corpus is empty (no non-blank line)")
    sentences = (split_text(text, split, lowercase) for _, _, text in itertools.chain([first], lines))
    return build_word_vocab(sentences, min_freq, max_size)


class LMCorpusReader(Reader):
    """Streams ``<S> w1 .. wn </S>`` sentences for the :class:`~paddlepalm.head.BiLM` head.

    ``tokenizer`` is ``'whitespace'`` (pre-segmented text), ``'jieba'`` (raw Chinese)
    or ``'char'`` (one token per character). ``fold_width``: full-width letters and digits are
    read as their half-width forms (``１`` -> ``1``), as ``SequenceLabelReader(fold_width=True)``
    reads the tagging data that the biLM's features go to.
    """

    FILE_FORMATS = ("txt", "text", "tsv")

    def __init__(self, vocab_path: str, max_len: int, tokenizer: WordSplit = "whitespace", lang: Lang = "cn",
                 seed: Optional[int] = None, do_lower_case: bool = False, phase: str = "train",
                 fold_width: bool = False):
        if tokenizer not in SPLITS:
            raise ValueError(f"LMCorpusReader tokenizer must be one of {SPLITS}, got {tokenizer!r}")
        super().__init__(vocab_path, max_len, tokenizer, lang, seed, do_lower_case, phase, fold_width)
        self._paths: List[str] = []
        self._num_examples = 0
        self.num_lines = self.num_split_lines = self.num_tokens = self.num_oov_tokens = 0

    # ------------------------------------------------------------------ loading
    def load_data(self, input_file: Paths, batch_size: int, num_epochs: Optional[int] = None,
                  file_format: str = "txt", shuffle_train: bool = True) -> None:
        check_load_args(batch_size, num_epochs)
        self._check_format(file_format)
        self._paths = _as_paths(input_file)
        self._input_file = ", ".join(self._paths)
        self.num_lines = self.num_split_lines = self.num_tokens = self.num_oov_tokens = 0
        count = 0
        for _ in self._examples(count_stats=True):
            count += 1
        if count == 0:
            raise DataFormatError(self._input_file, None, "corpus is empty (no non-blank line)")
        self._num_examples = count
        self.batch_size = int(batch_size)
        self._num_epochs = num_epochs
        self.shuffle = shuffle_train and self.phase == "train"
        self._check_fills_a_batch()

    def stats(self) -> Dict[str, int]:
        return {"lines": self.num_lines, "sentences": self._num_examples, "split_lines": self.num_split_lines,
                "tokens": self.num_tokens, "oov_tokens": self.num_oov_tokens}

    def _examples(self, count_stats: bool = False) -> Iterator[Feature]:
        piece = self.max_len - 2
        unk = self.tokenizer.unk_id
        for _, _, text in iter_corpus_lines(self._paths):
            words = self.tokenizer.tokenize(text)
            if not words:
                continue
            ids = self.tokenizer.convert_tokens_to_ids(words)
            if count_stats:
                self.num_lines += 1
                self.num_tokens += len(ids)
                self.num_oov_tokens += sum(1 for i in ids if i == unk)
                self.num_split_lines += len(words) > piece
            for start in range(0, len(words), piece):
                yield {"words": words[start:start + piece], "ids": ids[start:start + piece]}

    @property
    def num_examples(self) -> int:
        return self._num_examples

    # ----------------------------------------------------------------- batching
    def _feature(self, example: Dict[str, list], example_id: int) -> Feature:
        bos, eos = self.tokenizer.vocab[self.tokenizer.cls_token], self.tokenizer.vocab[self.tokenizer.sep_token]
        token_ids = [bos] + example["ids"] + [eos]
        return {"token_ids": token_ids, "segment_ids": [0] * len(token_ids), "example_id": example_id,
                "tokens": [self.tokenizer.cls_token] + example["words"] + [self.tokenizer.sep_token]}

    def _windows(self) -> Iterator[List[Feature]]:
        window = self.batch_size * self._world_size * _BUCKET_BATCHES
        buffer: List[Feature] = []
        for example_id, example in enumerate(self._examples()):
            buffer.append(self._feature(example, example_id))
            if len(buffer) == window:
                yield buffer
                buffer = []
        if buffer:
            yield buffer

    def iter_epoch(self, epoch: int = 0, skip_batches: int = 0) -> Iterator[Batch]:
        if not self._paths:
            raise RuntimeError("LMCorpusReader: call load_data() before reading batches")
        rng = np.random.RandomState((self.seed * 100003 + epoch) % (2 ** 32))
        global_batch = self.batch_size * self._world_size
        served = 0
        for window in self._windows():
            order = rng.permutation(len(window)) if self.shuffle else np.arange(len(window))
            lengths = np.array([len(window[i]["token_ids"]) for i in order])
            order = order[np.argsort(lengths, kind="stable")]
            batches = [order[b:b + global_batch] for b in range(0, len(order), global_batch)]
            if self.phase == "train":
                batches = [b for b in batches if len(b) == global_batch]
                if self.shuffle:
                    rng.shuffle(batches)
            for indices in batches:
                served += 1
                if served <= skip_batches:
                    continue
                if self._world_size > 1:
                    indices = np.array_split(indices, self._world_size)[self._rank]
                yield self.collate([window[i] for i in indices])

    def _label_attrs(self) -> Dict[str, tuple]:
        return {"token_ids": ([-1, -1], "int64")}  # the BiLM head's targets, whatever the backbone reads

    def _collate_labels(self, features: Sequence[Feature], width: int) -> Batch:
        ids = np.full((len(features), width), self.pad_id, dtype="int64")
        for row, feature in enumerate(features):
            ids[row, :len(feature["token_ids"])] = feature["token_ids"]
        return {"token_ids": ids}

    def clone(self, phase: str = "predict") -> "LMCorpusReader":
        other = super().clone(phase)
        other._paths, other._num_examples = [], 0
        return other
