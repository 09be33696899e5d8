"""Classification head: dropout + linear over the pooled ``[CLS]`` vector."""
from typing import Any, Dict, List

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from paddlepalm.head.base_head import Head


class Classify(Head):
    default_metrics = ("accuracy", "macro_f1")
    target_metric = "accuracy"
    servable = True

    def __init__(self, num_classes: int, input_dim: int, dropout_prob: float = 0.0,
                 param_initializer_range: float = 0.02, phase: str = "train"):
        super().__init__(phase)
        self.num_classes = int(num_classes)
        self.dropout = nn.Dropout(dropout_prob)
        self.classifier = nn.Linear(input_dim, num_classes, weight_attr=paddle.ParamAttr(
            initializer=nn.initializer.TruncatedNormal(std=param_initializer_range)))
        self.label_names = None

    @property
    def inputs_attrs(self):
        reader = {"label_ids": ([-1], "int64")} if self.phase == "train" else {}
        return {"reader": reader, "backbone": {"sentence_embedding": ([-1, -1], "float32")}}

    @property
    def outputs_attr(self):
        if self.phase == "train":
            return {"loss": ([1], "float32")}
        return {"logits": ([-1, self.num_classes], "float32"), "probs": ([-1, self.num_classes], "float32")}

    def forward(self, reader_inputs, backbone_outputs):
        logits = self.classifier(self.dropout(backbone_outputs["sentence_embedding"]))
        if self.phase == "train":
            return {"loss": F.cross_entropy(logits, reader_inputs["label_ids"].unsqueeze(-1))}
        return {"logits": logits, "probs": F.softmax(logits, axis=-1), "example_ids": reader_inputs["example_ids"]}

    def _batch_results(self, arrays: Dict[str, np.ndarray]) -> List[Dict[str, Any]]:
        return class_results(arrays, self.label_names)

    def export_args(self) -> Dict[str, Any]:
        return {"num_classes": self.num_classes, "input_dim": int(self.classifier.weight.shape[0])}


def class_results(arrays: Dict[str, np.ndarray], label_names=None) -> List[Dict[str, Any]]:
    """Per-example ``{"index", "label", "logits", "probs"}`` (+ ``"label_name"``) of a softmax head."""
    results = []
    for index, logits, probs in zip(arrays["example_ids"], arrays["logits"], arrays["probs"]):
        label = int(np.argmax(probs))
        result = {"index": int(index), "label": label, "logits": logits.tolist(), "probs": probs.tolist()}
        if label_names:
            result["label_name"] = label_names[label]
        results.append(result)
    return results
