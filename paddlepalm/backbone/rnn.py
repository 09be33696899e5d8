"""Recurrent encoder: word embeddings (+ a character CNN, + pretrained ELMo features) -> a
multi-layer bidirectional LSTM or GRU -> optional self-attention. :class:`BiLSTM` and
:class:`BiGRU` are this class with the cell fixed."""
import re
from typing import Any, Dict, Mapping, Optional

import paddle
from paddle import nn

from paddlepalm.backbone.base_backbone import Attrs, Backbone
from paddlepalm.reader.elmo_chars import MAX_WORD_LENGTH
from paddlepalm.utils.char_cnn import CharCNN
from paddlepalm.utils.pooling import max_over

CELLS = ("lstm", "gru")
# ELMo's filter widths 1-4, narrower: a word-level tagger's character features, not a language model's
CHAR_FILTERS = ((1, 32), (2, 32), (3, 64), (4, 64))
RNN_KEYS = ("cell", "vocab_size", "embedding_size", "hidden_size", "num_layers", "dropout", "char_size",
            "char_embedding_dim", "char_filters", "num_highway", "attention_heads", "elmo", "elmo_frozen")

ONNX_REFUSAL = ("paddle2onnx converts Paddle's rnn operator without its sequence_length input, so the backward "
                "direction of every padded row reads the padding (measured with paddle2onnx 2.1.0 on a 2-layer "
                "toy model: padded rows off by 0.25 to 0.6, full-length rows equal to 1e-7); "
                "export format='paddle' instead")


def rnn_kwargs(config: Mapping[str, Any], cell: Optional[str] = None) -> Dict[str, Any]:
    """The settings of a recurrent backbone from its config keys (defaults for the optional ones)."""
    if "vocab_size" not in config:
        raise KeyError(f"recurrent backbone config needs 'vocab_size'; got keys {sorted(config)}")
    kwargs = dict(
        cell=str(config.get("cell", cell or "lstm")).lower(),
        vocab_size=int(config["vocab_size"]),
        embedding_size=int(config.get("embedding_size", 128)),
        hidden_size=int(config.get("hidden_size", 256)),
        num_layers=int(config.get("num_layers", 1)),
        dropout=float(config.get("dropout", 0.3)),
        char_size=int(config.get("char_size", 0)),
        char_embedding_dim=int(config.get("char_embedding_dim", 16)),
        char_filters=[tuple(f) for f in config.get("char_filters", CHAR_FILTERS)],
        num_highway=int(config.get("num_highway", 1)),
        attention_heads=int(config.get("attention_heads", 0)),
        elmo=config.get("elmo"),
        elmo_frozen=bool(config.get("elmo_frozen", True)),
    )
    if cell is not None and kwargs["cell"] != cell:
        raise ValueError(f"this backbone's cell is {cell!r}, the config says cell={kwargs['cell']!r}")
    if kwargs["cell"] not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}, got {kwargs['cell']!r}")
    if kwargs["hidden_size"] < 2 or kwargs["hidden_size"] % 2:
        raise ValueError(f"hidden_size is the width of both directions together and must be even, "
                         f"got {kwargs['hidden_size']}")
    if kwargs["num_layers"] < 1:
        raise ValueError(f"num_layers must be at least 1, got {kwargs['num_layers']}")
    if not 0 <= kwargs["dropout"] < 1:
        raise ValueError(f"dropout must be in [0, 1), got {kwargs['dropout']}")
    heads = kwargs["attention_heads"]
    if heads < 0 or (heads and kwargs["hidden_size"] % heads):
        raise ValueError(f"attention_heads must be 0 (no self-attention) or divide hidden_size "
                         f"{kwargs['hidden_size']}, got {heads}")
    elmo = kwargs["elmo"]
    if elmo is not None and not isinstance(elmo, (str, Mapping)):
        raise TypeError(f"elmo must be an ELMo package directory or an ELMo config mapping, got {elmo!r:.80}")
    return kwargs


def _build_elmo(spec: Any, frozen: bool, phase: str):
    from paddlepalm.backbone.elmo import ELMo

    if isinstance(spec, str):
        return ELMo.from_pretrained(spec, phase=phase, frozen=frozen)
    return ELMo.from_config(dict(spec, frozen=frozen), phase=phase)


