"""Single-sentence or sentence-pair classification reader."""
from typing import Any, List, Optional, Sequence

from paddlepalm.reader.base_reader import Feature, Reader
from paddlepalm.reader.class_labels import ClassLabels
from paddlepalm.reader.tokenization import Lang, TokenizerKind
from paddlepalm.reader.tsv import read_tsv


class ClassifyReader(ClassLabels, Reader):
    """TSV with a header: ``label`` (integer id), ``text_a``, optional ``text_b`` and ``qid``.

    In ``phase='predict'`` the ``label`` column may be absent.
    """

    def __init__(self, vocab_path: str, max_len: int, tokenizer: TokenizerKind = "wordpiece", lang: Lang = "en",
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
            feature["line"] = number
            if "qid" in row:
                feature["qid"] = row["qid"]
            if "label" in row:
                self._read_label(input_file, number, row, feature)
            features.append(feature)
        self._has_labels = bool(features) and "label" in features[0]
        return features

    def features_of(self, inputs: Sequence[Any]) -> List[Feature]:
        """``inputs``: strings, or ``(text_a, text_b)`` pairs."""
        features = []
        for index, item in enumerate(inputs):
            text_a, text_b = _text_pair(item, index, pair_required=False)
            feature = self._encode_text(text_a, text_b)
            feature["example_id"] = index
            features.append(feature)
        return features


def _text_pair(item: Any, index: int, pair_required: bool):
    """``(text_a, text_b or None)`` of one raw input; a clear error for anything else."""
    if isinstance(item, str) and not pair_required:
        return item, None
    if isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(t, str) for t in item):
        return item[0], item[1]
    wanted = "a (text_a, text_b) pair of strings" if pair_required else "a string or a (text_a, text_b) pair"
    raise TypeError(f"input {index} must be {wanted}, got {type(item).__name__}: {item!r:.80}")
