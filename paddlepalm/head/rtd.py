"""ELECTRA pretraining: a small generator (masked LM) and replaced-token detection by the backbone."""
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn
from paddlenlp.transformers import ElectraConfig, ElectraGenerator

from paddlepalm.backbone.electra import additive_attention_mask
from paddlepalm.head.base_head import Head


def generator_shape(hidden_size: int, num_attention_heads: int, fraction: float):
    """Hidden size and heads of a generator ``fraction`` the discriminator's width (heads divide hidden)."""
    heads = max(1, int(round(num_attention_heads * fraction)))
    hidden = max(heads, int(hidden_size * fraction) // heads * heads)
    return hidden, heads


def detection_metrics(logits: np.ndarray, labels: np.ndarray) -> Dict[str, Optional[float]]:
    """How well per-token logits detect replaced tokens (``labels`` 1), against the prior.

    ``prior_loss`` is the binary entropy of the replaced fraction: the loss of a discriminator
    that predicts that fraction everywhere and reads nothing. A ``loss`` near it (and an ``auc``
    near 0.5) means the discriminator has learned nothing from the text, whatever its total loss.
    A figure with nothing to count (recall with no replaced token, precision with no token
    flagged, AUC with one class only) is None.
    """
    logits = np.asarray(logits, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    if labels.size == 0:
        raise ValueError("detection_metrics needs at least one token")
    rate = float(labels.mean())
    prior = 0.0 if rate in (0.0, 1.0) else -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))
    # binary cross-entropy with logits, computed stably
    loss = np.mean(np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits))))
    predicted = logits > 0
    out = {"tokens": int(labels.size), "replaced_rate": rate, "loss": float(loss), "prior_loss": float(prior),
           "recall": float(predicted[labels].mean()) if labels.any() else None,
           "precision": float(labels[predicted].mean()) if predicted.any() else None,
           "auc": None}
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives and negatives:
        # the probability that a replaced token outscores an original one (ties count half):
        # Mann-Whitney's U from the tokens' 0-based ranks, tied logits sharing their mean rank
        _, inverse, counts = np.unique(logits, return_inverse=True, return_counts=True)
        mean_rank = np.cumsum(counts) - (counts + 1) / 2
        ranks = mean_rank[inverse]
        out["auc"] = float((ranks[labels].sum() - positives * (positives - 1) / 2) / (positives * negatives))
    return out


