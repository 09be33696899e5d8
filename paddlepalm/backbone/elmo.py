"""ELMo backbone: a character- or word-input bidirectional LSTMP language model
whose layers are mixed per task with learned scalar weights.
"""
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from paddlepalm.backbone.base_backbone import Attrs, Backbone
from paddlepalm.reader.elmo_chars import BOS_TOKEN, EOS_TOKEN, MAX_WORD_LENGTH, batch_to_char_ids
from paddlepalm.utils.char_cnn import ELMO_FILTERS, CharCNN
from paddlepalm.utils.lstmp import BiLSTMP
from paddlepalm.utils.scalar_mix import ScalarMix

# An ELMo package (what examples/pretrain/elmo/run.py --save_to writes, e.g. pretrain_models/elmo-zh-tiny)
PACKAGE_CONFIG, PACKAGE_VOCAB, PACKAGE_WEIGHTS = "elmo_config.json", "vocab.txt", "ckpt"

# The released Paddle Chinese ELMo (baike): word input, 4096 cells, 512 projection.
PADDLE_ELMO_ZH = {"input_type": "word", "vocab_size": 52445, "cell_size": 4096, "projection_size": 512,
                  "num_layers": 2, "cell_clip": 3.0, "proj_clip": 3.0, "residual": True}


def elmo_kwargs(config: Mapping[str, Any]) -> Dict[str, Any]:
    """Our flat keys, or the nested ``lstm``/``char_cnn`` keys of a bilm-tf ``options.json``."""
    lstm = config.get("lstm", {})
    cnn = config.get("char_cnn", {})
    input_type = config.get("input_type", "char" if cnn else "word")
    kwargs = dict(
        input_type=input_type,
        vocab_size=config.get("vocab_size", config.get("n_tokens_vocab")),
        cell_size=int(config.get("cell_size", lstm.get("dim", 4096))),
        projection_size=int(config.get("projection_size", lstm.get("projection_dim", 512))),
        num_layers=int(config.get("num_layers", lstm.get("n_layers", 2))),
        cell_clip=float(config.get("cell_clip", lstm.get("cell_clip", 3.0))),
        proj_clip=float(config.get("proj_clip", lstm.get("proj_clip", 3.0))),
        residual=bool(config.get("residual", lstm.get("use_skip_connections", True))),
        dropout=float(config.get("dropout", 0.1)),
        char_dim=int(config.get("char_embedding_dim", cnn.get("embedding", {}).get("dim", 16))),
        char_filters=[tuple(f) for f in config.get("char_filters", cnn.get("filters", ELMO_FILTERS))],
        num_highway=int(config.get("num_highway", cnn.get("n_highway", 2))),
        scalar_mix_layer_norm=bool(config.get("scalar_mix_layer_norm", False)),
        frozen=bool(config.get("frozen", False)),
        static_graph=bool(config.get("static_graph", False)),
    )
    if input_type == "word" and kwargs["vocab_size"] is None:
        raise KeyError(f"ELMo config with word input needs 'vocab_size'; got keys {sorted(config)}")
    return kwargs


