"""Sentence-pair matching reader, pointwise or pairwise (PALM's ``MatchReader``)."""
from typing import Any, Dict, List, Literal, Mapping, Optional, Sequence, Union, get_args

from paddlepalm.reader.base_reader import Batch, Feature, Reader
from paddlepalm.reader.class_labels import ClassLabels
from paddlepalm.reader.cls import text_pair
from paddlepalm.reader.labels import UnseenPolicy
from paddlepalm.reader.sources import FILE_FORMATS, ID, LABEL, TEXT, Source, read_rows
from paddlepalm.reader.tokenization import Lang, TokenizerKind

Strategy = Literal["pointwise", "pairwise"]
STRATEGIES = get_args(Strategy)


class MatchReader(ClassLabels, Reader):
    """Rows with named columns (PALM's TSV with a header, or CSV, JSON lines, a list of dicts, a
    ``datasets.Dataset``: see ``load_data``).

    * ``pointwise``: ``text_a, text_b, label`` (``label`` optional in predict phase; an integer id
      or a class name of ``label_map_config``, as in ``ClassifyReader``).
    * ``pairwise`` training: ``text_a, text_b, text_b_neg``. A batch of ``B`` triples
      holds ``2B`` rows: the ``(text_a, text_b)`` pairs first, then the
      ``(text_a, text_b_neg)`` pairs in the same order, so the head scores both with
      the same weights in one backbone pass. Prediction/eval: ``text_a, text_b``
      (one row per pair, ``label`` optional).
    """

    FILE_FORMATS = FILE_FORMATS + ("auto",)
    reads_rows = True
    FIELDS = {"text_a": TEXT, "text_b": TEXT, "text_b_neg": TEXT, "label": LABEL, "qid": ID}

    def __init__(self, vocab_path: str, max_len: int, tokenizer: TokenizerKind = "wordpiece", lang: Lang = "en",
                 seed: Optional[int] = None, do_lower_case: bool = False, learning_strategy: Strategy = "pointwise",
                 phase: str = "train", dev_count: int = 1, print_prefix: str = "", fold_width: bool = False,
                 label_map_config: Optional[Union[str, Mapping[str, int]]] = None,
                 unseen_labels: UnseenPolicy = "warn"):
        super().__init__(vocab_path, max_len, tokenizer, lang, seed, do_lower_case, phase, fold_width)
        if learning_strategy not in STRATEGIES:
            raise ValueError(f"learning_strategy must be one of {STRATEGIES}, got {learning_strategy!r}")
        self.learning_strategy = learning_strategy
        self._init_labels(label_map_config, unseen_labels)
        self._has_labels = phase != "predict" and learning_strategy == "pointwise"

    @property
    def _pairwise_training(self) -> bool:
        return self.learning_strategy == "pairwise" and self.phase == "train"

    def _required_columns(self) -> List[str]:
        if self._pairwise_training:
            return ["text_a", "text_b", "text_b_neg"]
        if self.learning_strategy == "pointwise" and self.phase != "predict":
            return ["text_a", "text_b", "label"]
        return ["text_a", "text_b"]

    def _read_examples(self, source: Source) -> List[Feature]:
        required = self._required_columns()
        features: List[Feature] = []
        self._start_labels()
        rows = read_rows(source, self.FIELDS, [(c,) for c in required], self._file_format, self._columns)
        for location, row in rows:
            for column in required:
                if column != "label" and not row[column].strip():
                    raise location.error(f"empty {column} (needed by the {self.learning_strategy} strategy)")
            feature = self._encode_text(row["text_a"], row["text_b"])
            feature["example_id"] = len(features)
            feature["line"] = location.line
            if self._pairwise_training:
                negative = self._encode_text(row["text_a"], row["text_b_neg"])
                feature["neg_token_ids"] = negative["token_ids"]
                feature["neg_segment_ids"] = negative["segment_ids"]
            if "label" in row and not self._pairwise_training:
                self._read_label(location, row["label"], feature)
            features.append(feature)
        self._has_labels = bool(features) and "label" in features[0]
        self._finish_labels()
        return features

    def _extra_settings(self) -> Dict[str, Any]:
        return {"learning_strategy": self.learning_strategy}

    def features_of(self, inputs: Sequence[Any], pretokenized: bool = False) -> List[Feature]:
        """``inputs``: ``(text_a, text_b)`` pairs (of token lists with ``pretokenized``)."""
        features = []
        for index, item in enumerate(inputs):
            feature = self._encode_text(*text_pair(item, index, pair_required=True, pretokenized=pretokenized))
            feature["example_id"] = index
            features.append(feature)
        return features

    def collate(self, features: Sequence[Feature], width: Optional[int] = None) -> Batch:
        if not self._pairwise_training:
            return super().collate(features, width)
        negatives = [dict(f, token_ids=f["neg_token_ids"], segment_ids=f["neg_segment_ids"]) for f in features]
        return super().collate(list(features) + negatives, width)
