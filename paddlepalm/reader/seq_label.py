"""Sequence labeling reader: one tag per whitespace-free token, CRF over original tokens."""
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from paddlepalm.reader.base_reader import Batch, Feature, Reader
from paddlepalm.reader.errors import DataFormatError
from paddlepalm.reader.tsv import read_tsv

TOKEN_SEPARATOR = "\x02"


class SequenceLabelReader(Reader):
    """TSV with header ``text_a<TAB>label``; tokens and tags each joined by ``\\x02``.

    Each original token is split into word pieces; the model tags the first piece
    of every token (``word_starts``), so labels and predictions are one per
    original token. Tokens that do not fit in ``max_len`` are cut in training and
    counted; in prediction they get the ``O`` tag (or id 0) and are counted too.
    """

    def __init__(self, vocab_path: str, max_len: int, label_map_config: Union[str, Mapping[str, int]],
                 tokenizer: str = "wordpiece", lang: str = "en", seed: Optional[int] = None,
                 do_lower_case: bool = False, phase: str = "train", dev_count: int = 1, print_prefix: str = ""):
        super().__init__(vocab_path, max_len, tokenizer, lang, seed, do_lower_case, phase)
        self.label_map = _load_label_map(label_map_config)
        self.label_names = [None] * len(self.label_map)
        for tag, index in self.label_map.items():
            self.label_names[index] = tag
        self._has_labels = phase != "predict"
        self._piece_cache: Dict[str, List[int]] = {}
        self.num_truncated = 0

    def _pieces(self, word: str) -> List[int]:
        ids = self._piece_cache.get(word)
        if ids is None:
            tokens = self.tokenizer.tokenize(word) or [self.tokenizer.unk_token]
            ids = self._piece_cache[word] = self.tokenizer.convert_tokens_to_ids(tokens)
        return ids

    def _read_examples(self, input_file: str) -> List[Feature]:
        required = ["text_a"] if self.phase == "predict" else ["text_a", "label"]
        cls_id, sep_id = self.tokenizer.convert_tokens_to_ids([self.tokenizer.cls_token, self.tokenizer.sep_token])
        features = []
        self.num_truncated = 0
        for number, row in read_tsv(input_file, required, optional=["label"]):
            words = row["text_a"].split(TOKEN_SEPARATOR)
            tags = None
            if "label" in row:
                tags = row["label"].split(TOKEN_SEPARATOR)
                if len(tags) != len(words):
                    raise DataFormatError(input_file, number,
                                          f"{len(words)} tokens but {len(tags)} tags")
                unknown = [t for t in tags if t not in self.label_map]
                if unknown:
                    raise DataFormatError(input_file, number,
                                          f"unknown tag {unknown[0]!r} (not in the label map)")
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
            feature = {"token_ids": token_ids, "segment_ids": [0] * len(token_ids),
                       "word_starts": word_starts, "num_words": len(words), "example_id": len(features)}
            if getattr(self.tokenizer, "is_word_level", False) and len(token_ids) == len(word_starts) + 2:
                feature["tokens"] = [self.tokenizer.cls_token] + words[:len(word_starts)] + [self.tokenizer.sep_token]
            if tags is not None:
                feature["labels"] = [self.label_map[t] for t in tags[:len(word_starts)]]
            features.append(feature)
        self._has_labels = bool(features) and "labels" in features[0]
        return features

    def _label_attrs(self) -> Dict[str, Any]:
        attrs = {"word_starts": ([-1, -1], "int64"), "word_counts": ([-1], "int64"),
                 "num_words": ([-1], "int64")}
        if self._has_labels:
            attrs["label_ids"] = ([-1, -1], "int64")
        return attrs

    def _collate_labels(self, features: Sequence[Feature], width: int) -> Batch:
        batch_size = len(features)
        words = max(1, max(len(f["word_starts"]) for f in features))
        starts = np.zeros((batch_size, words), dtype="int64")
        labels = np.zeros((batch_size, words), dtype="int64")
        counts = np.zeros((batch_size,), dtype="int64")
        for row, feature in enumerate(features):
            n = len(feature["word_starts"])
            starts[row, :n] = feature["word_starts"]
            counts[row] = n
            if self._has_labels:
                labels[row, :n] = feature["labels"]
        batch = {"word_starts": starts, "word_counts": counts,
                 "num_words": np.array([f["num_words"] for f in features], dtype="int64")}
        if self._has_labels:
            batch["label_ids"] = labels
        return batch


def _load_label_map(config: Union[str, Mapping[str, int]]) -> Dict[str, int]:
    if isinstance(config, str):
        with open(config, encoding="utf-8") as f:
            try:
                label_map = json.load(f)
            except json.JSONDecodeError as err:
                raise DataFormatError(config, err.lineno, f"label map is not valid JSON: {err.msg}") from None
        source = config
    else:
        label_map, source = dict(config), "label_map_config"
    ids = sorted(label_map.values())
    if ids != list(range(len(ids))):
        raise ValueError(f"{source}: tag ids must be 0..{len(ids) - 1} without gaps, got {ids}")
    return {str(k): int(v) for k, v in label_map.items()}
