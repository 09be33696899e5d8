"""Masked-LM head: transform + layer norm + output layer tied to the backbone's token embeddings
(or, with ``tie_embeddings=False``, an output layer of its own)."""
from typing import Any, Dict, List, Optional

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from paddlepalm.head.base_head import Head


class MaskLM(Head):
    """Predicts the original token at every ``mask_pos`` of the batch.

    The output layer is the backbone's ``embedding_table`` (transposed) plus a bias.
    ALBERT and ELECTRA embed tokens in ``embedding_size`` < ``input_dim``: pass
    ``embedding_size`` and the transform projects ``input_dim -> embedding_size``
    (as ALBERT's own MLM head does). ``tie_embeddings=False``: the output layer is a
    ``[vocab_size, embedding_size]`` weight of the head's own, so the softmax over the
    vocabulary does not move the token embeddings that other tasks share (the masked LM
    then reaches them only through its inputs; docs/results.md, auxiliary masked LM).
    Loss: mean cross-entropy over masked positions.
    Prediction: the top token per masked position, with the label and the
    position, grouped per example.
    """

    def __init__(self, input_dim: int, vocab_size: int, hidden_act: str = "gelu", dropout_prob: float = 0.0,
                 param_initializer_range: float = 0.02, phase: str = "train", embedding_size: Optional[int] = None,
                 tie_embeddings: bool = True):
        super().__init__(phase)
        self.vocab_size = int(vocab_size)
        self.embedding_size = int(embedding_size or input_dim)
        self.tie_embeddings = bool(tie_embeddings)
        init = paddle.ParamAttr(initializer=nn.initializer.TruncatedNormal(std=param_initializer_range))
        self.dropout = nn.Dropout(dropout_prob)
        self.transform = nn.Linear(input_dim, self.embedding_size, weight_attr=init)
        self.activation = getattr(F, hidden_act)
        self.layer_norm = nn.LayerNorm(self.embedding_size)
        self.output_bias = self.create_parameter([self.vocab_size], is_bias=True,
                                                 default_initializer=nn.initializer.Constant(0.0))
        self.output_weight = None if self.tie_embeddings else self.create_parameter(
            [self.vocab_size, self.embedding_size],
            default_initializer=nn.initializer.TruncatedNormal(std=param_initializer_range))

    @property
    def inputs_attrs(self):
        reader = {"mask_pos": ([-1], "int64"), "mask_label": ([-1], "int64")}
        backbone = {"encoder_outputs": ([-1, -1, -1], "float32")}
        if self.tie_embeddings:
            backbone["embedding_table"] = ([-1, -1], "float32")
        return {"reader": reader, "backbone": backbone}

    @property
    def outputs_attr(self):
        if self.phase == "train":
            return {"loss": ([1], "float32")}
        return {"pred_ids": ([-1], "int64")}

    def logits(self, hidden: paddle.Tensor, mask_pos: paddle.Tensor, table: Optional[paddle.Tensor]) -> paddle.Tensor:
        """Vocabulary logits ``[N, V]`` at the flat positions ``mask_pos`` of ``hidden [B, L, H]``."""
        if self.output_weight is not None:
            table = self.output_weight
        elif tuple(table.shape) != (self.vocab_size, self.embedding_size):
            raise ValueError(f"MaskLM expects an embedding_table of shape {(self.vocab_size, self.embedding_size)}, "
                             f"the backbone gives {tuple(table.shape)}: set vocab_size and embedding_size to match")
        picked = paddle.gather(hidden.reshape([-1, hidden.shape[-1]]), mask_pos)
        transformed = self.layer_norm(self.activation(self.transform(self.dropout(picked))))
        return paddle.matmul(transformed, table, transpose_y=True) + self.output_bias

    def forward(self, reader_inputs, backbone_outputs):
        logits = self.logits(backbone_outputs["encoder_outputs"], reader_inputs["mask_pos"],
                             backbone_outputs.get("embedding_table"))
        if self.phase == "train":
            return {"loss": F.cross_entropy(logits, reader_inputs["mask_label"].unsqueeze(-1))}
        width = backbone_outputs["encoder_outputs"].shape[1]
        return {"pred_ids": paddle.argmax(logits, axis=-1), "mask_pos": reader_inputs["mask_pos"],
                "mask_label": reader_inputs["mask_label"], "example_ids": reader_inputs["example_ids"],
                "width": paddle.full([1], width, dtype="int64")}

    def _batch_results(self, arrays: Dict[str, np.ndarray]) -> List[Dict[str, Any]]:
        width = int(arrays["width"][0])
        rows = arrays["mask_pos"] // width
        results = []
        for row, index in enumerate(arrays["example_ids"]):
            picked = rows == row
            results.append({"index": int(index), "positions": (arrays["mask_pos"][picked] % width).tolist(),
                            "labels": arrays["mask_label"][picked].tolist(),
                            "predictions": arrays["pred_ids"][picked].tolist()})
        return results
