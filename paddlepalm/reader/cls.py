"""Single-sentence or sentence-pair classification reader."""
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from paddlepalm.reader.base_reader import Batch, Feature, Reader
from paddlepalm.reader.errors import DataFormatError
from paddlepalm.reader.tsv import parse_int, read_tsv


class ClassifyReader(Reader):
    """TSV with a header: ``label`` (integer id), ``text_a``, optional ``text_b`` and ``qid``.

    In ``phase='predict'`` the ``label`` column may be absent.
    """

    def __init__(self, vocab_path: str, max_len: int, tokenizer: str = "wordpiece", lang: str = "en",
                 seed: Optional[int] = None, do_lower_case: bool = False, phase: str = "train"):
        super().__init__(vocab_path, max_len, tokenizer, lang, seed, do_lower_case, phase)
        self._has_labels = phase != "predict"
        self._label_lines: List[int] = []

    def _read_examples(self, input_file: str) -> List[Feature]:
        required = ["text_a"] if self.phase == "predict" else ["text_a", "label"]
        features = []
        self._label_lines = []
        for number, row in read_tsv(input_file, required, optional=["text_b", "qid", "label"]):
            feature = self._encode_text(row["text_a"], row.get("text_b"))
            feature["example_id"] = len(features)
            if "qid" in row:
                feature["qid"] = row["qid"]
            if "label" in row:
                label = parse_int(input_file, number, "label", row["label"])
                if label < 0:
                    raise DataFormatError(input_file, number, f"label id must be >= 0, got {label}")
                feature["label"] = label
                self._label_lines.append(number)
            features.append(feature)
        self._has_labels = bool(features) and "label" in features[0]
        return features

    def check_num_classes(self, num_classes: int) -> None:
        """Raise naming the first line whose label id is outside ``[0, num_classes)``."""
        for feature, number in zip(self._features, self._label_lines):
            if feature["label"] >= num_classes:
                raise DataFormatError(self._input_file, number,
                                      f"label id {feature['label']} out of range for {num_classes} classes")

    def _label_attrs(self) -> Dict[str, Any]:
        return {"label_ids": ([-1], "int64")} if self._has_labels else {}

    def _collate_labels(self, features: Sequence[Feature], width: int) -> Batch:
        if not self._has_labels:
            return {}
        return {"label_ids": np.array([f["label"] for f in features], dtype="int64")}
