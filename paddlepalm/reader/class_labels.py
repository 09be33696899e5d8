"""Class labels shared by the classification and matching readers."""
import re
from typing import Any, Dict, Optional, Sequence

import numpy as np

from paddlepalm.reader.base_reader import Batch, Feature
from paddlepalm.reader.labels import LabelMapConfig, UnseenLabels, UnseenPolicy, check_unseen_policy, load_label_map
from paddlepalm.reader.sources import Location

_INTEGER = re.compile(r"\s*[-+]?[0-9]+\s*")


class ClassLabels:
    """Mixin for a ``Reader`` whose rows may carry a ``label``.

    A label is an integer class id (PALM's TSV) or, with a label map (``{name: id}``), a class name.
    With a label map, a label that names a class is that class; any other integer label is a class
    id, unless the class names are themselves numbers (CLUE's ``"100"``, ``"101"``, ...), where a
    label is only ever a name. A label outside the label map (or, without one, an id outside the
    head's classes) in evaluation data is *unseen*: see :mod:`paddlepalm.reader.labels`.

    Subclasses call :meth:`_init_labels` and :meth:`_read_label` per row, and set ``self._has_labels``.
    """

    _has_labels: bool
    phase: str
    _features: list
    _input_file: Optional[str]

    def _init_labels(self, label_map_config: Optional[LabelMapConfig], unseen_labels: UnseenPolicy) -> None:
        self.label_map = load_label_map(label_map_config) if label_map_config is not None else None
        self._label_map_source = label_map_config if isinstance(label_map_config, str) else "(given as a mapping)"
        self._names_are_ids = self.label_map is None or not any(_INTEGER.fullmatch(k) for k in self.label_map)
        self.unseen_policy = check_unseen_policy(unseen_labels)
        self._start_labels()

    @property
    def unseen_labels(self) -> int:
        """How many labels of the loaded data training never saw (scored as wrong)."""
        return self._unseen.count + self._out_of_range.count

    def _start_labels(self) -> None:
        self._unseen, self._out_of_range = UnseenLabels(), UnseenLabels()

    def _read_label(self, location: Location, value: Any, feature: Feature) -> None:
        text = value.strip() if isinstance(value, str) else str(value)
        feature["where"] = location
        if self.label_map is not None and text in self.label_map:
            feature["label"] = self.label_map[text]
            return
        label = int(text) if self._names_are_ids and _INTEGER.fullmatch(text) else None
        if label is None and self.label_map is None:
            raise location.error(f"column 'label' must be an integer, got {value!r} "
                                 "(class names need a label map: label_map_config, or a task's label_map)")
        if label is not None and label < 0:
            raise location.error(f"label id must be >= 0, got {label}")
        if label is not None and (self.label_map is None or label < len(self.label_map)):
            feature["label"] = label
            return
        shown = repr(text) if label is None else f"id {label}"
        if self.phase == "train" or self.unseen_policy == "error":
            raise location.error(f"unknown label {shown} (not in the label map {self._label_map_source})")
        feature["label"] = self._unseen.add(location, shown)

    def _finish_labels(self) -> None:
        self._unseen.warn(str(self._input_file))

    def check_num_classes(self, num_classes: int) -> None:
        """A label id outside ``[0, num_classes)``: an error naming its ``file:line`` in training data
        (or with ``unseen_labels='error'``); in evaluation data an unseen class, counted."""
        self._out_of_range = UnseenLabels(why=f"outside the head's {num_classes} classes")
        for feature in self._features:
            label = feature.get("label")
            if label is None or label < num_classes:
                continue
            if self.phase == "train" or self.unseen_policy == "error":
                raise feature["where"].error(f"label id {label} out of range for {num_classes} classes")
            self._out_of_range.add(feature["where"], f"id {label}")
        self._out_of_range.warn(str(self._input_file))

    def _label_attrs(self) -> Dict[str, Any]:
        return {"label_ids": ([-1], "int64")} if self._has_labels else {}

    def _collate_labels(self, features: Sequence[Feature], width: int) -> Batch:
        if not self._has_labels or "label" not in features[0]:  # raw inputs (features_of) have none
            return {}
        return {"label_ids": np.array([f["label"] for f in features], dtype="int64")}
