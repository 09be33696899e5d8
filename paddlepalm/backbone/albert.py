"""ALBERT backbone on ``paddlenlp.transformers.AlbertModel``.

ALBERT factorizes the embedding (``embedding_size`` E, usually smaller than
``hidden_size`` H, projected to H before the encoder) and shares layers across
depth: ``num_hidden_layers`` layer applications run through
``num_hidden_groups`` groups of ``inner_group_num`` layers each.

``embedding_table`` is the token embedding matrix ``[vocab_size, E]``: a head that
ties its output layer to it (``MaskLM``) must project its hidden states to E first
(``MaskLM(..., embedding_size=E)``).
"""
from typing import Any, Mapping

from paddlenlp.transformers import AlbertConfig, AlbertModel

from paddlepalm.backbone.transformer import TransformerBackbone, transformer_kwargs


def albert_kwargs(config: Mapping[str, Any]):
    """Keys of a released ALBERT ``albert_config.json`` (google-research or albert_zh)."""
    kwargs = transformer_kwargs(config)
    groups = int(config.get("num_hidden_groups", 1))
    if kwargs["num_hidden_layers"] % groups:
        raise ValueError(f"num_hidden_layers ({kwargs['num_hidden_layers']}) must be a multiple of "
                         f"num_hidden_groups ({groups})")
    kwargs.update(
        embedding_size=int(config.get("embedding_size", 128)),
        num_hidden_groups=groups,
        inner_group_num=int(config.get("inner_group_num", 1)),
        layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)),
    )
    return kwargs


class ALBERT(TransformerBackbone):
    """ALBERT encoder. ``config`` holds the keys of a released ``albert_config.json``."""

    kind = "albert"

    def __init__(self, config: Mapping[str, Any], phase: str = "train"):
        model = AlbertModel(AlbertConfig(**albert_kwargs(config)))
        super().__init__(model, config, phase)

    def layer_depth(self, param_name: str) -> int:
        """Not defined: one group's parameters serve several depths (every depth in the released
        models), so no learning rate per layer exists to decay."""
        raise ValueError("layer-wise learning-rate decay is not defined for ALBERT: its layers share one set of "
                         "parameters across depth; use backbone_lr_multiplier for the whole encoder instead")

