"""Sequence labeling head: linear emissions + linear-chain CRF over original tokens."""
import contextlib
import os
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

import numpy as np
import paddle
from paddle import nn

from paddlepalm.head.base_head import Head
from paddlepalm.utils.crf import crf_decode, crf_nll, viterbi_decode_numpy
from paddlepalm.utils.fileio import write_json_lines


class SequenceLabel(Head):
    """CRF tagger over the first word piece of every original token.

    ``learning_rate`` multiplies the global learning rate for the transition
    matrix (PALM's meaning). Prediction is Viterbi decoding and yields one tag id
    per original input token. ``num_classes`` may exceed the reader's label map
    (PALM scripts size it generously): decoding then runs over the label map's tags
    only. ``predictions.json`` holds one JSON list of tag ids per line, in input
    order (what PALM's evaluation scripts read); :meth:`epoch_postprocess` returns
    the richer per-example dicts.

    An export leaves the CRF decoding out of its graph (paddlepalm/export.py says why) and
    records the transitions; the Predictor's head decodes the exported emissions with them
    (:meth:`complete_outputs`, the dynamic graph's paths).
    """

    default_metrics = ("chunk_f1",)
    target_metric = "entity_f1"
    servable = True
    labels_named_by_reader = True

    def __init__(self, num_classes: int, input_dim: int, dropout_prob: float = 0.0, learning_rate: float = 1e-3,
                 param_initializer_range: float = 0.02, phase: str = "train"):
        super().__init__(phase)
        self.num_classes = int(num_classes)
        self.dropout = nn.Dropout(dropout_prob)
        self.emission = nn.Linear(input_dim, num_classes, weight_attr=paddle.ParamAttr(
            initializer=nn.initializer.TruncatedNormal(std=param_initializer_range)))
        self.transitions = self.create_parameter(
            [num_classes + 2, num_classes], attr=paddle.ParamAttr(learning_rate=learning_rate),
            default_initializer=nn.initializer.Uniform(-0.1, 0.1))
        self.label_names = None
        self.decode = True  # False: no ``tags`` output (exports decode outside the graph)

    @property
    def inputs_attrs(self):
        reader = {"word_starts": ([-1, -1], "int64"), "word_counts": ([-1], "int64")}
        if self.phase == "train":
            reader["label_ids"] = ([-1, -1], "int64")
        return {"reader": reader, "backbone": {"encoder_outputs": ([-1, -1, -1], "float32")}}

    @property
    def outputs_attr(self):
        if self.phase == "train":
            return {"loss": ([1], "float32")}
        return {"tags": ([-1, -1], "int64"), "logits": ([-1, -1, self.num_classes], "float32")}

    def forward(self, reader_inputs, backbone_outputs):
        hidden = backbone_outputs["encoder_outputs"]
        starts = reader_inputs["word_starts"]
        words = paddle.take_along_axis(hidden, starts.unsqueeze(-1).expand([-1, -1, hidden.shape[-1]]), axis=1)
        emissions = self.emission(self.dropout(words))
        if self.phase == "train":
            lengths = paddle.clip(reader_inputs["word_counts"], min=1)
            nll = crf_nll(emissions, reader_inputs["label_ids"], lengths, self.transitions)
            return {"loss": nll.mean()}
        # logits: the per-word emissions (PALM's predict_one_batch fetched them under that name)
        outputs = {"logits": emissions, "word_counts": reader_inputs["word_counts"],
                   "num_words": reader_inputs["num_words"], "example_ids": reader_inputs["example_ids"]}
        if self.decode:
            num_tags = len(self.label_names) if self.label_names else None
            lengths = paddle.clip(reader_inputs["word_counts"], min=1)
            outputs["tags"] = crf_decode(emissions, lengths, self.transitions, num_tags)
        return outputs

    # ---------------------------------------------------------------- export
    def export_args(self) -> Dict[str, Any]:
        return {"num_classes": self.num_classes, "input_dim": int(self.emission.weight.shape[0])}

    def export_extras(self) -> Dict[str, Any]:
        return {"transitions": self.transitions.numpy().astype("float32").tolist()}

    @contextlib.contextmanager
    def exporting(self) -> Iterator[None]:
        """No ``tags`` output: the decoder stays outside the graph."""
        decode, self.decode = self.decode, False
        try:
            yield
        finally:
            self.decode = decode

    @classmethod
    def from_export(cls, entry: Mapping[str, Any]) -> "SequenceLabel":
        head = super().from_export(entry)
        head.transitions.set_value(np.asarray(entry["transitions"], dtype="float32"))
        return head

    def complete_outputs(self, arrays: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """``tags``: the Viterbi paths of the exported emissions (``logits``)."""
        if "tags" in arrays:
            return arrays
        num_tags = len(self.label_names) if self.label_names else None
        tags = viterbi_decode_numpy(arrays["logits"], np.maximum(arrays["word_counts"], 1), self.transitions.numpy(),
                                    num_tags)
        return {**arrays, "tags": tags}

    # ------------------------------------------------------------ prediction
    def epoch_postprocess(self, post_inputs: Any = None, output_dir: Optional[str] = None) -> List[Dict[str, Any]]:
        results = super().epoch_postprocess(post_inputs, None)
        if output_dir is not None:
            write_json_lines(os.path.join(output_dir, "predictions.json"), [r["label"] for r in results])
        return results

    def _fill_id(self) -> int:
        if self.label_names and "O" in self.label_names:
            return self.label_names.index("O")
        return 0

    def _batch_results(self, arrays: Dict[str, np.ndarray]) -> List[Dict[str, Any]]:
        results = []
        for index, tags, kept, total in zip(arrays["example_ids"], arrays["tags"],
                                            arrays["word_counts"], arrays["num_words"]):
            labels = [int(t) for t in tags[:kept]] + [self._fill_id()] * int(total - kept)
            result = {"index": int(index), "label": labels}
            if self.label_names:
                result["tags"] = [self.label_names[t] for t in labels]
            results.append(result)
        return results

    def describe_input(self, result: Dict[str, Any], feature: Dict[str, Any]) -> Dict[str, Any]:
        """Adds ``tokens`` (the units tagged, one per tag, as sliced from the raw text) and
        ``spans`` (entities with their character offsets ``[start, end)`` in the raw text and
        their token range ``[token_start, token_end)``)."""
        text, word_spans = feature.get("text"), feature.get("word_spans")
        if text is None or word_spans is None or "tags" not in result:
            return result
        result["tokens"] = [text[start:end] for start, end in word_spans]
        result["spans"] = entity_spans(result["tags"], word_spans, text)
        return result


def entity_spans(tags: Sequence[str], word_spans: Sequence[Sequence[int]], text: str) -> List[Dict[str, Any]]:
    """Entities of a tag sequence (BIO/BIOES/IO, ``paddlepalm.metrics.chunks``) with their text and
    character offsets ``[start, end)`` in ``text``, and their token range, in order."""
    from paddlepalm.metrics import chunks

    spans = []
    for kind, first, last in sorted(chunks(list(tags)[:len(word_spans)]), key=lambda c: c[1]):
        start, end = word_spans[first][0], word_spans[last - 1][1]
        spans.append({"type": kind, "text": text[start:end], "start": int(start), "end": int(end),
                      "token_start": int(first), "token_end": int(last)})
    return spans
