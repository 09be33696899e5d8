"""Sequence labeling reader: one tag per token, CRF over original tokens."""
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from paddlepalm.reader.base_reader import Batch, Feature, Reader
from paddlepalm.reader.labels import UnseenLabels, UnseenPolicy, check_unseen_policy, load_label_map
from paddlepalm.reader.segmentation import units_of_tokens
from paddlepalm.reader.sources import FILE_FORMATS, TEXT, TOKENS, Location, Source, read_rows
from paddlepalm.reader.tokenization import Lang, TokenizerKind

TOKEN_SEPARATOR = "\x02"


class SequenceLabelReader(Reader):
    """Rows of tokens and their tags: ``text_a`` and ``label``, each joined by ``\\x02`` (PALM's TSV
    with a header ``text_a<TAB>label``, or CSV), or in JSON lines, lists of dicts and
    ``datasets.Dataset`` also ``tokens`` and ``tags`` as lists of strings (a token may then hold
    any character, a space too). See ``load_data`` and docs/data.md.

    Each original token is split into word pieces; the model tags the first piece
    of every token (``word_starts``), so labels and predictions are one per
    original token. Tokens that do not fit in ``max_len`` are cut in training and
    counted; in prediction they get the ``O`` tag (or id 0) and are counted too.
    ``unseen_labels``: what a tag of evaluation data outside the label map does, ``'warn'`` (its
    entity is a false negative, counted) or ``'error'`` (see :mod:`paddlepalm.reader.labels`).
    """

    reads_rows = True
    FILE_FORMATS = FILE_FORMATS + ("auto",)
    FIELDS = {"text_a": TEXT, "label": TEXT, "tokens": TOKENS, "tags": TOKENS}

    def __init__(self, vocab_path: str, max_len: int, label_map_config: Union[str, Mapping[str, int]],
                 tokenizer: TokenizerKind = "wordpiece", lang: Lang = "en", seed: Optional[int] = None,
                 do_lower_case: bool = False, phase: str = "train", dev_count: int = 1, print_prefix: str = "",
                 fold_width: bool = False, unseen_labels: UnseenPolicy = "warn"):
        super().__init__(vocab_path, max_len, tokenizer, lang, seed, do_lower_case, phase, fold_width)
        self.label_map = load_label_map(label_map_config)
        self._label_map_source = label_map_config if isinstance(label_map_config, str) else "(given as a mapping)"
        self.label_names = [None] * len(self.label_map)
        for tag, index in self.label_map.items():
            self.label_names[index] = tag
        self.unseen_policy = check_unseen_policy(unseen_labels)
        self._unseen = UnseenLabels("tag")
        self._has_labels = phase != "predict"
        self._piece_cache: Dict[str, List[int]] = {}
        self.num_truncated = 0

    @property
    def unseen_labels(self) -> int:
        """How many tags of the loaded data training never saw (their entities count as missed)."""
        return self._unseen.count

    def check_num_classes(self, num_classes: int) -> None:
        """A head with fewer classes than the label map could never predict some tags.
        More classes are allowed (PALM scripts size the head generously); the head
        then never decodes an id outside the label map."""
        if num_classes < len(self.label_map):
            source = self._label_map_source
            raise ValueError(f"SequenceLabel has num_classes={num_classes} but the label map {source} "
                             f"holds {len(self.label_map)} tags: num_classes must be at least {len(self.label_map)}")

    def _pieces(self, word: str) -> List[int]:
        ids = self._piece_cache.get(word)
        if ids is None:
            ids = self._piece_cache[word] = self.tokenizer.convert_tokens_to_ids(self.word_pieces(word))
        return ids

    def _read_examples(self, source: Source) -> List[Feature]:
        required = [("tokens", "text_a")] + ([] if self.phase == "predict" else [("tags", "label")])
        cls_id, sep_id = self.tokenizer.convert_tokens_to_ids([self.tokenizer.cls_token, self.tokenizer.sep_token])
        features = []
        self.num_truncated = 0
        self._unseen = UnseenLabels("tag")
        for location, row in read_rows(source, self.FIELDS, required, self._file_format, self._columns):
            words, tags = _words_and_tags(location, row)
            feature = self._encode_words(words, len(features), cls_id, sep_id)
            feature["line"] = location.line
            if tags is not None:
                self._add_labels(location, tags, len(feature["word_starts"]), feature)
            features.append(feature)
        self._has_labels = bool(features) and "labels" in features[0]
        self._unseen.warn(str(self._input_file))
        return features

    def _add_labels(self, location: Location, tags: Sequence[str], kept: int, feature: Feature) -> None:
        """``labels``: the ids of the first ``kept`` tags (the tokens that fit). An unseen tag gets -1
        and the row keeps its ``gold_tags`` (names) for scoring."""
        unknown = [t for t in tags if t not in self.label_map]
        if unknown and (self.phase == "train" or self.unseen_policy == "error"):
            raise location.error(f"unknown tag {unknown[0]!r} (not in the label map)")
        tags = tags[:kept]
        feature["labels"] = [self.label_map.get(t, -1) for t in tags]
        if -1 in feature["labels"]:
            feature["gold_tags"] = list(tags)
            for tag in tags:
                if tag not in self.label_map:
                    self._unseen.add(location, repr(tag))

    def _encode_words(self, words: Sequence[str], example_id: int, cls_id: int, sep_id: int) -> Feature:
        """``[CLS] pieces of each word [SEP]``; words that do not fit in ``max_len`` are left out
        and counted in ``num_truncated``."""
        token_ids, word_starts = [cls_id], []
        for word in words:
            pieces = self._pieces(word)
            if len(token_ids) + len(pieces) > self.max_len - 1:
                break
            word_starts.append(len(token_ids))
            token_ids.extend(pieces)
        token_ids.append(sep_id)
        if len(word_starts) < len(words):
            self.num_truncated += 1
        feature = {"token_ids": token_ids, "segment_ids": [0] * len(token_ids), "word_starts": word_starts,
                   "num_words": len(words), "example_id": example_id, "truncated": len(word_starts) < len(words)}
        if getattr(self.tokenizer, "is_word_level", False) and len(token_ids) == len(word_starts) + 2:
            feature["tokens"] = [self.tokenizer.cls_token] + list(words[:len(word_starts)]) + [self.tokenizer.sep_token]
        return feature

    def _extra_settings(self) -> Dict[str, Any]:
        return {"label_map_config": dict(self.label_map)}

    def features_of(self, inputs: Sequence[Any], pretokenized: bool = False) -> List[Feature]:
        """``inputs``: raw sentences, split into the units this reader's tokenizer tags
        (:meth:`units_of`: Chinese needs no spaces); with ``pretokenized``, lists of tokens, one
        tag each. Each feature keeps its ``text`` and the units' character ``word_spans`` in it
        (a pre-tokenized input's text is its tokens joined by one space)."""
        cls_id, sep_id = self.tokenizer.convert_tokens_to_ids([self.tokenizer.cls_token, self.tokenizer.sep_token])
        features = []
        for index, item in enumerate(inputs):
            text, units = self._text_units(item, index, pretokenized)
            feature = self._encode_words([unit[0] for unit in units], index, cls_id, sep_id)
            feature["word_spans"] = [(start, end) for _, start, end in units]
            feature["text"] = text
            features.append(feature)
        return features

    def _text_units(self, item: Any, index: int, pretokenized: bool):
        if pretokenized:
            if isinstance(item, str) or not isinstance(item, Sequence):
                raise TypeError(f"input {index} must be a list of tokens (pretokenized), got "
                                f"{type(item).__name__}: {item!r:.80}")
            try:
                return units_of_tokens(item)
            except ValueError as error:
                raise ValueError(f"input {index}: {error}") from None
        if not isinstance(item, str):
            raise TypeError(f"input {index} must be a string, got {type(item).__name__}: {item!r:.80} "
                            "(a list of tokens needs pretokenized=True)")
        return item, self.units_of(item)

    def _label_attrs(self) -> Dict[str, Any]:
        attrs = {"word_starts": ([-1, -1], "int64"), "word_counts": ([-1], "int64"),
                 "num_words": ([-1], "int64")}
        if self._has_labels:
            attrs["label_ids"] = ([-1, -1], "int64")
        return attrs

    def _collate_labels(self, features: Sequence[Feature], width: int) -> Batch:
        batch_size = len(features)
        has_labels = self._has_labels and "labels" in features[0]  # raw inputs (features_of) have none
        words = max(1, max(len(f["word_starts"]) for f in features))
        starts = np.zeros((batch_size, words), dtype="int64")
        labels = np.zeros((batch_size, words), dtype="int64")
        counts = np.zeros((batch_size,), dtype="int64")
        for row, feature in enumerate(features):
            n = len(feature["word_starts"])
            starts[row, :n] = feature["word_starts"]
            counts[row] = n
            if has_labels:
                labels[row, :n] = feature["labels"]
        batch = {"word_starts": starts, "word_counts": counts,
                 "num_words": np.array([f["num_words"] for f in features], dtype="int64")}
        if has_labels:
            batch["label_ids"] = labels
        return batch


def _words_and_tags(location: Location, row: Dict[str, Any]) -> Tuple[List[str], Optional[List[str]]]:
    """A row's tokens and tags (None when it has none): lists as given, or ``\\x02``-joined strings."""
    words = row["tokens"] if "tokens" in row else row["text_a"].split(TOKEN_SEPARATOR)
    tags = row["tags"] if "tags" in row else row["label"].split(TOKEN_SEPARATOR) if "label" in row else None
    if tags is None:
        return [w for w in words if w], None
    if len(tags) != len(words):
        raise location.error(f"{len(words)} tokens but {len(tags)} tags")
    if "tokens" not in row:
        # PALM's process.py leaves a trailing separator on both strings: an empty
        # token with an empty tag is no token
        kept = [i for i, (w, t) in enumerate(zip(words, tags)) if w or t]
        words, tags = [words[i] for i in kept], [tags[i] for i in kept]
    return words, tags
