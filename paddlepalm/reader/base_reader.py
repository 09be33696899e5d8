"""Base class of readers: a file is parsed and tokenized once into features, then
served as padded batches of named numpy arrays, grouped by length.

Subclasses implement :meth:`_read_examples` (file -> list of feature dicts) and
:meth:`_collate_labels` (feature dicts -> label arrays). A feature dict always has
``token_ids`` and ``segment_ids`` (lists of ints) and ``example_id`` (its index
in the input file, so predictions can be written back in input order).
"""
import copy
import math
import unicodedata
import warnings
from typing import Any, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from paddlepalm.reader.elmo_chars import MAX_WORD_LENGTH, batch_to_char_ids
from paddlepalm.reader import sources
from paddlepalm.reader.errors import DataFormatError
from paddlepalm.utils.fileio import sha256_of
from paddlepalm.reader.sources import Source
from paddlepalm.reader.segmentation import Unit, split_units, unspaced_cjk
from paddlepalm.reader.tokenization import Lang, TokenizerKind, build_tokenizer, vocab_ids

Batch = Dict[str, np.ndarray]
Feature = Dict[str, Any]

# Features are grouped by length within windows of this many batches, which cuts
# padding while keeping batches random.
_BUCKET_BATCHES = 50

class TextArray(NamedTuple):
    """One array of a reader's text batch."""

    shape: List[int]
    dtype: str
    per_token: bool  # its second dimension is the token position (an export may fix its length)
    content: bool  # the example's text, not derived from its length: a joint batch's tasks must agree on it
    always: bool = False  # yielded whatever the backbone reads (heads read it)


# The one declaration of the text arrays: the reader's outputs and the lists derived below.
TEXT_ARRAYS: Dict[str, TextArray] = {
    "token_ids": TextArray([-1, -1], "int64", per_token=True, content=True),
    "position_ids": TextArray([-1, -1], "int64", per_token=True, content=False),
    "segment_ids": TextArray([-1, -1], "int64", per_token=True, content=True),
    "input_mask": TextArray([-1, -1, 1], "float32", per_token=True, content=False),
    "task_ids": TextArray([-1, -1], "int64", per_token=True, content=False),
    "seq_lens": TextArray([-1], "int64", per_token=False, content=True, always=True),
    "example_ids": TextArray([-1], "int64", per_token=False, content=False, always=True),
    # ELMo characters; only when a backbone asks
    "char_ids": TextArray([-1, -1, MAX_WORD_LENGTH], "int64", per_token=True, content=True),
}
TOKEN_ARRAYS = tuple(name for name, array in TEXT_ARRAYS.items() if array.per_token)
CONTENT_ARRAYS = tuple(name for name, array in TEXT_ARRAYS.items() if array.content)
_ALWAYS = tuple(name for name, array in TEXT_ARRAYS.items() if array.always)


