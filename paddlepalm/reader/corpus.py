"""Streamed readers over raw text corpora for pretraining.

Corpus format: UTF-8 text, one sentence per line, a blank line between documents;
``input_file`` is a file, a directory (every file under it, in sorted order) or a
list of files. Text is read line by line and batches come out of a bounded
shuffle buffer, so memory does not grow with the corpus. ``load_data`` makes one
streaming pass to count examples and check the input (an exact
``num_examples``/``steps_per_epoch`` for the trainers).

Bad input, and what happens to it (every case is counted in :attr:`stats` and
logged by ``load_data``):

* an empty corpus file (no non-blank line): ``DataFormatError`` naming the file;
  bytes that are not UTF-8, or a NUL byte: ``DataFormatError`` naming file and line;
  a UTF-8 byte-order mark at the start of a file is dropped;
* a line longer than a sequence: cut into pieces that fit (``long_lines_split``);
* characters outside the vocabulary: become ``[UNK]`` (``unk_tokens``) and are
  never chosen as masked-LM targets;
* ``SentenceOrderReader`` on a file with several lines but no blank line: a
  ``DataFormatError`` (sentence order is only defined inside a document);
  documents of a single sentence cannot form a pair and are skipped
  (``single_sentence_documents``).
"""
import glob
import os
import sys
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from paddlepalm.reader.base_reader import Batch, Feature, Reader, check_load_args
from paddlepalm.reader.errors import DataFormatError
from paddlepalm.reader.mask_lm import MASK_ATTRS, MaskingMixin, WordSegmenter
from paddlepalm.reader.tokenization import Lang, TokenizerKind
from paddlepalm.reader.tsv import check_no_nul
from paddlepalm.utils.fileio import strip_bom

Sentence = Tuple[List[str], List[int]]  # tokens, tokens per word


def corpus_files(input_file: Union[str, Sequence[str]]) -> List[str]:
    """The files of a corpus given as a file, a directory, a glob pattern or a list."""
    if not isinstance(input_file, str):
        files = [f for item in input_file for f in corpus_files(item)]
    elif os.path.isdir(input_file):
        files = sorted(os.path.join(root, name) for root, _, names in os.walk(input_file) for name in names
                       if not name.startswith("."))
    elif os.path.isfile(input_file):
        files = [input_file]
    else:
        files = sorted(glob.glob(input_file))
    if not files:
        raise FileNotFoundError(f"no corpus file found at {input_file!r}")
    return files


