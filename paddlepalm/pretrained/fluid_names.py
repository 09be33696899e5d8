"""Variable names of the released fluid ERNIE/BERT checkpoints <-> our state-dict names.

The fluid programs (PALM's ``backbone/ernie.py``/``bert.py`` and
``backbone/utils/transformer.py``, ERNIE 1.0, Paddle BERT) named their
parameters ``word_embedding``, ``encoder_layer_3_ffn_fc_0.w_0`` and so on. Our
backbones wrap paddlenlp's ``ErnieModel``/``BertModel`` as ``self.model``.

No transpose is needed: ``fluid.layers.fc`` stores its weight as ``[in, out]``
and computes ``x @ W``, exactly like ``paddle.nn.Linear``; the post-norm layout
(``dan``: dropout, residual add, layer norm) is that of paddlenlp's
``TransformerEncoderLayer(normalize_before=False)``: ``post_att_layer_norm`` is
``norm1`` and ``post_ffn_layer_norm`` is ``norm2``.
"""
import re
from typing import Dict, Optional

_FIXED = {
    "word_embedding": "model.embeddings.word_embeddings.weight",
    "pos_embedding": "model.embeddings.position_embeddings.weight",
    "sent_embedding": "model.embeddings.token_type_embeddings.weight",
    "task_embedding": "model.embeddings.task_type_embeddings.weight",
    "pre_encoder_layer_norm_scale": "model.embeddings.layer_norm.weight",
    "pre_encoder_layer_norm_bias": "model.embeddings.layer_norm.bias",
    "pooled_fc.w_0": "model.pooler.dense.weight",
    "pooled_fc.b_0": "model.pooler.dense.bias",
}
# per-layer part after ``encoder_layer_{i}_`` -> part after ``model.encoder.layers.{i}.``
_LAYER = {
    "multi_head_att_query_fc.w_0": "self_attn.q_proj.weight",
    "multi_head_att_query_fc.b_0": "self_attn.q_proj.bias",
    "multi_head_att_key_fc.w_0": "self_attn.k_proj.weight",
    "multi_head_att_key_fc.b_0": "self_attn.k_proj.bias",
    "multi_head_att_value_fc.w_0": "self_attn.v_proj.weight",
    "multi_head_att_value_fc.b_0": "self_attn.v_proj.bias",
    "multi_head_att_output_fc.w_0": "self_attn.out_proj.weight",
    "multi_head_att_output_fc.b_0": "self_attn.out_proj.bias",
    "post_att_layer_norm_scale": "norm1.weight",
    "post_att_layer_norm_bias": "norm1.bias",
    "ffn_fc_0.w_0": "linear1.weight",
    "ffn_fc_0.b_0": "linear1.bias",
    "ffn_fc_1.w_0": "linear2.weight",
    "ffn_fc_1.b_0": "linear2.bias",
    "post_ffn_layer_norm_scale": "norm2.weight",
    "post_ffn_layer_norm_bias": "norm2.bias",
}
_FIXED_BACK = {v: k for k, v in _FIXED.items()}
_LAYER_BACK = {v: k for k, v in _LAYER.items()}
_FLUID_LAYER = re.compile(r"^encoder_layer_(\d+)_(.+)$")
_OUR_LAYER = re.compile(r"^model\.encoder\.layers\.(\d+)\.(.+)$")

# A name every released transformer checkpoint has; used to detect the format and a scope prefix.
ANCHOR = "word_embedding"


def fluid_to_ours(name: str) -> Optional[str]:
    """Our state-dict name for a released fluid variable, or None if it is not a backbone weight."""
    if name in _FIXED:
        return _FIXED[name]
    match = _FLUID_LAYER.match(name)
    if match and match.group(2) in _LAYER:
        return f"model.encoder.layers.{match.group(1)}.{_LAYER[match.group(2)]}"
    return None


def ours_to_fluid(name: str) -> Optional[str]:
    """The released fluid variable name of one of our backbone parameters (for writing that format)."""
    if name in _FIXED_BACK:
        return _FIXED_BACK[name]
    match = _OUR_LAYER.match(name)
    if match and match.group(2) in _LAYER_BACK:
        return f"encoder_layer_{match.group(1)}_{_LAYER_BACK[match.group(2)]}"
    return None


def scope_prefix(names) -> str:
    """PALM prefixed variables with a scope (``__paddlepalm_`` in its converted files); find it."""
    for name in names:
        if name.endswith(ANCHOR):
            return name[: -len(ANCHOR)]
    return ""


def map_fluid_state(released: Dict[str, object]):
    """(state keyed by our names, released names that are not backbone weights)."""
    prefix = scope_prefix(released)
    state, unexpected = {}, []
    for name, value in released.items():
        ours = fluid_to_ours(name[len(prefix):]) if name.startswith(prefix) else None
        if ours is None:
            unexpected.append(name)
        else:
            state[ours] = value
    return state, unexpected
