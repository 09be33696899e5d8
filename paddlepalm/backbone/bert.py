"""BERT backbone on ``paddlenlp.transformers.BertModel``."""
from typing import Any, Mapping

from paddlenlp.transformers import BertConfig, BertModel

from paddlepalm.backbone.transformer import TransformerBackbone, transformer_kwargs


class BERT(TransformerBackbone):
    """BERT encoder. ``config`` holds the keys of a released ``bert_config.json``."""

    kind = "bert"

    def __init__(self, config: Mapping[str, Any], phase: str = "train"):
        model = BertModel(BertConfig(**transformer_kwargs(config)))
        super().__init__(model, config, phase)