def read_lines(path: str) -> Iterator[Tuple[int, str]]:
    """``(line number, stripped line)`` of a UTF-8 file, streamed; a byte-order mark at the
    start is dropped; bytes that are not UTF-8 and NUL bytes are errors naming file and line."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataFormatError(path, number, f"bytes are not valid UTF-8 (at byte {err.start})") from None
            if number == 1:
                text = strip_bom(text)
            check_no_nul(path, number, text)
            yield number, text.strip()


class CorpusReader(MaskingMixin, Reader):
    """Base of the streamed pretraining readers; subclasses turn documents into features."""

    needs_documents = False
    FILE_FORMATS = ("text", "txt")

    def __init__(self, vocab_path: str, max_len: int, tokenizer: TokenizerKind = "wordpiece", lang: Lang = "cn",
                 seed: Optional[int] = None, do_lower_case: bool = False, phase: str = "train",
                 mask_prob: float = 0.15, max_ngram: int = 1, whole_word_mask: bool = False,
                 word_segmenter: Optional[WordSegmenter] = None, shuffle_buffer: int = 2048):
        super().__init__(vocab_path, max_len, tokenizer, lang, seed, do_lower_case, phase)
        if word_segmenter is None:
            word_segmenter = "jieba" if lang in ("cn", "zh") and whole_word_mask else "wordpiece"
        self._init_masking(mask_prob, max_ngram, whole_word_mask, word_segmenter)
        self.shuffle_buffer = int(shuffle_buffer)
        self._files: List[str] = []
        self._num_examples = 0
        self.stats: Dict[str, int] = {}
        self._counting = False
        self._unk = self.tokenizer.unk_token

    # ------------------------------------------------------------- contract
    def load_data(self, input_file, batch_size: int, num_epochs: Optional[float] = None,
                  file_format: str = "text", shuffle_train: bool = True) -> None:
        self._check_format(file_format)
        check_load_args(batch_size, num_epochs)
        self._files = corpus_files(input_file)
        self._input_file = input_file
        self.batch_size = int(batch_size)
        self._num_epochs = num_epochs
        self.shuffle = shuffle_train and self.phase == "train"
        self.stats, self._counting = {}, True
        try:
            self._num_examples = sum(1 for _ in self.epoch_features(0))
        finally:
            self._counting = False
        if self._num_examples == 0:
            raise DataFormatError(str(input_file), None, f"the corpus yields no example ({self.stats})")
        print(f"{type(self).__name__}: {len(self._files)} file(s), {self._num_examples} examples; {self.stats}",
              file=sys.stderr, flush=True)
        self._check_fills_a_batch()

    @property
    def num_examples(self) -> int:
        return self._num_examples

    def _label_attrs(self) -> Dict[str, Any]:
        return dict(MASK_ATTRS)

    def clone(self, phase: str = "predict") -> "CorpusReader":
        other = super().clone(phase)
        other._files, other._num_examples, other.stats = [], 0, {}
        return other

    # ------------------------------------------------------------ streaming
    def _count(self, key: str, n: int = 1) -> None:
        """Statistics of the corpus, gathered during the counting pass of ``load_data``."""
        if self._counting:
            self.stats[key] = self.stats.get(key, 0) + n

    def _documents(self) -> Iterator[Iterator[Sentence]]:
        """Each document as a stream of tokenized sentences (pieces of at most ``max_len - 3`` tokens)."""
        for path in self._files:
            state = {"lines": 0, "documents": 0, "exhausted": False}
            lines = read_lines(path)
            while not state["exhausted"]:
                document = self._document_sentences(lines, state)
                first = next(document, None)
                if first is None:
                    continue
                state["documents"] += 1
                yield _chain(first, document)
                for _ in document:  # whatever the consumer left of this document
                    pass
            self._count("files")
            self._count("documents", state["documents"])
            if state["lines"] == 0:
                raise DataFormatError(path, None, "corpus file is empty (no non-blank line)")
            if self.needs_documents and state["lines"] > 1 and state["documents"] < 2:
                raise DataFormatError(path, None, "no document boundaries: sentence order prediction needs "
                                                  "documents separated by blank lines")

    def _document_sentences(self, lines, state: Dict) -> Iterator[Sentence]:
        budget = self.max_len - 3
        for _, line in lines:
            if not line:
                return
            state["lines"] += 1
            tokens, words = self._segment(line)
            if not tokens:
                continue
            self._count("sentences")
            self._count("tokens", len(tokens))
            self._count("unk_tokens", tokens.count(self._unk))
            if len(tokens) > budget:
                self._count("long_lines_split")
            for start, window_words in zip(range(0, len(tokens), budget), _split_words(words, budget)):
                yield tokens[start:start + budget], window_words
        state["exhausted"] = True

    def epoch_features(self, epoch: int) -> Iterator[Feature]:
        rng = np.random.RandomState((self.seed * 7919 + epoch) % (2 ** 32))
        number = 0
        for document in self._documents():
            for feature in self._document_features(document, rng):
                feature["example_id"] = number
                number += 1
                yield feature

    def _document_features(self, document: Iterator[Sentence], rng: np.random.RandomState) -> Iterator[Feature]:
        raise NotImplementedError

    def _feature(self, segments: List[List[Sentence]], one_segment_id: bool = False) -> Feature:
        """[CLS] seg_a [SEP] (seg_b [SEP]) with word lengths kept for whole-word masking; with
        ``one_segment_id`` every token is in segment 0 (packed documents)."""
        tokens, segment_ids, offsets, word_lengths = ["[CLS]"], [0], [], []
        for index, sentences in enumerate(segments):
            offsets.append(len(tokens))
            words = []
            for sentence_tokens, sentence_words in sentences:
                tokens.extend(sentence_tokens)
                words.extend(sentence_words)
            tokens.append("[SEP]")
            segment_ids.extend([0 if one_segment_id else index] * (len(tokens) - len(segment_ids)))
            word_lengths.append(words)
        return {"token_ids": self.tokenizer.convert_tokens_to_ids(tokens), "segment_ids": segment_ids,
                "word_lengths": word_lengths, "word_offsets": offsets}

    def _batches(self, epoch: int) -> Iterator[List[Feature]]:
        """Global batches from a bounded shuffle buffer; this rank's share of each."""
        rng = np.random.RandomState((self.seed * 100003 + epoch) % (2 ** 32))
        global_batch = self.batch_size * self._world_size
        buffer: List[Feature] = []
        batch: List[Feature] = []
        capacity = max(1, self.shuffle_buffer) if self.shuffle else 1

        def emit(feature):
            batch.append(feature)
            if len(batch) == global_batch:
                yield list(batch)
                batch.clear()

        for feature in self.epoch_features(epoch):
            buffer.append(feature)
            if len(buffer) >= capacity:
                index = rng.randint(len(buffer))
                buffer[index], buffer[-1] = buffer[-1], buffer[index]
                yield from emit(buffer.pop())
        order = rng.permutation(len(buffer)) if self.shuffle else range(len(buffer))
        for index in order:
            yield from emit(buffer[index])
        if batch and self.phase != "train":
            yield list(batch)

    def iter_epoch(self, epoch: int = 0, skip_batches: int = 0) -> Iterator[Batch]:
        if not self._files:
            raise RuntimeError(f"{type(self).__name__}: call load_data() before reading batches")

        def local():
            for number, features in enumerate(self._batches(epoch)):
                if number < skip_batches:
                    continue
                if self._world_size > 1:
                    features = list(np.array_split(np.array(features, dtype=object), self._world_size)[self._rank])
                yield features

        return self._masked_batches(local(), epoch, skip_batches)

    def collate(self, features: Sequence[Feature]) -> Batch:
        return self._mask_batch(super().collate(features), features)


