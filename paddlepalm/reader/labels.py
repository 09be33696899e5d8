"""Label maps, and labels of evaluation data that training never saw.

A label map (``{label: id}``, ids ``0..n-1``) is built from the training split only: a class or tag
that only the dev or test split has is *unseen*. Building the map from every split would leak the
test set's label inventory into the model (its size, its ids). What a reader does with an unseen
label is its ``unseen_labels`` policy:

* ``'warn'`` (default): the example is kept and the label scored as wrong: a class is a class no
  prediction can equal, a tag's entity a gold entity no prediction can match (a false negative).
  One warning on stderr names the first ``file:line`` and the count; the evaluation's results
  carry ``unseen_labels: N``.
* ``'error'``: loading stops with a :class:`DataFormatError` naming the ``file:line``.

Training data never has unseen labels: there the label map is wrong, and loading stops either way.
"""
import sys
from typing import Any, Dict, Literal, Mapping, Optional, Union, get_args

from paddlepalm.reader.errors import DataFormatError
from paddlepalm.reader.tsv import check_no_nul
from paddlepalm.utils.fileio import FileFormatError, read_json

UnseenPolicy = Literal["warn", "error"]
UNSEEN_POLICIES = get_args(UnseenPolicy)
LabelMapConfig = Union[str, Mapping[str, int]]


def check_unseen_policy(policy: str) -> str:
    if policy not in UNSEEN_POLICIES:
        raise ValueError(f"unseen_labels must be one of {UNSEEN_POLICIES}, got {policy!r}")
    return policy


def load_label_map(config: LabelMapConfig) -> Dict[str, int]:
    """``label -> id`` from a JSON file or a mapping; ids must be the integers ``0..n-1``."""
    if isinstance(config, str):
        try:
            label_map = read_json(config)
        except FileFormatError as err:
            raise DataFormatError(config, err.line, f"label map: {err.problem}") from None
        source = config
    else:
        label_map, source = config, "label_map_config"
    if not isinstance(label_map, Mapping):
        raise DataFormatError(source, None, f"label map must be a JSON object {{label: id}}, "
                                            f"got a {type(label_map).__name__}")
    bad = [(label, index) for label, index in label_map.items()
           if not isinstance(index, int) or isinstance(index, bool)]
    if bad:
        raise DataFormatError(source, None, f"label ids must be integers; label {bad[0][0]!r} has {bad[0][1]!r}")
    ids = sorted(label_map.values())
    if ids != list(range(len(ids))):
        raise DataFormatError(source, None, f"label ids must be 0..{len(ids) - 1} without gaps, got {ids}")
    for label in label_map:
        check_no_nul(source, None, str(label))
    return {str(k): int(v) for k, v in label_map.items()}


class UnseenLabels:
    """Counts the unseen labels of one load and remembers the first (its location and value).
    ``why`` says what a label is unseen by (the label map, or the head's classes)."""

    def __init__(self, what: str = "label", why: str = "not in the label map"):
        self.what, self.why = what, why
        self.count = 0
        self.first: Optional[Any] = None  # the Location of the first one
        self.first_label: Optional[str] = None
        self._ids: Dict[str, int] = {}

    def add(self, location, label: str) -> int:
        """Count one (``label`` as shown: ``'hotel'``, ``id 13``); its id: negative and distinct per
        label, so it equals no prediction and each unseen class stays a class of its own in macro
        averages."""
        self.count += 1
        if self.first is None:
            self.first, self.first_label = location, label
        return self._ids.setdefault(label, -1 - len(self._ids))

    def warn(self, source: str, policy_hint: str = "unseen_labels='error' refuses them") -> None:
        if self.count:
            count = f"{self.count} such {self.what}" + (" is" if self.count == 1 else "s are")
            print(f"warning: {self.first}: {self.what} {self.first_label} was not seen in training ({self.why}): "
                  f"{count} scored as wrong in {source} ({policy_hint})",
                  file=sys.stderr, flush=True)