def check_load_args(batch_size: int, num_epochs: Optional[float]) -> None:
    """The arguments of ``load_data``: a positive batch size; ``num_epochs`` positive or None
    (None: one epoch for a single ``Trainer``, the ``MultiHeadTrainer`` sets its own)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    check_num_epochs(num_epochs, allow_none=True)


def check_num_epochs(num_epochs: Optional[float], allow_none: bool) -> None:
    if num_epochs is None and allow_none:
        return
    if isinstance(num_epochs, bool) or not isinstance(num_epochs, (int, float)) or not num_epochs > 0:
        raise ValueError(f"num_epochs must be a positive number{' or None' if allow_none else ''}, "
                         f"got {num_epochs!r} (0 or fewer epochs would train nothing)")


def _may_vanish(text: str) -> bool:
    """Whether ``text`` holds a character BERT-style tokenizers drop (so a word may vanish)."""
    if text.isascii():
        return any(ord(c) < 32 and c not in "\t\n\r" or c == "\x7f" for c in text)
    return any(c == "\ufffd" or unicodedata.category(c) in ("Cc", "Cf", "Mn") for c in text if not c.isspace())


class Reader:
    """PALM reader contract: ``load_data``, ``register_with``, ``num_examples``, ``clone``."""

    FILE_FORMATS: Tuple[str, ...] = ("tsv",)  # the ``load_data(file_format=)`` values it reads; the first is its own
    reads_rows = False  # readers of rows (reader/sources.py) take CSV, JSON lines and in-memory data too

    def __init__(self, vocab_path: str, max_len: int, tokenizer: TokenizerKind = "wordpiece", lang: Lang = "en",
                 seed: Optional[int] = None, do_lower_case: bool = False, phase: str = "train",
                 fold_width: bool = False):
        if phase not in ("train", "predict", "eval"):
            raise ValueError(f"phase must be 'train', 'eval' or 'predict', got {phase!r}")
        if max_len < 3:
            raise ValueError(f"max_len must be at least 3, got {max_len}")
        self._init_args = dict(vocab_path=vocab_path, max_len=max_len, tokenizer=tokenizer, lang=lang,
                               seed=seed, do_lower_case=do_lower_case)
        if fold_width:  # recorded only when set: readers without the option rebuild from older settings
            self._init_args["fold_width"] = True
        self._warned_unspaced = False
        self._vocab_digest: Optional[str] = None
        self.vocab_path = vocab_path
        self.max_len = int(max_len)
        self.lang = lang
        self.seed = 0 if seed is None else int(seed)
        self.phase = phase
        self.tokenizer = build_tokenizer(vocab_path, tokenizer, lang, do_lower_case, fold=fold_width)
        self.pad_id = self.tokenizer.vocab[self.tokenizer.pad_token]
        self._registered: Optional[List[str]] = None
        self._features: List[Feature] = []
        self._input_file: Optional[str] = None
        self._file_format: str = "tsv"
        self._columns: Dict[str, str] = {}
        self.batch_size = 1
        self._num_epochs: Optional[int] = None
        self.shuffle = phase == "train"
        self._rank, self._world_size = 0, 1

    # ----------------------------------------------------------------- contract
    def register_with(self, backbone) -> None:
        """Yield exactly the arrays ``backbone`` asks for (plus this reader's labels).

        Checks that the reader fits the backbone: ``max_len`` within its position
        table and every vocabulary id within its embedding (``input_limits``)."""
        limits = getattr(backbone, "input_limits", {})
        positions = limits.get("max_position_embeddings")
        if positions is not None and self.max_len > positions:
            raise ValueError(f"{type(self).__name__}: max_len={self.max_len} exceeds the backbone's "
                             f"max_position_embeddings={positions}; lower max_len to at most {positions}")
        vocab_size = limits.get("vocab_size")
        if vocab_size is not None:
            needed = max(vocab_ids(self.tokenizer)) + 1
            if needed > vocab_size:
                raise ValueError(f"{type(self).__name__}: the vocabulary {self.vocab_path} has ids up to {needed - 1}, "
                                 f"but the backbone's vocab_size is {vocab_size} (its embedding has no row for them): "
                                 f"use the vocabulary the model was trained with, or a config with vocab_size >= {needed}")
        self._registered = list(backbone.inputs_attr)

    def load_data(self, input_file: Source, batch_size: int, num_epochs: Optional[int] = None,
                  file_format: str = "tsv", shuffle_train: bool = True,
                  columns: Optional[Mapping[str, str]] = None) -> None:
        """Read ``input_file`` into features. PALM's arguments, and for the readers of rows
        (classification, matching, tagging, masked LM): ``input_file`` may also be a list of dicts
        or a ``datasets.Dataset``; ``file_format`` 'tsv' (PALM's), 'csv', 'jsonl' or 'auto' (from
        the file name); ``columns`` maps the reader's field names to the data's column names
        (``{"text_a": "review", "label": "stars"}``). See docs/data.md."""
        check_load_args(batch_size, num_epochs)
        self._check_format(file_format)
        self._check_source(input_file, columns)
        self._file_format, self._columns = file_format, dict(columns or {})
        self._input_file = sources.describe(input_file)
        self._features = self._read_examples(input_file)
        if not self._features:
            raise DataFormatError(self._input_file, None,
                                  "no examples (the file holds only a header, or every entry was skipped)")
        self.batch_size = int(batch_size)
        self._num_epochs = num_epochs
        self.shuffle = shuffle_train and self.phase == "train"
        self._check_fills_a_batch()

    @property
    def num_examples(self) -> int:
        return len(self._features)

    @property
    def num_epochs(self) -> Optional[int]:
        return self._num_epochs

    @num_epochs.setter
    def num_epochs(self, value: Optional[float]) -> None:
        """Train this many epochs of the loaded data (``load_data``'s ``num_epochs``, without reading
        the file again)."""
        check_num_epochs(value, allow_none=True)
        self._num_epochs = value

    @property
    def features(self) -> List[Feature]:
        """The loaded examples as feature dicts, in file order (read them; do not change them)."""
        return self._features

    @property
    def outputs_attr(self) -> Dict[str, Any]:
        attrs = {k: (v.shape, v.dtype) for k, v in TEXT_ARRAYS.items()
                 if self._registered is None or k in self._registered or k in _ALWAYS}
        attrs.update(self._label_attrs())
        return attrs

    def clone(self, phase: str = "predict") -> "Reader":
        """A reader with the same settings for another phase (data not loaded)."""
        other = copy.copy(self)
        other.phase = phase
        other._features, other._input_file = [], None
        other.shuffle = phase == "train"
        return other

    # ------------------------------------------------------------ raw inputs
    def settings(self) -> Dict[str, Any]:
        """The constructor arguments that fix tokenization and arrays (no vocabulary path, seed or
        phase): what an exported model records so that its Predictor rebuilds this reader."""
        args = {k: v for k, v in self._init_args.items() if k not in ("vocab_path", "seed")}
        args.update(self._extra_settings())
        return args

    def _extra_settings(self) -> Dict[str, Any]:
        return {}

    def tokenizer_record(self) -> Dict[str, Any]:
        """What fixes this reader's tokenization: the tokenizer kind, language, casing, width folding
        and the vocabulary (its SHA-256 and size). Every checkpoint records it per task; loading a
        checkpoint into a reader whose record differs is refused (the weights would meet other ids)."""
        if self._vocab_digest is None:
            self._vocab_digest = sha256_of(self.vocab_path)
        return {"tokenizer": self.tokenizer_kind, "lang": self.lang,
                "do_lower_case": bool(self._init_args["do_lower_case"]),
                "fold_width": bool(self._init_args.get("fold_width", False)),
                "vocab_sha256": self._vocab_digest, "vocab_size": len(self.tokenizer.vocab)}

    def features_of(self, inputs: Sequence[Any], pretokenized: bool = False) -> List[Feature]:
        """Features of raw inputs (strings, or pairs for sentence-pair readers) by the same
        tokenization as files; ``example_id`` is the position in ``inputs`` and ``truncated``
        says whether the input was cut to ``max_len``. ``pretokenized``: each text is a list of
        its tokens instead (never guessed from spaces)."""
        raise NotImplementedError(f"{type(self).__name__} does not read raw inputs")

    def input_index(self, feature: Feature) -> int:
        """The position in ``features_of``'s inputs of the input that ``feature`` came from."""
        return feature["example_id"]

    @property
    def tokenizer_kind(self) -> str:
        """``'wordpiece'``, ``'whitespace'``, ``'jieba'`` or ``'char'``."""
        return self._init_args["tokenizer"]

    def units_of(self, text: str) -> List[Unit]:
        """The units of raw ``text`` this reader's tokenizer tags, with their character offsets
        (:mod:`paddlepalm.reader.segmentation`)."""
        if self.tokenizer_kind == "whitespace" and not self._warned_unspaced and unspaced_cjk(text):
            self._warned_unspaced = True
            warnings.warn("this model's tokenizer splits at whitespace, so Chinese typed without spaces is one "
                          "token to it; train with tokenizer 'char', 'jieba' or 'wordpiece' for raw Chinese",
                          stacklevel=2)
        return split_units(text, self.tokenizer_kind)

    def word_pieces(self, word: str) -> List[str]:
        """The tokens of one given word (a unit of pre-tokenized text); ``[UNK]`` for a word the
        tokenizer drops entirely, so that every word keeps a position."""
        split = getattr(self.tokenizer, "word_pieces", None)
        pieces = split(word) if split is not None else self.tokenizer.tokenize(word)
        return pieces or [self.tokenizer.unk_token]

    # ------------------------------------------------------------- subclassing
    def _check_format(self, file_format: str) -> None:
        if file_format not in self.FILE_FORMATS:
            raise ValueError(f"{type(self).__name__} reads file_format {' or '.join(map(repr, self.FILE_FORMATS))}, "
                             f"got {file_format!r}")

    def _check_source(self, source: Source, columns: Optional[Mapping[str, str]]) -> None:
        if self.reads_rows:
            return
        if not sources.is_file(source):
            raise TypeError(f"{type(self).__name__} reads files only, got {type(source).__name__}")
        if columns:
            raise ValueError(f"{type(self).__name__} reads no named columns: columns= is for the readers of rows")

    def _read_examples(self, input_file: str) -> List[Feature]:
        raise NotImplementedError

    def _label_attrs(self) -> Dict[str, Any]:
        return {}

    def _collate_labels(self, features: Sequence[Feature], width: int) -> Batch:
        return {}

    # ---------------------------------------------------------------- batching
    def shard(self, rank: int, world_size: int) -> None:
        """Read only this rank's part of every global batch (data parallelism)."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world of size {world_size}")
        self._rank, self._world_size = rank, world_size
        self._check_fills_a_batch()

    def _check_fills_a_batch(self) -> None:
        """Training serves full (global) batches only: fewer examples than one would train 0 steps."""
        if self.phase != "train" or self._input_file is None:
            return
        global_batch = self.batch_size * self._world_size
        if self.num_examples < global_batch:
            per_rank = f" x {self._world_size} processes" if self._world_size > 1 else ""
            raise DataFormatError(str(self._input_file), None,
                                  f"{self.num_examples} training examples, fewer than one batch of {global_batch} "
                                  f"(batch_size {self.batch_size}{per_rank}): training would run 0 steps; "
                                  f"lower batch_size")

    @property
    def steps_per_epoch(self) -> int:
        global_batch = self.batch_size * self._world_size
        if self.phase == "train":
            return self.num_examples // global_batch
        return math.ceil(self.num_examples / global_batch)

    def _epoch_batches(self, epoch: int) -> List[np.ndarray]:
        """Indices of this rank's batches in ``epoch``, grouped by length."""
        n = self.num_examples
        global_batch = self.batch_size * self._world_size
        if self.shuffle:
            rng = np.random.RandomState((self.seed * 100003 + epoch) % (2 ** 32))
            order = rng.permutation(n)
        else:
            order = np.arange(n)
        lengths = np.array([len(self._features[i]["token_ids"]) for i in order])
        window = global_batch * _BUCKET_BATCHES
        batches = []
        for start in range(0, n, window):
            chunk = order[start:start + window]
            chunk = chunk[np.argsort(lengths[start:start + window], kind="stable")]
            for b in range(0, len(chunk), global_batch):
                batches.append(chunk[b:b + global_batch])
        if self.phase == "train":
            batches = [b for b in batches if len(b) == global_batch]
            if self.shuffle:
                rng.shuffle(batches)
        if self._world_size > 1:
            batches = [np.array_split(b, self._world_size)[self._rank] for b in batches]
        return batches

    def iter_epoch(self, epoch: int = 0, skip_batches: int = 0) -> Iterator[Batch]:
        """Batches of one pass over the data (train: full batches only)."""
        if not self._features:
            raise RuntimeError(f"{type(self).__name__}: call load_data() before reading batches")
        for indices in self._epoch_batches(epoch)[skip_batches:]:
            if len(indices):  # a rank's part of a last, small prediction batch can be empty
                yield self.collate([self._features[i] for i in indices])

    def iter_in_file_order(self) -> Iterator[Batch]:
        """One pass in the order of the input file, last batch possibly smaller.

        ``iter_epoch`` groups prediction batches by length (less padding; ``predict()`` puts
        the results back in input order). The iterators a PALM script loops over itself
        (``fit_reader(reader, phase='predict')``, ``merge_inference_readers``) use this order,
        as PALM's did, so results collected batch by batch line up with the input lines."""
        if not self._features:
            raise RuntimeError(f"{type(self).__name__}: call load_data() before reading batches")
        global_batch = self.batch_size * self._world_size
        for start in range(0, self.num_examples, global_batch):
            indices = np.arange(start, min(start + global_batch, self.num_examples))
            if self._world_size > 1:
                indices = np.array_split(indices, self._world_size)[self._rank]
            if len(indices):
                yield self.collate([self._features[i] for i in indices])

    def collate(self, features: Sequence[Feature], width: Optional[int] = None) -> Batch:
        """A padded batch; ``width``: pad to this length (at least the longest feature's)."""
        width = max([len(f["token_ids"]) for f in features] + [width or 0])
        batch_size = len(features)
        token_ids = np.full((batch_size, width), self.pad_id, dtype="int64")
        segment_ids = np.zeros((batch_size, width), dtype="int64")
        seq_lens = np.zeros((batch_size,), dtype="int64")
        for row, feature in enumerate(features):
            length = len(feature["token_ids"])
            token_ids[row, :length] = feature["token_ids"]
            segment_ids[row, :length] = feature["segment_ids"]
            seq_lens[row] = length
        mask = (np.arange(width)[None, :] < seq_lens[:, None]).astype("float32")
        batch = {
            "token_ids": token_ids,
            "position_ids": np.tile(np.arange(width, dtype="int64"), (batch_size, 1)),
            "segment_ids": segment_ids,
            "input_mask": mask[:, :, None],
            "task_ids": np.zeros((batch_size, width), dtype="int64"),
            "seq_lens": seq_lens,
            "example_ids": np.array([f["example_id"] for f in features], dtype="int64"),
        }
        if self._registered is not None and "char_ids" in self._registered:
            batch["char_ids"] = batch_to_char_ids([self._words(f) for f in features], width)
        if self._registered is not None:
            batch = {k: v for k, v in batch.items() if k in self._registered or k in _ALWAYS}
        batch.update(self._collate_labels(features, width))
        return batch

    def split_batch(self, batch: Batch, parts: int) -> List[Tuple[Batch, float]]:
        """``parts`` micro-batches of consecutive rows, each with its share of the batch's loss
        (rows / batch rows): the weighted sum of their losses is the batch's loss for a loss that
        is a mean over examples. Used by ``Trainer(micro_batches=...)``."""
        rows = len(batch["token_ids"])
        if not 1 <= parts <= rows:
            raise ValueError(f"cannot split a batch of {rows} examples into {parts} micro-batches")
        for name, value in batch.items():
            if np.ndim(value) == 0 or len(value) != rows:
                raise ValueError(f"{type(self).__name__}: field {name!r} is not one row per example "
                                 f"(shape {np.shape(value)}), so its batches cannot be split into micro-batches")
        return [({name: value[chunk[0]:chunk[-1] + 1] for name, value in batch.items()}, len(chunk) / rows)
                for chunk in np.array_split(np.arange(rows), parts)]

    # ---------------------------------------------------------------- helpers
    def _words(self, feature: Feature) -> List[str]:
        """The tokens of a feature as strings (word-level tokenizers keep them; else from the ids)."""
        return feature.get("tokens") or self.tokenizer.convert_ids_to_tokens(feature["token_ids"])

    def _tokenize(self, text: Union[str, Sequence[str]]) -> List[str]:
        """The tokenizer's tokens of ``text``, except that a whitespace-separated word made only of
        characters the tokenizer drops (U+FFFD, control and format characters, lone combining
        marks) keeps its place as ``[UNK]``, as it does in ``SequenceLabelReader`` (which needs a
        token per word for its tag): the same sentence then gets the same ids from both readers,
        which joint batches require. A list of strings is pre-tokenized text: its words' pieces."""
        if not isinstance(text, str):
            return [piece for word in text for piece in self.word_pieces(word)]
        tokens = self.tokenizer.tokenize(text)
        if not _may_vanish(text):
            return tokens
        unk = self.tokenizer.unk_token
        return [piece for word in text.split() for piece in (self.tokenizer.tokenize(word) or [unk])]

    def _encode_text(self, text_a: Union[str, Sequence[str]],
                     text_b: Union[str, Sequence[str], None] = None) -> Dict[str, List[int]]:
        """[CLS] a [SEP] (b [SEP]) ids and segments, truncated longest-first to ``max_len``."""
        tokens_a = self._tokenize(text_a)
        tokens_b = self._tokenize(text_b) if text_b is not None else []
        budget = self.max_len - (3 if text_b is not None else 2)
        truncated = len(tokens_a) + len(tokens_b) > budget
        while len(tokens_a) + len(tokens_b) > budget:
            if len(tokens_a) >= len(tokens_b):
                tokens_a.pop()
            else:
                tokens_b.pop()
        tokens = [self.tokenizer.cls_token] + tokens_a + [self.tokenizer.sep_token]
        segments = [0] * len(tokens)
        if text_b is not None:
            tokens += tokens_b + [self.tokenizer.sep_token]
            segments += [1] * (len(tokens_b) + 1)
        feature = {"token_ids": self.tokenizer.convert_tokens_to_ids(tokens), "segment_ids": segments,
                   "truncated": truncated}
        if getattr(self.tokenizer, "is_word_level", False):
            feature["tokens"] = tokens  # out-of-vocabulary words keep their characters (ELMo char input)
        return feature