class MaskedCorpusReader(CorpusReader):
    """Masked-LM (and ELECTRA) pretraining: consecutive sentences of a document packed into
    sequences of up to ``max_len`` tokens (``[CLS] ... [SEP]``), never across documents.

    ``pack_documents=True`` fills every sequence instead (RoBERTa's "full sentences"): the next
    document continues the sequence after a ``[SEP]``, all in segment 0, so a corpus of short
    documents (reviews, titles) does not spend most of each batch on padding."""

    def __init__(self, vocab_path: str, max_len: int, tokenizer: TokenizerKind = "wordpiece", lang: Lang = "cn",
                 seed: Optional[int] = None, do_lower_case: bool = False, phase: str = "train",
                 mask_prob: float = 0.15, max_ngram: int = 1, whole_word_mask: bool = False,
                 word_segmenter: Optional[WordSegmenter] = None, shuffle_buffer: int = 2048,
                 pack_documents: bool = False):
        super().__init__(vocab_path, max_len, tokenizer, lang, seed, do_lower_case, phase, mask_prob, max_ngram,
                         whole_word_mask, word_segmenter, shuffle_buffer)
        self.pack_documents = bool(pack_documents)

    def epoch_features(self, epoch: int) -> Iterator[Feature]:
        if not self.pack_documents:
            yield from super().epoch_features(epoch)
            return
        for number, segments in enumerate(self._packed_documents()):
            feature = self._feature(segments, one_segment_id=True)
            feature["example_id"] = number
            yield feature

    def _packed_documents(self) -> Iterator[List[List[Sentence]]]:
        """Lists of segments (one per document, each followed by ``[SEP]``) of at most ``max_len``
        tokens with ``[CLS]``; a document that does not fit goes on in the next sequence."""
        segments: List[List[Sentence]] = []
        size = 1  # [CLS]
        for document in self._documents():
            new_segment = True
            for sentence in document:
                cost = len(sentence[0]) + (1 if new_segment else 0)
                if segments and size + cost > self.max_len:
                    yield segments
                    segments, size, new_segment = [], 1, True
                    cost = len(sentence[0]) + 1
                if new_segment:
                    segments.append([])
                    new_segment = False
                segments[-1].append(sentence)
                size += cost
        if segments:
            yield segments

    def _document_features(self, document, rng):
        budget = self.max_len - 2
        chunk: List[Sentence] = []
        size = 0
        for sentence in document:
            if chunk and size + len(sentence[0]) > budget:
                yield self._feature([chunk])
                chunk, size = [], 0
            chunk.append(sentence)
            size += len(sentence[0])
        if chunk:
            yield self._feature([chunk])