class RNNEncoder(Backbone):
    """A bidirectional LSTM/GRU encoder over word (or character, ``lang='cn'``) ids.

    Config keys (``hidden_size`` means what it means for the transformers, the width the heads
    read): ``vocab_size``; ``embedding_size`` (128); ``hidden_size`` (256: both directions,
    ``hidden_size / 2`` units each); ``num_layers`` (1); ``dropout`` (0.3: on the input features,
    between recurrent layers and on the outputs); ``cell`` (``'lstm'`` or ``'gru'``, fixed by
    :class:`BiLSTM`/:class:`BiGRU`); ``char_size`` (0: none; else a character CNN, ELMo's
    :class:`~paddlepalm.utils.char_cnn.CharCNN`, whose ``char_size``-wide word vectors are
    concatenated to the word embeddings; ``char_embedding_dim``, ``char_filters``,
    ``num_highway``); ``attention_heads`` (0: none; else one multi-head self-attention layer on
    top, residual and layer norm); ``elmo`` (an ELMo package directory, see
    :meth:`ELMo.from_pretrained`, or an ELMo config mapping for a randomly initialised one) and
    ``elmo_frozen`` (True: feature mode, only the scalar mixes learn; False: fine-tuned).

    The recurrence is ``paddle.nn.LSTM``/``GRU`` (Paddle's fused ``rnn`` operator) with
    ``sequence_length`` = the reader's ``seq_lens`` (the sum of ``input_mask``), so padding is
    never read, in either direction.

    Inputs: ``token_ids``, ``seq_lens``, and ``char_ids`` with a character CNN or a character ELMo.
    Outputs: ``encoder_outputs [B, T, hidden_size]`` (0 at padded positions);
    ``sentence_embedding [B, hidden_size]``: max-pooling of ``encoder_outputs`` over the valid
    positions (for a pair ``[CLS] a [SEP] b [SEP]`` the same, as ``sentence_pair_embedding``);
    ``word_embedding [B, T, embedding_size]`` and ``embedding_table [vocab_size, embedding_size]``
    (for the masked-LM head: a masked position's input is ``[MASK]``, so the bidirectional states
    there do not see the token to predict).

    With ELMo, each task mixes the ELMo layers with its own scalar weights (ELMo's
    ``scalar_mix.<task>``), as the seed's ``elmo_encoder``: the task's mix is concatenated to
    the word embeddings *before* the recurrence, so :meth:`task_outputs` runs the encoder, once
    per task (also on a joint batch); without ELMo, :meth:`forward` does, once for all tasks.

    Refused heads: ``BiLM`` (the ``lm_forward``/``lm_backward`` it predicts from must see only one
    side of every token; the directions of a multi-layer bidirectional RNN are mixed between the
    layers, so a next-token prediction would see the token) is refused when the model is built,
    for lack of those outputs. ONNX export is refused (:data:`ONNX_REFUSAL`).
    """

    kind = "rnn"
    default_cell: Optional[str] = None  # BiLSTM / BiGRU fix it
    onnx_refusal = ONNX_REFUSAL

    def __init__(self, config: Mapping[str, Any], phase: str = "train"):
        super().__init__(phase)
        self.config = dict(config)
        kw = rnn_kwargs(config, self.default_cell)
        self.cell = kw["cell"]
        self.kind = "bi" + self.cell
        self.embedding_size, self.num_layers = kw["embedding_size"], kw["num_layers"]
        self._hidden_size = kw["hidden_size"]
        self.word_embedding = nn.Embedding(kw["vocab_size"], self.embedding_size, weight_attr=paddle.ParamAttr(
            initializer=nn.initializer.Normal(std=0.1)))
        width = self.embedding_size
        self.uses_chars = kw["char_size"] > 0
        if self.uses_chars:
            self.char_cnn = CharCNN(kw["char_size"], kw["char_embedding_dim"], kw["char_filters"], kw["num_highway"])
            width += kw["char_size"]
        self.elmo = None
        if kw["elmo"] is not None:
            self.elmo = _build_elmo(kw["elmo"], kw["elmo_frozen"], phase)
            width += self.elmo.hidden_size
        rnn = nn.LSTM if self.cell == "lstm" else nn.GRU
        self.rnn = rnn(width, self._hidden_size // 2, num_layers=self.num_layers, direction="bidirect",
                       dropout=kw["dropout"] if self.num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(kw["dropout"])
        self.uses_attention = kw["attention_heads"] > 0
        if self.uses_attention:
            self.attention = nn.MultiHeadAttention(self._hidden_size, kw["attention_heads"], dropout=kw["dropout"])
            self.attention_norm = nn.LayerNorm(self._hidden_size)
        if phase != "train":
            self.eval()

    # ------------------------------------------------------------------ attrs
    @property
    def hidden_size(self) -> int:
        """Width of ``encoder_outputs``."""
        return self._hidden_size

    @property
    def fragile_export(self) -> Optional[str]:
        return self.elmo.fragile_export if self.elmo is not None else None

    @property
    def inputs_attr(self) -> Attrs:
        attrs: Attrs = {"token_ids": ([-1, -1], "int64"), "seq_lens": ([-1], "int64")}
        if self.uses_chars or (self.elmo is not None and "char_ids" in self.elmo.inputs_attr):
            attrs["char_ids"] = ([-1, -1, MAX_WORD_LENGTH], "int64")
        return attrs

    @property
    def input_limits(self) -> Dict[str, int]:
        vocab_size = int(self.word_embedding.weight.shape[0])
        elmo_vocab = (self.elmo.input_limits.get("vocab_size") if self.elmo is not None else None) or vocab_size
        return {"vocab_size": min(vocab_size, elmo_vocab)}  # an LSTM has no position table

    @property
    def outputs_attr(self) -> Attrs:
        width = self._hidden_size
        return {
            "word_embedding": ([-1, -1, self.embedding_size], "float32"),
            "embedding_table": ([-1, self.embedding_size], "float32"),
            "encoder_outputs": ([-1, -1, width], "float32"),
            "sentence_embedding": ([-1, width], "float32"),
            "sentence_pair_embedding": ([-1, width], "float32"),
        }

    def layer_depth(self, param_name: str) -> int:
        """See :meth:`Backbone.layer_depth`: the input features (word embedding, character CNN,
        ELMo with its scalar mixes) 0, recurrent layer ``k`` ``k + 1``, the self-attention on top
        ``num_layers + 1``."""
        first = param_name.split(".")[0]
        if first in ("word_embedding", "char_cnn", "elmo"):
            return 0
        if first == "rnn":
            layer = re.search(r"_l(\d+)(_reverse)?$", param_name) or re.match(r"rnn\.(\d+)\.", param_name)
            if layer:
                return int(layer.group(1)) + 1
        if first in ("attention", "attention_norm"):
            return self.num_layers + 1
        raise ValueError(f"{self.kind} backbone: parameter {param_name!r} belongs to no known layer")

    # ------------------------------------------------------------------ tasks
    def add_task(self, task: str) -> None:
        if self.elmo is not None:
            self.elmo.add_task(task)

    def task_outputs(self, task: str, outputs: Dict[str, paddle.Tensor]) -> Dict[str, paddle.Tensor]:
        if self.elmo is None:
            return outputs
        self.elmo.add_task(task)
        mixed = self.elmo.scalar_mix[task](outputs["_elmo_layers"], outputs["_mask"])
        features = paddle.concat([outputs["_features"], mixed], axis=-1)
        return dict(outputs, **self._encode(features, outputs["_seq_lens"], outputs["_mask"]))

    # ---------------------------------------------------------------- forward
    def forward(self, inputs: Dict[str, paddle.Tensor]) -> Dict[str, paddle.Tensor]:
        token_ids, lengths = inputs["token_ids"], inputs["seq_lens"]
        # positions by cumsum, not arange(shape[1]): also for a dynamic length (export)
        positions = paddle.cumsum(paddle.ones_like(token_ids), axis=1) - 1
        words = self.word_embedding(token_ids)
        mask = (positions < lengths.unsqueeze(-1)).astype(words.dtype)
        features = paddle.concat([words, self.char_cnn(inputs["char_ids"])], axis=-1) if self.uses_chars else words
        outputs = {"word_embedding": words, "embedding_table": self.word_embedding.weight, "_mask": mask}
        if self.elmo is None:
            outputs.update(self._encode(features, lengths, mask))
        else:  # the recurrence runs per task, on the task's ELMo mix (task_outputs)
            outputs.update(_features=features, _seq_lens=lengths, _elmo_layers=self.elmo(inputs)["layer_outputs"])
        return outputs

    def _encode(self, features: paddle.Tensor, lengths: paddle.Tensor, mask: paddle.Tensor) -> Dict[str, paddle.Tensor]:
        hidden, _ = self.rnn(self.dropout(features), sequence_length=lengths)
        if self.uses_attention:
            blocked = (1.0 - mask).unsqueeze(1).unsqueeze(1) * -1e4  # [B, 1, 1, T], added to the scores
            hidden = self.attention_norm(hidden + self.dropout(self.attention(hidden, hidden, hidden, blocked)))
        hidden = self.dropout(hidden) * mask.unsqueeze(-1)
        pooled = max_over(hidden - 1e4 * (1.0 - mask).unsqueeze(-1), 1)
        return {"encoder_outputs": hidden, "sentence_embedding": pooled, "sentence_pair_embedding": pooled}
