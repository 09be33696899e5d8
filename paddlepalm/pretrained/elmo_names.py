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
(``lstmp_op.cc``: ``Bias = {b_c, b_i, b_f, b_o}``); ``paddle.nn.LSTM`` and our
cells use (i, f, c, o), so gate blocks are reordered and fc weights transposed to
``[4H, in]``.

Every array is first put under a *canonical* name in ``paddle.nn.LSTMCell``
convention (``{direction}.{layer}.weight_ih/weight_hh/bias_ih/bias_hh/weight_ho``,
layer from 0), then renamed to the backbone's own parameter names with
:data:`ELMO_NAMES` or, when the backbone class defines it, its
``released_elmo_names`` attribute of the same shape.
"""
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

DIRECTIONS = ("fw", "bw")
NUM_LAYERS = 2
ANCHOR = "embedding_para"

# canonical name -> our ELMo backbone's parameter name. ``{direction}``/``{layer}``
# are filled in for the per-layer entries. A value of None drops that array.
ELMO_NAMES: Dict[str, Optional[str]] = {
    "word_embedding": "word_embedding.weight",
    "{direction}.{layer}.weight_ih": "{direction}_lstm.{layer}.weight_ih",
    "{direction}.{layer}.weight_hh": "{direction}_lstm.{layer}.weight_hh",
    "{direction}.{layer}.bias_ih": "{direction}_lstm.{layer}.bias_ih",
    "{direction}.{layer}.bias_hh": "{direction}_lstm.{layer}.bias_hh",
    "{direction}.{layer}.weight_ho": "{direction}_lstm.{layer}.weight_ho",
    "softmax_weight": None,
    "softmax_bias": None,
}


def _lstmp_index(direction: str, layer: int) -> int:
    return DIRECTIONS.index(direction) * NUM_LAYERS + layer


def _cifo_to_ifco(array: np.ndarray, axis: int) -> np.ndarray:
    c, i, f, o = np.split(array, 4, axis=axis)
    return np.concatenate([i, f, c, o], axis=axis)


def _ifco_to_cifo(array: np.ndarray, axis: int) -> np.ndarray:
    i, f, c, o = np.split(array, 4, axis=axis)
    return np.concatenate([c, i, f, o], axis=axis)


def released_to_canonical(released: Mapping[str, np.ndarray]) -> Tuple[Dict[str, np.ndarray], List[str]]:
    """(arrays under canonical names, released names left over)."""
    used, out = set(), {}

    def take(name):
        used.add(name)
        return np.asarray(released[name])

    if ANCHOR in released:
        out["word_embedding"] = take(ANCHOR)
    for name in ("softmax_weight", "softmax_bias"):
        if name in released:
            out[name] = take(name)
    for direction in DIRECTIONS:
        for layer in range(NUM_LAYERS):
            key = f"{direction}.{layer}."
            gate_w = f"{direction}_layer{layer + 1}_gate_w"
            lstmp = f"lstmp_{_lstmp_index(direction, layer)}"
            if gate_w in released:
                out[key + "weight_ih"] = _cifo_to_ifco(take(gate_w), axis=1).T.copy()
            if lstmp + ".w_0" in released:
                out[key + "weight_hh"] = _cifo_to_ifco(take(lstmp + ".w_0"), axis=1).T.copy()
            if lstmp + ".b_0" in released:
                bias = _cifo_to_ifco(take(lstmp + ".b_0").reshape(-1), axis=0)
                out[key + "bias_ih"] = bias
                out[key + "bias_hh"] = np.zeros_like(bias)
            if lstmp + ".w_1" in released:
                out[key + "weight_ho"] = take(lstmp + ".w_1")
    return out, sorted(set(released) - used)


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
    """(state keyed by our ELMo parameter names, names that were not used: released names
    with no canonical place, and canonical names the table maps to nothing)."""
    names = ELMO_NAMES if names is None else names
    canonical, leftover = released_to_canonical(released)
    state = {}
    for name, array in canonical.items():
        ours = _rename(name, names)
        if ours is None:
            leftover.append(name)
        else:
            state[ours] = array
    return state, leftover
