"""Shared logic of the encoder-only transformer backbones (ERNIE, BERT, ALBERT, ELECTRA)."""
import re
from typing import Any, Dict, Mapping, Optional

import paddle
from paddlepalm.backbone.base_backbone import Attrs, Backbone
from paddlepalm.utils.fileio import read_json

# parameter names of paddlenlp's encoders (under ``model.``) and our pooler, by depth
_EMBEDDINGS = re.compile(r"^model\.(embeddings|embeddings_project|encoder\.embedding_hidden_mapping_in)\.")
_LAYER = re.compile(r"^model\.encoder\.layers\.(\d+)\.")
_POOLER = re.compile(r"^(model\.)?pooler\.")

TRANSFORMER_OUTPUTS: Attrs = {
    "word_embedding": ([-1, -1, -1], "float32"),
    "embedding_table": ([-1, -1], "float32"),
    "encoder_outputs": ([-1, -1, -1], "float32"),
    "sentence_embedding": ([-1, -1], "float32"),
    "sentence_pair_embedding": ([-1, -1], "float32"),
}


def transformer_kwargs(config: Mapping[str, Any]) -> Dict[str, Any]:
    """Translate the keys of a released ``ernie_config.json``/``bert_config.json``."""
    missing = [k for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
               if k not in config]
    if missing:
        raise KeyError(f"backbone config lacks required keys {missing}; got keys {sorted(config)}")
    hidden = int(config["hidden_size"])
    return dict(
        vocab_size=int(config["vocab_size"]),
        hidden_size=hidden,
        num_hidden_layers=int(config["num_hidden_layers"]),
        num_attention_heads=int(config["num_attention_heads"]),
        intermediate_size=int(config.get("intermediate_size", 4 * hidden)),
        hidden_act=config.get("hidden_act", "gelu"),
        hidden_dropout_prob=float(config.get("hidden_dropout_prob", 0.1)),
        attention_probs_dropout_prob=float(config.get("attention_probs_dropout_prob", 0.1)),
        max_position_embeddings=int(config.get("max_position_embeddings", 512)),
        type_vocab_size=int(config.get("sent_type_vocab_size", config.get("type_vocab_size", 2))),
        initializer_range=float(config.get("initializer_range", 0.02)),
        pad_token_id=int(config.get("pad_token_id", 0)),
    )


class TransformerBackbone(Backbone):
    """Shared logic of the encoder-only transformer backbones."""

    uses_task_ids = False
    vocab_path: Optional[str] = None  # the release's vocab.txt, set by from_pretrained

    def __init__(self, model: paddle.nn.Layer, config: Mapping[str, Any], phase: str):
        super().__init__(phase)
        self.config = dict(config)
        self.model = model
        if phase != "train":
            self.eval()

    @classmethod
    def from_pretrained(cls, name_or_path: str, phase: str = "train", **overrides: Any) -> "TransformerBackbone":
        """Build the backbone from a release's own config and load the release's weights.

        ``name_or_path``: a registry name such as ``'ernie-3.0-medium-zh'`` (``palm ls
        pretrain``; downloaded once into the cache, docs/downloader.md) or a release folder
        holding a config JSON and weights in any format ``load_pretrain`` reads; an existing
        path wins over a name. ``overrides`` replace config keys (``hidden_dropout_prob=0.2``).
        The release's ``vocab.txt``, when it has one, is ``backbone.vocab_path`` (a reader's
        ``vocab_path``). Raises when a named model is of another kind, and when a weight's
        shape does not fit the config."""
        from paddlepalm.downloader.names import release_files, resolve_pretrained
        from paddlepalm.logs import log
        from paddlepalm.pretrained import load_pretrained_backbone

        path = resolve_pretrained(name_or_path, kind=cls.kind)
        files = release_files(path, cls.kind)
        if files.config_file is None:
            raise FileNotFoundError(f"{path} holds no config JSON (model_config.json, {cls.kind}_config.json or "
                                    f"config.json): build with {cls.__name__}.from_config(config), then "
                                    f"load_pretrain({path!r})")
        backbone = cls.from_config(dict(read_json(files.config_file), **overrides), phase=phase)
        report = load_pretrained_backbone(backbone, path)
        if report.mismatched:
            raise ValueError(f"{path}: the weights do not fit the release's own config: {report.summary()}")
        log(report.summary())
        backbone.vocab_path = files.vocab
        return backbone

    @property
    def hidden_size(self) -> int:
        return int(self.config["hidden_size"])

    @property
    def num_layers(self) -> int:
        return int(self.config["num_hidden_layers"])

    def layer_depth(self, param_name: str) -> int:
        """See :meth:`Backbone.layer_depth`: embeddings (and their projection to the hidden
        size) 0, ``model.encoder.layers.<i>`` ``i + 1``, the pooler ``num_layers + 1``."""
        if _EMBEDDINGS.match(param_name):
            return 0
        layer = _LAYER.match(param_name)
        if layer:
            return int(layer.group(1)) + 1
        if _POOLER.match(param_name):
            return self.num_layers + 1
        raise ValueError(f"{self.kind} backbone: parameter {param_name!r} belongs to no known layer "
                         "(layer-wise learning-rate decay needs the depth of every parameter)")

    @property
    def embedding_size(self) -> int:
        """Width of ``embedding_table``: ``hidden_size`` unless embeddings are factorized (ALBERT, ELECTRA)."""
        return int(self.word_embedding_layer().weight.shape[1])

    @property
    def inputs_attr(self) -> Attrs:
        attrs: Attrs = {
            "token_ids": ([-1, -1], "int64"),
            "position_ids": ([-1, -1], "int64"),
            "segment_ids": ([-1, -1], "int64"),
            "input_mask": ([-1, -1, 1], "float32"),
        }
        if self.uses_task_ids:
            attrs["task_ids"] = ([-1, -1], "int64")
        return attrs

    @property
    def outputs_attr(self) -> Attrs:
        return dict(TRANSFORMER_OUTPUTS)

    @property
    def input_limits(self) -> Dict[str, int]:
        kwargs = transformer_kwargs(self.config)
        return {"vocab_size": kwargs["vocab_size"], "max_position_embeddings": kwargs["max_position_embeddings"]}

    def word_embedding_layer(self) -> paddle.nn.Embedding:
        return self.model.embeddings.word_embeddings

    def _encode(self, inputs: Dict[str, paddle.Tensor], mask: paddle.Tensor):
        return self.model(
            input_ids=inputs["token_ids"],
            token_type_ids=inputs["segment_ids"],
            position_ids=inputs["position_ids"],
            attention_mask=mask,
        )

    def forward(self, inputs: Dict[str, paddle.Tensor]) -> Dict[str, paddle.Tensor]:
        mask = inputs["input_mask"]
        if mask.ndim == 3:
            mask = mask.squeeze(-1)
        sequence, pooled = self._encode(inputs, mask)[:2]
        embeddings = self.word_embedding_layer()
        return {
            "word_embedding": embeddings(inputs["token_ids"]),
            "embedding_table": embeddings.weight,
            "encoder_outputs": sequence,
            "sentence_embedding": pooled,
            "sentence_pair_embedding": pooled,
        }
