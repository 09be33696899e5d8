"""The released Paddle ELMo checkpoint (``baike_elmo_checkpoint``) -> our ELMo backbone.

Variable names come from the released code (PaddlePaddle/models,
``PaddleNLP/ELMo`` / ``legacy/pretrain_language_models/ELMo``: ``lm_model.py`` for
pretraining, ``LAC_demo/bilm.py`` for loading it by name)::

    embedding_para              [V, 512]     word embedding, shared by both directions
    {fw,bw}_layer{1,2}_gate_w   [in, 4H]     input-to-gates fc (no bias), fluid [in, out]
    lstmp_{k}.w_0               [512, 4H]    recurrent weight of ``dynamic_lstmp`` (from the projection r)
    lstmp_{k}.w_1               [H, 512]     projection weight, r = h @ w_1
    lstmp_{k}.b_0               [1, 4H]      gate bias (no peepholes)
    softmax_weight, softmax_bias [V, 512], [V]  output layer of the LM (not part of the backbone)

``k`` counts ``dynamic_lstmp`` calls in program order: forward layers 1, 2 are
``lstmp_0``, ``lstmp_1``, backward layers 1, 2 are ``lstmp_2``, ``lstmp_3``.
Paddle's LSTM kernels lay gates out as (candidate c, input i, forget f, output o)
(``lstmp_op.cc``: ``Bias = {b_c, b_i, b_f, b_o}``).

Arrays are first put under *canonical* names, per direction and layer in two
layouts: the released one (kept by our ``backbone.ELMo``: a plain copy) and
``paddle.nn.LSTM``'s (gates i, f, c, o, weights ``[4H, in]``) for a backbone built
on paddle's cells. They are then renamed to the backbone's parameter names with
:data:`ELMO_NAMES` or, when the backbone defines it, its ``released_elmo_names``
attribute of the same shape.
"""
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

DIRECTIONS = ("fw", "bw")
NUM_LAYERS = 2
ANCHOR = "embedding_para"

# canonical name -> our ELMo backbone's parameter name (``paddlepalm.backbone.ELMo`` with its
# ``utils.lstmp.BiLSTMP``, which keeps the released (c, i, f, o) layout: a plain copy).
# ``{direction}``/``{layer}`` are filled in for per-layer entries; names absent here are not loaded.
ELMO_NAMES: Dict[str, Optional[str]] = {
    "word_embedding": "word_embedding.weight",
    "{direction}.{layer}.input_weight": "lstm.{direction}.{layer}.input_weight",
    "{direction}.{layer}.recurrent_weight": "lstm.{direction}.{layer}.recurrent_weight",
    "{direction}.{layer}.bias": "lstm.{direction}.{layer}.bias",
    "{direction}.{layer}.projection_weight": "lstm.{direction}.{layer}.projection_weight",
}


def _lstmp_index(direction: str, layer: int) -> int:
    return DIRECTIONS.index(direction) * NUM_LAYERS + layer


def _cifo_to_ifco(array: np.ndarray, axis: int) -> np.ndarray:
    c, i, f, o = np.split(array, 4, axis=axis)
    return np.concatenate([i, f, c, o], axis=axis)


def _ifco_to_cifo(array: np.ndarray, axis: int) -> np.ndarray:
    i, f, c, o = np.split(array, 4, axis=axis)
    return np.concatenate([c, i, f, o], axis=axis)