class ELMo(Backbone):
    """ELMo (Peters et al. 2018) on Paddle 3.

    Inputs (reader arrays): ``token_ids [B, L]`` (word input) or ``char_ids [B, L, 50]``
    (character input, AllenNLP's scheme, see :mod:`paddlepalm.reader.elmo_chars`),
    and ``seq_lens [B]``. Sentences are ``<S> w1 .. wn </S>`` (the readers add the markers).

    Layers: a token layer (word embedding, or character CNN + 2 highway + projection),
    then ``num_layers`` LSTMP layers per direction with cell/projection clipping
    and a residual connection from the second layer on (:class:`BiLSTMP`).
    Layer ``k`` of the mix is ``[fw_k ; bw_k]`` (2P wide); the token layer is
    ``[x ; x]``, so the token dimension equals the projection size.

    Outputs: ``encoder_outputs [B, L, 2P]`` = ``gamma * sum_k softmax(w)_k * h_k`` with a
    separate ``(w, gamma)`` per task (``scalar_mix.<task>``, optional layer norm);
    ``sentence_embedding [B, 2P]`` (masked mean of ``encoder_outputs``);
    ``word_embedding [B, L, P]`` (the token layer); ``embedding_table [V, P]``
    (word input only); ``layer_outputs [K, B, L, 2P]`` (all layers, unmixed);
    ``lm_forward``/``lm_backward [B, L, P]`` (top layer of each direction, what the
    ``BiLM`` head predicts from).

    The recurrence runs in a fused C++ operator (:mod:`paddlepalm.utils.fused_lstmp`,
    compiled on first use and cached; ``PADDLEPALM_FUSED_LSTM=0`` or a failed build gives
    the pure-Paddle path, same results). ``static_graph=True`` instead runs the pure-Paddle
    biLSTM as a ``paddle.jit.to_static`` graph (each new batch shape costs a compilation of
    seconds; compared with the fused op in docs/benchmarks.md).

    ``frozen=True`` is the feature mode of Paddle ELMo's ``elmo_encoder``: the biLM
    runs without gradient and without dropout, only the scalar mixes learn, and
    :meth:`features` gives a mix to concatenate with a task's own embeddings.

    Parameter names (stable, for loading released checkpoints)::

        word_embedding.weight                 [V, P]           (Paddle ELMo: embedding_para)
        char_cnn.char_embedding.weight        [262, char_dim]  (char input)
        char_cnn.convs.<i>.weight / .bias     Conv1D per filter width
        char_cnn.highway.layers.<i>.weight    [D, 2D]  (.bias [2D]; first half transform, second gate)
        char_cnn.projection.weight / .bias    [D, P]
        lstm.<fw|bw>.<layer>.input_weight      [in, 4H]  (Paddle ELMo: <fw|bw>_layer<layer+1>_gate_w)
        lstm.<fw|bw>.<layer>.recurrent_weight  [P, 4H]   (dynamic_lstmp w_0)
        lstm.<fw|bw>.<layer>.bias              [4H]      (dynamic_lstmp b_0, reshaped from [1, 4H])
        lstm.<fw|bw>.<layer>.projection_weight [H, P]    (dynamic_lstmp w_1)
        scalar_mix.<task>.weights [K], scalar_mix.<task>.gamma [1]   (Paddle ELMo: ELMo_w, ELMo_gamma)

    Gates are ordered (candidate, input, forget, output) as in ``dynamic_lstmp``.
    One difference in the outputs, not the weights: like bilm-tf and AllenNLP we mix the
    second layer *after* its residual connection; the released ``elmo_encoder`` mixed
    the LSTM outputs before it.
    In the release the fluid ``lstmp_<n>`` are numbered in creation order:
    fw layer 1, fw layer 2, bw layer 1, bw layer 2.
    """

    kind = "elmo"
    fragile_export = "elmo"

    def __init__(self, config: Mapping[str, Any], phase: str = "train"):
        super().__init__(phase)
        self.config = dict(config)
        kw = elmo_kwargs(config)
        self.input_type = kw["input_type"]
        if self.input_type not in ("word", "char"):
            raise ValueError(f"input_type must be 'word' or 'char', got {self.input_type!r}")
        self.projection_size = kw["projection_size"]
        self.num_layers = kw["num_layers"]
        self.frozen = kw["frozen"]
        self.dropout = kw["dropout"]
        self.scalar_mix_layer_norm = kw["scalar_mix_layer_norm"]
        if self.input_type == "word":
            self.word_embedding = nn.Embedding(int(kw["vocab_size"]), self.projection_size, weight_attr=paddle.ParamAttr(
                initializer=nn.initializer.Normal(std=0.1)))
        else:
            self.char_cnn = CharCNN(self.projection_size, kw["char_dim"], kw["char_filters"], kw["num_highway"])
        self.lstm = BiLSTMP(self.projection_size, kw["cell_size"], self.projection_size, self.num_layers,
                            kw["cell_clip"], kw["proj_clip"], kw["residual"], kw["dropout"])
        if kw["static_graph"]:
            self.lstm.compile()
        self.scalar_mix = nn.LayerDict()
        if self.frozen:
            self.freeze()
        if phase != "train":
            self.eval()

    @property
    def hidden_size(self) -> int:
        """Width of ``encoder_outputs`` (both directions)."""
        return 2 * self.projection_size

    def layer_depth(self, param_name: str) -> int:
        """See :meth:`Backbone.layer_depth`: the token layer (word embedding or character CNN) 0,
        ``lstm.<fw|bw>.<k>`` (both directions of layer ``k``) ``k + 1``, the per-task scalar
        mixes ``num_layers + 1``."""
        first, _, rest = param_name.partition(".")
        if first in ("word_embedding", "char_cnn"):
            return 0
        if first == "lstm":
            return int(rest.split(".")[1]) + 1
        if first == "scalar_mix":
            return self.num_layers + 1
        raise ValueError(f"elmo backbone: parameter {param_name!r} belongs to no known layer")

    def freeze(self) -> None:
        """Stop training the biLM (feature mode); the per-task scalar mixes still learn."""
        self.frozen = True
        for name, param in self.named_parameters():
            if not name.startswith("scalar_mix."):
                param.stop_gradient = True

    # ------------------------------------------------------------------ tasks
    def add_task(self, task: str) -> None:
        if task not in self.scalar_mix:
            self.scalar_mix[task] = ScalarMix(self.num_layers + 1, self.scalar_mix_layer_norm)

    def task_outputs(self, task: str, outputs: Dict[str, paddle.Tensor]) -> Dict[str, paddle.Tensor]:
        self.add_task(task)
        mixed = self.scalar_mix[task](outputs["layer_outputs"], outputs["_mask"])
        return dict(outputs, encoder_outputs=mixed, sentence_embedding=_masked_mean(mixed, outputs["_mask"]))

    # ------------------------------------------------------------------ attrs
    @property
    def inputs_attr(self) -> Attrs:
        attrs: Attrs = {"seq_lens": ([-1], "int64")}
        if self.input_type == "word":
            attrs["token_ids"] = ([-1, -1], "int64")
        else:
            attrs["char_ids"] = ([-1, -1, MAX_WORD_LENGTH], "int64")
        return attrs

    @property
    def input_limits(self) -> Dict[str, int]:
        # an LSTM has no position table; character input has no word vocabulary
        return {"vocab_size": int(self.word_embedding.weight.shape[0])} if self.input_type == "word" else {}

    @property
    def outputs_attr(self) -> Attrs:
        width = 2 * self.projection_size
        attrs: Attrs = {
            "word_embedding": ([-1, -1, self.projection_size], "float32"),
            "encoder_outputs": ([-1, -1, width], "float32"),
            "sentence_embedding": ([-1, width], "float32"),
            "layer_outputs": ([self.num_layers + 1, -1, -1, width], "float32"),
            "lm_forward": ([-1, -1, self.projection_size], "float32"),
            "lm_backward": ([-1, -1, self.projection_size], "float32"),
        }
        if self.input_type == "word":
            attrs["embedding_table"] = ([-1, self.projection_size], "float32")
        return attrs

    # ---------------------------------------------------------------- forward
    def embed_tokens(self, inputs: Mapping[str, paddle.Tensor]) -> paddle.Tensor:
        if self.input_type == "word":
            return self.word_embedding(inputs["token_ids"])
        return self.char_cnn(inputs["char_ids"])

    def forward(self, inputs: Dict[str, paddle.Tensor]) -> Dict[str, paddle.Tensor]:
        if self.frozen:
            was_training = self.training
            self.eval()
            with paddle.no_grad():
                outputs = self._encode(inputs)
            self.train(was_training)
            return outputs
        return self._encode(inputs)

    def _encode(self, inputs: Mapping[str, paddle.Tensor]) -> Dict[str, paddle.Tensor]:
        tokens = self.embed_tokens(inputs)  # [B, L, P]
        lengths = inputs["seq_lens"]
        mask = (paddle.arange(tokens.shape[1], dtype="int64").unsqueeze(0) < lengths.unsqueeze(1)).astype(tokens.dtype)
        layers = [paddle.concat([tokens, tokens], axis=-1)]
        lstm_outputs = self.lstm(tokens, lengths)
        for fw, bw in lstm_outputs:
            layers.append(paddle.concat([fw, bw], axis=-1))
        stacked = paddle.stack(layers) * mask.unsqueeze(0).unsqueeze(-1)  # [K, B, L, 2P]
        top_fw, top_bw = lstm_outputs[-1]
        if self.dropout and self.training:
            top_fw, top_bw = F.dropout(top_fw, self.dropout), F.dropout(top_bw, self.dropout)
        mean_mix = stacked.mean(axis=0)  # task-independent default (equal weights, gamma 1)
        outputs = {
            "word_embedding": tokens,
            "layer_outputs": stacked,
            "encoder_outputs": mean_mix,
            "sentence_embedding": _masked_mean(mean_mix, mask),
            "lm_forward": top_fw,
            "lm_backward": top_bw,
            "_mask": mask,
        }
        if self.input_type == "word":
            outputs["embedding_table"] = self.word_embedding.weight
        return outputs

    def features(self, inputs: Mapping[str, paddle.Tensor], task: str) -> paddle.Tensor:
        """``task``'s ELMo vectors ``[B, L, 2P]``, to concatenate with a model's own embeddings."""
        return self.task_outputs(task, self(dict(inputs)))["encoder_outputs"]

    # ------------------------------------------------------------ a package
    @classmethod
    def from_pretrained(cls, path: str, phase: str = "predict", **overrides: Any) -> "ELMo":
        """The ELMo of a package directory: ``elmo_config.json`` (its keys, updated by
        ``overrides``, e.g. ``frozen=True``), ``ckpt/`` (the weights, any format
        ``load_pretrained_backbone`` reads) and ``vocab.txt`` (word ids, and how
        :meth:`embed_sentences` tokenizes raw text: the config's ``tokenizer``, ``'char'`` for
        the Chinese package). ``path`` may be a registry name instead (``'ELMo-zh-baike'``,
        downloaded once into the cache): a release without ``elmo_config.json`` is built from
        the registry's ``architecture`` and its weights read from the folder itself. Raises
        when a biLM weight is missing or has another shape (the per-task scalar mixes are
        created fresh)."""
        from paddlepalm.downloader.names import named_entry, resolve_pretrained
        from paddlepalm.pretrained import load_pretrained_backbone
        from paddlepalm.utils.fileio import read_json

        entry = named_entry(path)
        path = resolve_pretrained(path, kind=cls.kind)
        config_file = os.path.join(path, PACKAGE_CONFIG)
        if os.path.isfile(config_file):
            config, weights = read_json(config_file), os.path.join(path, PACKAGE_WEIGHTS)
        elif entry is not None and entry.get("architecture"):
            config, weights = entry["architecture"], path
        else:
            raise FileNotFoundError(f"{path} is not an ELMo package: no {PACKAGE_CONFIG} (expected "
                                    f"{PACKAGE_CONFIG}, {PACKAGE_VOCAB} and {PACKAGE_WEIGHTS}/)")
        elmo = cls.from_config(dict(config, **overrides), phase=phase)
        report = load_pretrained_backbone(elmo, weights)
        not_loaded = [n for n in report.missing if not n.startswith("scalar_mix.")]
        if not_loaded or report.mismatched:
            raise ValueError(f"ELMo package {path} does not fit its own config: {report.summary()}")
        vocab = os.path.join(path, PACKAGE_VOCAB)
        elmo.vocab_path = vocab if os.path.isfile(vocab) else None
        return elmo

    vocab_path: Optional[str] = None  # set by from_pretrained; embed_sentences needs it for word input

    def embed_sentences(self, sentences: Sequence[Union[str, Sequence[str]]], batch_size: int = 32,
                        mix: bool = False, task: Optional[str] = None) -> List[np.ndarray]:
        """ELMo vectors of ``sentences`` (lists of tokens, or raw strings split by the package's
        tokenizer: ``config['tokenizer']``, whitespace by default), as AllenNLP's ``ElmoEmbedder``
        gives them: per sentence of ``n`` tokens a float32 array ``[num_layers + 1, n, 2P]``
        (layer 0 the token layer ``[x ; x]``, then each biLSTM layer ``[fw ; bw]``; the
        ``<S>``/``</S>`` markers the model reads are cut off). ``mix=True``: the scalar mix
        ``[n, 2P]`` instead, ``task``'s learned one, or without ``task`` the equal-weight mix
        (the layers' mean). Runs without dropout or gradient, ``batch_size`` sentences at a
        time, shortest first; results are in input order."""
        from paddlepalm.reader.word_tokenizer import WordTokenizer, split_text

        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if task is not None and task not in self.scalar_mix:
            raise KeyError(f"no scalar mix for task {task!r}; this ELMo has mixes for {sorted(self.scalar_mix)}")
        split = self.config.get("tokenizer", "whitespace")
        tokens = []
        for index, sentence in enumerate(sentences):
            words = split_text(sentence, split) if isinstance(sentence, str) else list(sentence)
            if not all(isinstance(w, str) for w in words):
                raise TypeError(f"sentence {index} must be a string or a list of strings, got {sentence!r:.80}")
            tokens.append(words)
        vocab = None
        if self.input_type == "word":
            if self.vocab_path is None:
                raise ValueError("a word-input ELMo needs its vocabulary to embed sentences: load it with "
                                 "ELMo.from_pretrained(package) or set elmo.vocab_path")
            vocab = WordTokenizer(self.vocab_path)
        order = sorted(range(len(tokens)), key=lambda i: len(tokens[i]))
        results: List[Optional[np.ndarray]] = [None] * len(tokens)
        was_training = self.training
        self.eval()
        try:
            with paddle.no_grad():
                for start in range(0, len(order), batch_size):
                    rows = order[start:start + batch_size]
                    for row, vectors in zip(rows, self._embed_batch([tokens[i] for i in rows], vocab, mix, task)):
                        results[row] = vectors
        finally:
            self.train(was_training)
        return results

    def _embed_batch(self, batch: List[List[str]], vocab, mix: bool, task: Optional[str]) -> List[np.ndarray]:
        words = [[BOS_TOKEN] + sentence + [EOS_TOKEN] for sentence in batch]
        width = max(len(w) for w in words)
        inputs = {"seq_lens": paddle.to_tensor(np.array([len(w) for w in words], dtype="int64"))}
        if vocab is not None:
            ids = np.full((len(words), width), vocab.vocab[vocab.pad_token], dtype="int64")
            for row, sentence in enumerate(words):
                ids[row, :len(sentence)] = vocab.convert_tokens_to_ids(sentence)
            inputs["token_ids"] = paddle.to_tensor(ids)
        else:
            inputs["char_ids"] = paddle.to_tensor(batch_to_char_ids(words, width))
        outputs = self._encode(inputs)
        layers = outputs["layer_outputs"]  # [K, B, L, 2P]
        if mix:
            layers = (self.scalar_mix[task](layers, outputs["_mask"]) if task is not None
                      else layers.mean(axis=0))  # [B, L, 2P]
            return [vectors[1:len(sentence) + 1] for vectors, sentence in zip(layers.numpy(), batch)]
        array = layers.numpy()
        return [array[:, row, 1:len(sentence) + 1] for row, sentence in enumerate(batch)]


def _masked_mean(x: paddle.Tensor, mask: Optional[paddle.Tensor]) -> paddle.Tensor:
    m = mask.unsqueeze(-1)
    return (x * m).sum(axis=1) / paddle.clip(m.sum(axis=1), min=1.0)
