"""Single-sentence or sentence-pair classification reader."""
from typing import List, Optional

from paddlepalm.reader.base_reader import Feature, Reader
from paddlepalm.reader.class_labels import ClassLabels
from paddlepalm.reader.tsv import read_tsv


class ClassifyReader(ClassLabels, Reader):
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
                self._read_label(input_file, number, row, feature)
            features.append(feature)
        self._has_labels = bool(features) and "label" in features[0]
        return features