class ReplacedTokenDetection(Head):
    """ELECTRA's objective on the backbone (the discriminator).

    The reader masks tokens as for masked-LM training (``mask_pos``/``mask_label``).
    In :meth:`prepare_inputs` a generator (paddlenlp ``ElectraGenerator``,
    ``generator_size`` times the discriminator's hidden size and heads, same depth)
    reads the masked sequence through the *backbone's* token embeddings (shared:
    the generator has no token embedding of its own), predicts the masked tokens
    (MLM loss), and a token is sampled from its output at every masked position
    without gradient. The backbone then runs on the original sequence with those
    samples in place, and this head predicts per token whether it was replaced:
    label 1 exactly where the sampled token differs from the original (a sample
    equal to the original counts as original). Loss: ``MLM + rtd_weight * RTD``
    (RTD: mean sigmoid cross-entropy over the non-padding tokens; ELECTRA: 50).
    """

    def __init__(self, input_dim: int, vocab_size: int, num_layers: int, num_attention_heads: int,
                 embedding_size: Optional[int] = None, generator_size: float = 0.25, hidden_act: str = "gelu",
                 dropout_prob: float = 0.1, param_initializer_range: float = 0.02,
                 max_position_embeddings: int = 512, type_vocab_size: int = 2, rtd_weight: float = 50.0,
                 phase: str = "train"):
        super().__init__(phase)
        if not 0 < generator_size <= 1:
            raise ValueError(f"generator_size is a fraction of the discriminator in (0, 1], got {generator_size}")
        self.vocab_size = int(vocab_size)
        self.embedding_size = int(embedding_size or input_dim)
        self.rtd_weight = float(rtd_weight)
        hidden, heads = generator_shape(input_dim, num_attention_heads, generator_size)
        self.generator = ElectraGenerator(ElectraConfig(
            vocab_size=self.vocab_size, embedding_size=self.embedding_size, hidden_size=hidden,
            num_hidden_layers=int(num_layers), num_attention_heads=heads, intermediate_size=4 * hidden,
            hidden_act=hidden_act, hidden_dropout_prob=dropout_prob, attention_probs_dropout_prob=dropout_prob,
            max_position_embeddings=max_position_embeddings, type_vocab_size=type_vocab_size,
            initializer_range=param_initializer_range, tie_word_embeddings=True))
        # token embeddings are the backbone's; drop the generator's own copy
        del self.generator.electra.embeddings.word_embeddings
        init = paddle.ParamAttr(initializer=nn.initializer.TruncatedNormal(std=param_initializer_range))
        self.dense = nn.Linear(input_dim, input_dim, weight_attr=init)
        self.activation = getattr(F, hidden_act)
        self.detector = nn.Linear(input_dim, 1, weight_attr=init)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], generator_size: float = 0.25, rtd_weight: float = 50.0,
                    phase: str = "train") -> "ReplacedTokenDetection":
        """Sized from the backbone's config (the keys ``ELECTRA.from_config`` reads)."""
        hidden = int(config["hidden_size"])
        return cls(hidden, int(config["vocab_size"]), int(config["num_hidden_layers"]),
                   int(config["num_attention_heads"]), int(config.get("embedding_size", hidden)),
                   float(config.get("generator_size", generator_size)), config.get("hidden_act", "gelu"),
                   float(config.get("hidden_dropout_prob", 0.1)), float(config.get("initializer_range", 0.02)),
                   int(config.get("max_position_embeddings", 512)),
                   int(config.get("type_vocab_size", config.get("sent_type_vocab_size", 2))), rtd_weight, phase)

    @property
    def inputs_attrs(self):
        reader = {"mask_pos": ([-1], "int64"), "mask_label": ([-1], "int64"), "input_mask": ([-1, -1, 1], "float32")}
        return {"reader": reader, "backbone": {"encoder_outputs": ([-1, -1, -1], "float32")}}

    @property
    def outputs_attr(self):
        if self.phase == "train":
            return {"loss": ([1], "float32"), "generator_loss": ([1], "float32"), "rtd_loss": ([1], "float32")}
        return {"replaced_probs": ([-1, -1], "float32")}

    # ------------------------------------------------------------- generator
    def generator_logits(self, inputs: Dict[str, paddle.Tensor], backbone: nn.Layer) -> paddle.Tensor:
        """Generator logits ``[N, V]`` at ``mask_pos``, through the backbone's token embeddings."""
        embeddings = backbone.word_embedding_layer()
        mask = inputs["input_mask"]
        mask = mask.squeeze(-1) if mask.ndim == 3 else mask
        sequence = self.generator.electra(
            input_ids=None, inputs_embeds=embeddings(inputs["token_ids"]), token_type_ids=inputs["segment_ids"],
            position_ids=inputs["position_ids"], attention_mask=additive_attention_mask(mask))
        picked = paddle.gather(sequence.reshape([-1, sequence.shape[-1]]), inputs["mask_pos"])
        hidden = self.generator.generator_predictions(picked)
        return paddle.matmul(hidden, embeddings.weight, transpose_y=True) + self.generator.generator_lm_head_bias

    def prepare_inputs(self, reader_inputs, backbone):
        inputs = dict(reader_inputs)
        logits = self.generator_logits(inputs, backbone)
        inputs["generator_loss"] = F.cross_entropy(logits, inputs["mask_label"].unsqueeze(-1))
        with paddle.no_grad():
            sampled = paddle.multinomial(F.softmax(logits.detach(), axis=-1), num_samples=1).squeeze(-1)
            masked = inputs["token_ids"]
            flat = masked.reshape([-1])
            corrupted = paddle.scatter(flat, inputs["mask_pos"], sampled)
            replaced = paddle.scatter(paddle.zeros_like(flat), inputs["mask_pos"],
                                      (sampled != inputs["mask_label"]).astype(flat.dtype))
        inputs["token_ids"] = corrupted.reshape(masked.shape)
        inputs["rtd_labels"] = replaced.reshape(masked.shape)
        return inputs

    # --------------------------------------------------------- discriminator
    def detection_logits(self, hidden: paddle.Tensor) -> paddle.Tensor:
        """Per-token logits ``[B, L]`` that a token was replaced, from the backbone's ``[B, L, H]``."""
        return self.detector(self.activation(self.dense(hidden))).squeeze(-1)

    def forward(self, reader_inputs, backbone_outputs):
        hidden = backbone_outputs["encoder_outputs"]
        logits = self.detection_logits(hidden)
        mask = reader_inputs["input_mask"]
        mask = (mask.squeeze(-1) if mask.ndim == 3 else mask).astype(logits.dtype)
        if self.phase == "train":
            per_token = F.binary_cross_entropy_with_logits(
                logits, reader_inputs["rtd_labels"].astype(logits.dtype), reduction="none")
            rtd_loss = (per_token * mask).sum() / mask.sum()
            generator_loss = reader_inputs["generator_loss"]
            return {"loss": generator_loss + self.rtd_weight * rtd_loss,
                    "generator_loss": generator_loss, "rtd_loss": rtd_loss}
        return {"replaced_probs": F.sigmoid(logits) * mask, "rtd_labels": reader_inputs["rtd_labels"],
                "seq_lens": mask.sum(-1).astype("int64"), "example_ids": reader_inputs["example_ids"]}

    def _batch_results(self, arrays: Dict[str, np.ndarray]) -> List[Dict[str, Any]]:
        results = []
        for index, probs, labels, length in zip(arrays["example_ids"], arrays["replaced_probs"],
                                                arrays["rtd_labels"], arrays["seq_lens"]):
            results.append({"index": int(index), "replaced": np.flatnonzero(probs[:length] > 0.5).tolist(),
                            "labels": np.flatnonzero(labels[:length]).tolist()})
        return results
