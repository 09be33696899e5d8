"""BiLSTM backbone: :class:`RNNEncoder` with LSTM cells."""
from paddlepalm.backbone.rnn import RNNEncoder


class BiLSTM(RNNEncoder):
    """Bidirectional LSTM encoder (``paddle.nn.LSTM``); config keys: see :class:`RNNEncoder`."""

    default_cell = "lstm"
