"""Sentence-pair matching head: pointwise softmax or pairwise hinge on a sigmoid score."""
from typing import Any, Dict, List, Literal, get_args

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from paddlepalm.head.base_head import Head
from paddlepalm.head.cls import class_results

Strategy = Literal["pointwise", "pairwise"]
STRATEGIES = get_args(Strategy)


class Match(Head):
    """Over ``sentence_pair_embedding`` (the pooled ``[CLS]`` of ``a [SEP] b``).

    * ``pointwise``: ``num_classes``-way softmax cross-entropy; predictions
      ``{"index", "label", "logits", "probs"}``.
    * ``pairwise``: one score ``s = sigmoid(w·h + b)`` shared by both pairs; the loss
      is ``mean(max(0, margin - s(a, b) + s(a, b_neg)))``. The reader puts the
      positive pairs in the first half of the batch and the negative pairs in the
      second. Predictions ``{"index", "score"}`` (higher means a better match).
    """

    default_metrics = ("accuracy", "macro_f1")
    target_metric = "accuracy"
    servable = True

    def __init__(self, num_classes: int, input_dim: int, dropout_prob: float = 0.0,
                 param_initializer_range: float = 0.02, learning_strategy: Strategy = "pointwise",
                 margin: float = 0.5, phase: str = "train"):
        super().__init__(phase)
        if learning_strategy not in STRATEGIES:
            raise ValueError(f"learning_strategy must be one of {STRATEGIES}, got {learning_strategy!r}")
        self.learning_strategy = learning_strategy
        self.num_classes = int(num_classes) if learning_strategy == "pointwise" else 1
        self.margin = float(margin)
        self.dropout = nn.Dropout(dropout_prob)
        self.classifier = nn.Linear(input_dim, self.num_classes, weight_attr=paddle.ParamAttr(
            initializer=nn.initializer.TruncatedNormal(std=param_initializer_range)))
        self.label_names = None

    @property
    def inputs_attrs(self):
        reader = {}
        if self.phase == "train" and self.learning_strategy == "pointwise":
            reader["label_ids"] = ([-1], "int64")
        return {"reader": reader, "backbone": {"sentence_pair_embedding": ([-1, -1], "float32")}}

    @property
    def outputs_attr(self):
        if self.phase == "train":
            return {"loss": ([1], "float32")}
        if self.learning_strategy == "pairwise":
            return {"scores": ([-1], "float32")}
        return {"logits": ([-1, self.num_classes], "float32"), "probs": ([-1, self.num_classes], "float32")}

    def forward(self, reader_inputs, backbone_outputs):
        logits = self.classifier(self.dropout(backbone_outputs["sentence_pair_embedding"]))
        if self.learning_strategy == "pairwise":
            scores = F.sigmoid(logits.squeeze(-1))
            if self.phase == "train":
                return {"loss": pairwise_hinge_loss(scores, self.margin)}
            return {"scores": scores, "example_ids": reader_inputs["example_ids"]}
        if self.phase == "train":
            return {"loss": F.cross_entropy(logits, reader_inputs["label_ids"].unsqueeze(-1))}
        return {"logits": logits, "probs": F.softmax(logits, axis=-1), "example_ids": reader_inputs["example_ids"]}

    def _batch_results(self, arrays: Dict[str, np.ndarray]) -> List[Dict[str, Any]]:
        if self.learning_strategy == "pairwise":
            return [{"index": int(i), "score": float(s)} for i, s in zip(arrays["example_ids"], arrays["scores"])]
        return class_results(arrays, self.label_names)

    def export_args(self) -> Dict[str, Any]:
        return {"num_classes": self.num_classes if self.learning_strategy == "pointwise" else 2,
                "input_dim": int(self.classifier.weight.shape[0]), "learning_strategy": self.learning_strategy}


def pairwise_hinge_loss(scores: paddle.Tensor, margin: float) -> paddle.Tensor:
    """``mean(max(0, margin - pos + neg))`` where ``scores = [pos..., neg...]``."""
    if scores.shape[0] % 2:
        raise ValueError(f"pairwise batch must hold positive and negative pairs (even rows), got {scores.shape[0]}")
    positive, negative = paddle.split(scores, 2, axis=0)
    return F.relu(margin - positive + negative).mean()
