"""Single-sentence or sentence-pair classification reader."""
from typing import Any, List, Optional, Sequence

from paddlepalm.reader.base_reader import Feature, Reader
from paddlepalm.reader.class_labels import ClassLabels
from paddlepalm.reader.tsv import read_tsv


class ClassifyReader(ClassLabels, Reader):
    """TSV with a header: ``label`` (integer id), ``text_a``, optional ``text_b`` and ``qid``.

    In ``phase='predict'`` the ``label`` column may be absent.
    """

    def __init__(self, vocab_path: str, max_len: int, tokenizer: str = "wordpiece", lang: str = "en",
                 seed: Optional[int] = None, do_lower_case: bool = False, phase: str = "train",
                 fold_width: bool = False):
        super().__init__(vocab_path, max_len, tokenizer, lang, seed, do_lower_case, phase, fold_width)
        self._has_labels = phase != "predict"
        self._label_lines: List[int] = []

    def _read_examples(self, input_file: str) -> List[Feature]:
        required = ["text_a"] if self.phase == "predict" else ["text_a", "label"]
        features = []
        self._label_lines = []
        for number, row in read_tsv(input_file, required, optional=["text_b", "qid", "label"]):
            feature = self._encode_text(row["text_a"], row.get("text_b"))
            feature["example_id"] = len(features)
            feature["line"] = number
            if "qid" in row:
                feature["qid"] = row["qid"]
            if "label" in row:
                self._read_label(input_file, number, row, feature)
            features.append(feature)
        self._has_labels = bool(features) and "label" in features[0]
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
