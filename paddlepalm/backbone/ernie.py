"""ERNIE backbone on ``paddlenlp.transformers.ErnieModel``."""
from typing import Any, Mapping

from paddlenlp.transformers import ErnieConfig, ErnieModel

from paddlepalm.backbone.transformer import TransformerBackbone, transformer_kwargs


class ERNIE(TransformerBackbone):
    """ERNIE 1.0/2.0 encoder. ``config`` holds the keys of a released ``ernie_config.json``."""

    kind = "ernie"
    zero_if_missing = ("model.embeddings.task_type_embeddings.weight",)

    def __init__(self, config: Mapping[str, Any], phase: str = "train"):
        kwargs = transformer_kwargs(config)
        # PALM's default: ERNIE 2.0 releases carry a task_embedding table (ERNIE 1.0 ones do not:
        # load_pretrain then zeroes the table, so the model computes what the release computed)
        self.uses_task_ids = bool(config.get("use_task_id", config.get("use_task_emb", True)))
        model = ErnieModel(ErnieConfig(
            use_task_id=self.uses_task_ids,
            task_type_vocab_size=int(config.get("task_type_vocab_size", 3)),
            **kwargs,
        ))
        super().__init__(model, config, phase)


    def _encode(self, inputs, mask):
        task_ids = inputs.get("task_ids") if self.uses_task_ids else None
        return self.model(
            input_ids=inputs["token_ids"],
            token_type_ids=inputs["segment_ids"],
            position_ids=inputs["position_ids"],
            attention_mask=mask,
            task_type_ids=task_ids,
        )
