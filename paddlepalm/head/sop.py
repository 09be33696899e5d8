"""ALBERT pretraining: sentence-order prediction plus masked LM."""
from typing import Any, Dict, List, Optional

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from paddlepalm.head.base_head import Head
from paddlepalm.head.mask_lm import MaskLM


class SentenceOrder(Head):
    """Loss ``MLM + sop_weight * SOP``: the MLM of :class:`MaskLM` (n-gram / whole-word
    masks come from the reader) and a 2-way classifier over ``sentence_embedding``
    telling whether the two segments are in their original order (0) or swapped (1),
    as made by ``reader.SentenceOrderReader``."""

    def __init__(self, input_dim: int, vocab_size: int, hidden_act: str = "gelu", dropout_prob: float = 0.0,
                 param_initializer_range: float = 0.02, phase: str = "train", embedding_size: Optional[int] = None,
                 sop_weight: float = 1.0):
        super().__init__(phase)
        self.mlm = MaskLM(input_dim, vocab_size, hidden_act, dropout_prob, param_initializer_range, phase,
                          embedding_size)
        self.dropout = nn.Dropout(dropout_prob)
        self.classifier = nn.Linear(input_dim, 2, weight_attr=paddle.ParamAttr(
            initializer=nn.initializer.TruncatedNormal(std=param_initializer_range)))
        self.sop_weight = float(sop_weight)

    @property
    def inputs_attrs(self):
        attrs = self.mlm.inputs_attrs
        attrs["reader"]["label_ids"] = ([-1], "int64")
        attrs["backbone"]["sentence_embedding"] = ([-1, -1], "float32")
        return attrs

    @property
    def outputs_attr(self):
        if self.phase == "train":
            return {"loss": ([1], "float32"), "mlm_loss": ([1], "float32"), "sop_loss": ([1], "float32")}
        return {"probs": ([-1, 2], "float32")}

    def order_logits(self, backbone_outputs: Dict[str, paddle.Tensor]) -> paddle.Tensor:
        """``[B, 2]`` logits: the segments in their original order (0) or swapped (1)."""
        return self.classifier(self.dropout(backbone_outputs["sentence_embedding"]))

    def forward(self, reader_inputs, backbone_outputs):
        order_logits = self.order_logits(backbone_outputs)
        if self.phase != "train":
            return {"probs": F.softmax(order_logits, axis=-1), "example_ids": reader_inputs["example_ids"]}
        mlm_loss = self.mlm(reader_inputs, backbone_outputs)["loss"]
        sop_loss = F.cross_entropy(order_logits, reader_inputs["label_ids"].unsqueeze(-1))
        return {"loss": mlm_loss + self.sop_weight * sop_loss, "mlm_loss": mlm_loss, "sop_loss": sop_loss}

    def _batch_results(self, arrays: Dict[str, np.ndarray]) -> List[Dict[str, Any]]:
        return [{"index": int(index), "label": int(np.argmax(probs)), "probs": probs.tolist()}
                for index, probs in zip(arrays["example_ids"], arrays["probs"])]
