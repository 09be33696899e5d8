"""ELMo's character encoder: character embeddings, a CNN of several filter widths
with max-pooling over the word, highway layers and a linear projection."""
from typing import Sequence, Tuple

import paddle
import paddle.nn.functional as F
from paddle import nn

from paddlepalm.reader.elmo_chars import MAX_WORD_LENGTH, NUM_CHAR_IDS
from paddlepalm.utils.pooling import max_over

# ELMo's published filters: (width, number of filters) for widths 1..7.
ELMO_FILTERS = ((1, 32), (2, 32), (3, 64), (4, 128), (5, 256), (6, 512), (7, 1024))


class Highway(nn.Layer):
    """``y = g * x + (1 - g) * relu(W_h x)`` with ``g = sigmoid(W_g x)``; one ``[D, 2D]`` linear per layer."""

    def __init__(self, dim: int, num_layers: int):
        super().__init__()
        self.dim = dim
        self.layers = nn.LayerList([nn.Linear(dim, 2 * dim) for _ in range(num_layers)])
        for layer in self.layers:  # carry the input through at first (gate bias 1)
            bias = paddle.zeros([2 * dim])
            bias[dim:] = 1.0
            layer.bias.set_value(bias)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for layer in self.layers:
            nonlinear, gate = paddle.split(layer(x), 2, axis=-1)
            gate = F.sigmoid(gate)
            x = gate * x + (1 - gate) * F.relu(nonlinear)
        return x


class CharCNN(nn.Layer):
    """``char_ids [B, L, 50]`` -> word vectors ``[B, L, output_dim]``.

    Parameters: ``char_embedding.weight [262, char_dim]`` (row 0 is padding),
    ``convs.<i>.weight/bias`` (one Conv1D per filter width), ``highway.layers.<i>.*``,
    ``projection.weight/bias``.
    """

    def __init__(self, output_dim: int, char_dim: int = 16, filters: Sequence[Tuple[int, int]] = ELMO_FILTERS,
                 num_highway: int = 2):
        super().__init__()
        self.char_embedding = nn.Embedding(NUM_CHAR_IDS, char_dim, padding_idx=0)
        self.convs = nn.LayerList([nn.Conv1D(char_dim, int(n), int(w)) for w, n in filters])
        total = sum(int(n) for _, n in filters)
        self.highway = Highway(total, num_highway)
        self.projection = nn.Linear(total, output_dim)

    def forward(self, char_ids: paddle.Tensor) -> paddle.Tensor:
        batch, steps, chars = char_ids.shape
        if chars != MAX_WORD_LENGTH:
            raise ValueError(f"char_ids must have {MAX_WORD_LENGTH} characters per word, got {chars}")
        x = self.char_embedding(char_ids.reshape([batch * steps, chars])).transpose([0, 2, 1])  # [N, C, 50]
        pooled = [F.relu(max_over(conv(x), -1)) for conv in self.convs]
        words = self.highway(paddle.concat(pooled, axis=-1))
        return self.projection(words).reshape([batch, steps, -1])
