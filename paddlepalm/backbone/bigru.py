"""BiGRU backbone: :class:`RNNEncoder` with GRU cells (the seed's LAC-style tagger)."""
from paddlepalm.backbone.rnn import RNNEncoder


class BiGRU(RNNEncoder):
    """Bidirectional GRU encoder (``paddle.nn.GRU``); config keys: see :class:`RNNEncoder`."""

    default_cell = "gru"
