"""Single-sentence or sentence-pair classification reader."""
from typing import Any, List, Mapping, Optional, Sequence, Union

from paddlepalm.reader.base_reader import Feature, Reader
from paddlepalm.reader.class_labels import ClassLabels
from paddlepalm.reader.labels import UnseenPolicy
from paddlepalm.reader.sources import FILE_FORMATS, ID, LABEL, TEXT, Source, read_rows
from paddlepalm.reader.tokenization import Lang, TokenizerKind


class ClassifyReader(ClassLabels, Reader):
    """Rows of ``label``, ``text_a``, optional ``text_b`` and ``qid`` (PALM's TSV with a header, or
    CSV, JSON lines, a list of dicts, a ``datasets.Dataset``: see ``load_data``).

    ``label``: an integer class id, or a class name of ``label_map_config`` (``{name: id}``, the
    training split's classes). In ``phase='predict'`` the ``label`` column may be absent.
    ``unseen_labels``: what an evaluation label outside the label map (or the head's classes)
    does, ``'warn'`` (scored as wrong, counted) or ``'error'`` (see :mod:`paddlepalm.reader.labels`).
    """

    FILE_FORMATS = FILE_FORMATS + ("auto",)
    reads_rows = True
    FIELDS = {"text_a": TEXT, "text_b": TEXT, "label": LABEL, "qid": ID}

    def __init__(self, vocab_path: str, max_len: int, tokenizer: TokenizerKind = "wordpiece", lang: Lang = "en",
                 seed: Optional[int] = None, do_lower_case: bool = False, phase: str = "train",
                 fold_width: bool = False, label_map_config: Optional[Union[str, Mapping[str, int]]] = None,
                 unseen_labels: UnseenPolicy = "warn"):
        super().__init__(vocab_path, max_len, tokenizer, lang, seed, do_lower_case, phase, fold_width)
        self._init_labels(label_map_config, unseen_labels)
        self._has_labels = phase != "predict"

    def _read_examples(self, source: Source) -> List[Feature]:
        required = [("text_a",)] if self.phase == "predict" else [("text_a",), ("label",)]
        features = []
        self._start_labels()
        for location, row in read_rows(source, self.FIELDS, required, self._file_format, self._columns):
            feature = self._encode_text(row["text_a"], row.get("text_b"))
            feature["example_id"] = len(features)
            feature["line"] = location.line
            if "qid" in row:
                feature["qid"] = row["qid"]
            if "label" in row:
                self._read_label(location, row["label"], feature)
            features.append(feature)
        self._has_labels = bool(features) and "label" in features[0]
        self._finish_labels()
        return features

    def features_of(self, inputs: Sequence[Any], pretokenized: bool = False) -> List[Feature]:
        """``inputs``: strings, or ``(text_a, text_b)`` pairs; with ``pretokenized``, lists of
        tokens, or pairs of such lists."""
        features = []
        for index, item in enumerate(inputs):
            text_a, text_b = text_pair(item, index, pair_required=False, pretokenized=pretokenized)
            feature = self._encode_text(text_a, text_b)
            feature["example_id"] = index
            features.append(feature)
        return features


def _is_tokens(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(t, str) and t.strip() for t in value)


def text_pair(item: Any, index: int, pair_required: bool, pretokenized: bool = False):
    """``(text_a, text_b or None)`` of one raw input (strings, or token lists with
    ``pretokenized``); a clear error for anything else."""
    single = _is_tokens if pretokenized else (lambda value: isinstance(value, str))
    if single(item) and not pair_required:
        return item, None
    if isinstance(item, (tuple, list)) and len(item) == 2 and all(single(t) for t in item):
        return item[0], item[1]
    what = "a non-empty list of tokens" if pretokenized else "a string"
    wanted = f"a pair of {what.replace('a ', '', 1)}s" if pair_required else f"{what} or a pair of them"
    raise TypeError(f"input {index} must be {wanted}, got {type(item).__name__}: {item!r:.80}")