class SentenceOrderReader(CorpusReader):
    """ALBERT pretraining: two consecutive segments of a document, swapped with probability 0.5
    (``label_ids`` 1 = swapped), plus masked-LM targets (n-gram and whole-word masking).

    Sentences are gathered up to ``max_len - 3`` tokens and cut into segment A (the
    first k sentences, k drawn uniformly) and segment B (the rest); a chunk of one
    sentence is cut at a word boundary near its middle.
    """

    needs_documents = True

    def _label_attrs(self) -> Dict[str, Any]:
        return {**MASK_ATTRS, "label_ids": ([-1], "int64")}

    def _collate_labels(self, features, width):
        return {"label_ids": np.array([f["sop_label"] for f in features], dtype="int64")}

    def _document_features(self, document, rng):
        budget = self.max_len - 3
        chunks: List[List[Sentence]] = []
        chunk: List[Sentence] = []
        size = 0
        for sentence in document:
            if chunk and size + len(sentence[0]) > budget:
                chunks.append(chunk)
                chunk, size = [], 0
            chunk.append(sentence)
            size += len(sentence[0])
        if chunk:
            chunks.append(chunk)
        if len(chunks) == 1 and len(chunks[0]) == 1:
            self._count("single_sentence_documents")
            return
        for chunk in chunks:
            pair = _split_chunk(chunk, rng)
            if pair is None:
                self._count("unsplittable_chunks")
                continue
            first, second = pair
            swapped = rng.random_sample() < 0.5
            feature = self._feature([second, first] if swapped else [first, second])
            feature["sop_label"] = int(swapped)
            yield feature


def _split_chunk(chunk: List[Sentence], rng) -> Optional[Tuple[List[Sentence], List[Sentence]]]:
    if len(chunk) >= 2:
        cut = rng.randint(1, len(chunk))
        return chunk[:cut], chunk[cut:]
    tokens, words = chunk[0]
    if len(words) < 2:
        return None
    middle, position = len(tokens) // 2, 0
    for index, length in enumerate(words):
        if position + length > middle and index > 0:
            break
        position += length
    else:
        return None
    return [(tokens[:position], words[:index])], [(tokens[position:], words[index:])]


def _split_words(word_lengths: List[int], size: int) -> List[List[int]]:
    """Word lengths of each consecutive window of ``size`` tokens (a word cut at a window
    edge counts in both windows), in one pass: a long line costs time linear in its length."""
    windows: List[List[int]] = []
    current: List[int] = []
    room = size
    for length in word_lengths:
        while length:
            take = min(length, room)
            current.append(take)
            length -= take
            room -= take
            if room == 0:
                windows.append(current)
                current, room = [], size
    if current:
        windows.append(current)
    return windows


def _chain(first, rest):
    yield first
    yield from rest