def released_to_canonical(released: Mapping[str, np.ndarray]) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """(arrays under canonical names, canonical name -> the released name it came from).

    Per direction and layer two layouts are offered: the released one
    (``input_weight [in, 4H]``, ``recurrent_weight [P, 4H]``, ``bias [4H]``,
    ``projection_weight [H, P]``, gates c, i, f, o) and ``paddle.nn.LSTM``'s
    (``weight_ih [4H, in]``, ``weight_hh [4H, P]``, ``bias_ih``, ``bias_hh`` = 0,
    ``weight_ho [H, P]``, gates i, f, c, o).
    """
    out, origin = {}, {}

    def put(key, source, array):
        out[key] = array
        origin[key] = source

    if ANCHOR in released:
        put("word_embedding", ANCHOR, np.asarray(released[ANCHOR]))
    for name in ("softmax_weight", "softmax_bias"):
        if name in released:
            put(name, name, np.asarray(released[name]))
    for direction in DIRECTIONS:
        for layer in range(NUM_LAYERS):
            key = f"{direction}.{layer}."
            gate_w = f"{direction}_layer{layer + 1}_gate_w"
            lstmp = f"lstmp_{_lstmp_index(direction, layer)}"
            if gate_w in released:
                array = np.asarray(released[gate_w])
                put(key + "input_weight", gate_w, array)
                put(key + "weight_ih", gate_w, _cifo_to_ifco(array, axis=1).T.copy())
            if lstmp + ".w_0" in released:
                array = np.asarray(released[lstmp + ".w_0"])
                put(key + "recurrent_weight", lstmp + ".w_0", array)
                put(key + "weight_hh", lstmp + ".w_0", _cifo_to_ifco(array, axis=1).T.copy())
            if lstmp + ".b_0" in released:
                bias = np.asarray(released[lstmp + ".b_0"]).reshape(-1)
                put(key + "bias", lstmp + ".b_0", bias)
                put(key + "bias_ih", lstmp + ".b_0", _cifo_to_ifco(bias, axis=0))
                put(key + "bias_hh", lstmp + ".b_0", np.zeros_like(bias))
            if lstmp + ".w_1" in released:
                array = np.asarray(released[lstmp + ".w_1"])
                put(key + "projection_weight", lstmp + ".w_1", array)
                put(key + "weight_ho", lstmp + ".w_1", array)
    return out, origin


def canonical_to_released(canonical: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The inverse (bias_ih + bias_hh folded into one bias): used to write test checkpoints."""
    out = {}
    if "word_embedding" in canonical:
        out[ANCHOR] = np.asarray(canonical["word_embedding"])
    for name in ("softmax_weight", "softmax_bias"):
        if name in canonical:
            out[name] = np.asarray(canonical[name])
    for direction in DIRECTIONS:
        for layer in range(NUM_LAYERS):
            key = f"{direction}.{layer}."
            lstmp = f"lstmp_{_lstmp_index(direction, layer)}"
            if key + "weight_ih" in canonical:
                out[f"{direction}_layer{layer + 1}_gate_w"] = _ifco_to_cifo(canonical[key + "weight_ih"].T, axis=1)
            if key + "weight_hh" in canonical:
                out[lstmp + ".w_0"] = _ifco_to_cifo(canonical[key + "weight_hh"].T, axis=1)
            if key + "bias_ih" in canonical:
                bias = canonical[key + "bias_ih"] + canonical.get(key + "bias_hh", 0)
                out[lstmp + ".b_0"] = _ifco_to_cifo(bias, axis=0).reshape(1, -1)
            if key + "weight_ho" in canonical:
                out[lstmp + ".w_1"] = np.asarray(canonical[key + "weight_ho"])
    return out


def _rename(canonical_name: str, names: Mapping[str, Optional[str]]) -> Optional[str]:
    if canonical_name in names:
        return names[canonical_name]
    parts = canonical_name.split(".", 2)
    if len(parts) != 3:
        return None
    direction, layer, leaf = parts
    template = names.get("{direction}.{layer}." + leaf)
    return None if template is None else template.format(direction=direction, layer=layer)


def map_elmo_state(released: Mapping[str, np.ndarray], names: Optional[Mapping[str, Optional[str]]] = None):
    """(state keyed by our ELMo parameter names, released names that went nowhere)."""
    names = ELMO_NAMES if names is None else names
    canonical, origin = released_to_canonical(released)
    state, used = {}, set()
    for name, array in canonical.items():
        ours = _rename(name, names)
        if ours is not None:
            state[ours] = array
            used.add(origin[name])
    return state, sorted(set(released) - used)
