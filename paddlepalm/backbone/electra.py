"""ELECTRA backbone (the discriminator encoder) on ``paddlenlp.transformers.ElectraModel``.

``embedding_size`` E may be smaller than ``hidden_size`` H (ELECTRA-small: 128 vs
256); paddlenlp then projects embeddings to H. ``embedding_table`` is the token
embedding matrix ``[vocab_size, E]``: a head tied to it must project to E first
(``MaskLM(..., embedding_size=E)``). The generator used in pretraining lives in
``head.ReplacedTokenDetection`` and shares this token embedding matrix.

paddlenlp's ``ElectraModel`` has no pooler, and it takes its attention mask as an
additive bias (a 0/1 mask would be added as is). We pass the additive form and
pool ``[CLS]`` with a dense + tanh layer of our own, as BERT and ERNIE do.
"""
from typing import Any, Dict, Mapping

import paddle
from paddle import nn
from paddlenlp.transformers import ElectraConfig, ElectraModel

from paddlepalm.backbone.transformer import TransformerBackbone, transformer_kwargs


def electra_kwargs(config: Mapping[str, Any]) -> Dict[str, Any]:
    """Keys of a released ELECTRA config (``embedding_size`` defaults to ``hidden_size``)."""
    kwargs = transformer_kwargs(config)
    kwargs.pop("pad_token_id")
    kwargs["embedding_size"] = int(config.get("embedding_size", kwargs["hidden_size"]))
    kwargs["layer_norm_eps"] = float(config.get("layer_norm_eps", 1e-12))
    return kwargs


def additive_attention_mask(mask: paddle.Tensor) -> paddle.Tensor:
    """``[B, L]`` 1/0 keep-mask -> ``[B, 1, 1, L]`` bias of 0 / -1e4."""
    return ((1.0 - mask.astype("float32")) * -1e4).unsqueeze([1, 2])


class ELECTRA(TransformerBackbone):
    """ELECTRA discriminator encoder. ``config`` holds the keys of a released ELECTRA config."""

    kind = "electra"

    def __init__(self, config: Mapping[str, Any], phase: str = "train"):
        kwargs = electra_kwargs(config)
        model = ElectraModel(ElectraConfig(**kwargs))
        super().__init__(model, config, phase)
        hidden = kwargs["hidden_size"]
        self.pooler = nn.Linear(hidden, hidden, weight_attr=paddle.ParamAttr(
            initializer=nn.initializer.TruncatedNormal(std=kwargs["initializer_range"])))

    def _encode(self, inputs, mask):
        sequence = self.model(
            input_ids=inputs["token_ids"],
            token_type_ids=inputs["segment_ids"],
            position_ids=inputs["position_ids"],
            attention_mask=additive_attention_mask(mask),
        )
        return sequence, paddle.tanh(self.pooler(sequence[:, 0]))
