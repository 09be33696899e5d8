"""Integer class labels shared by the classification and matching readers."""
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np

from paddlepalm.reader.base_reader import Batch, Feature
from paddlepalm.reader.errors import DataFormatError
from paddlepalm.reader.tsv import parse_int


class ClassLabels:
    """Mixin for a ``Reader`` whose rows may carry a ``label`` column of class ids.

    Subclasses call :meth:`_read_label` per row and set ``self._has_labels``.
    """

    _label_lines: List[int]
    _has_labels: bool

    def _read_label(self, path: str, number: int, row: Mapping[str, str], feature: Feature) -> None:
        label = parse_int(path, number, "label", row["label"])
        if label < 0:
            raise DataFormatError(path, number, f"label id must be >= 0, got {label}")
        feature["label"] = label
        self._label_lines.append(number)

    def check_num_classes(self, num_classes: int) -> None:
        """Raise naming the first line whose label id is outside ``[0, num_classes)``."""
        for feature, number in zip(self._features, self._label_lines):
            if feature["label"] >= num_classes:
                raise DataFormatError(self._input_file, number,
                                      f"label id {feature['label']} out of range for {num_classes} classes")

    def _label_attrs(self) -> Dict[str, Any]:
        return {"label_ids": ([-1], "int64")} if self._has_labels else {}

    def _collate_labels(self, features: Sequence[Feature], width: int) -> Batch:
        if not self._has_labels or "label" not in features[0]:  # raw inputs (features_of) have none
            return {}
        return {"label_ids": np.array([f["label"] for f in features], dtype="int64")}
