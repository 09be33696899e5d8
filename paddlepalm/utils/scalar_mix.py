"""ELMo's scalar mix: ``gamma * sum_k softmax(w)_k * h_k`` over the layers of a biLM."""
from typing import Optional

import paddle
import paddle.nn.functional as F
from paddle import nn


class ScalarMix(nn.Layer):
    """Parameters ``weights [K]`` (start at 0: equal mix) and ``gamma [1]`` (start at 1).

    With ``layer_norm``, each layer is normalized over its masked positions and
    features first (as in the ELMo paper's optional variant).
    """

    def __init__(self, num_layers: int, layer_norm: bool = False):
        super().__init__()
        self.num_layers, self.layer_norm = num_layers, layer_norm
        self.weights = self.create_parameter([num_layers], default_initializer=nn.initializer.Constant(0.0))
        self.gamma = self.create_parameter([1], default_initializer=nn.initializer.Constant(1.0))

    def normalized_weights(self) -> paddle.Tensor:
        return F.softmax(self.weights)

    def forward(self, layers: paddle.Tensor, mask: Optional[paddle.Tensor] = None) -> paddle.Tensor:
        """``layers [K, B, T, D]``, ``mask [B, T]`` (for layer norm) -> ``[B, T, D]``."""
        if layers.shape[0] != self.num_layers:
            raise ValueError(f"expected {self.num_layers} layers, got {layers.shape[0]}")
        if self.layer_norm:
            layers = _masked_layer_norm(layers, mask)
        weights = self.normalized_weights().reshape([-1, 1, 1, 1])
        return self.gamma * (weights * layers).sum(axis=0)


def _masked_layer_norm(layers: paddle.Tensor, mask: Optional[paddle.Tensor]) -> paddle.Tensor:
    if mask is None:
        mask = paddle.ones(layers.shape[1:3], dtype=layers.dtype)
    m = mask.astype(layers.dtype).unsqueeze(0).unsqueeze(-1)  # [1, B, T, 1]
    count = m.sum(axis=[1, 2, 3], keepdim=True) * layers.shape[-1]
    mean = (layers * m).sum(axis=[1, 2, 3], keepdim=True) / count
    var = (((layers - mean) * m) ** 2).sum(axis=[1, 2, 3], keepdim=True) / count
    return (layers - mean) / paddle.sqrt(var + 1e-12)
