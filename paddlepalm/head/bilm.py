"""Bidirectional language-model head (ELMo's pretraining objective).

The forward direction at position ``t`` predicts token ``t+1``, the backward
direction at ``t`` predicts token ``t-1``; a sentence ``<S> w1 .. wn </S>`` of
length ``n+2`` gives ``n+1`` targets per direction. The loss is the mean
negative log-likelihood over all targets of both directions. Both directions
share one output layer (``softmax_weight [V, P]``, ``softmax_bias [V]``, the
names of the released Paddle ELMo).

``num_samples > 0`` trains with a sampled softmax: one set of candidate ids per
batch drawn from the log-uniform (Zipf) distribution over ids (the vocabulary
must be sorted by falling frequency, as ``build_word_vocab`` writes it), logits
corrected by ``-log(expected count)``, accidental hits removed (Jean et al.
2015, TensorFlow's ``sampled_softmax_loss``). Evaluation always uses the full softmax.

Both softmaxes run in fused C++ operators when they can be built
(:mod:`paddlepalm.utils.fused_softmax`: loss and gradients in one pass; the full softmax's logits
a block of rows at a time), else as Paddle ops.
"""
from typing import Any, Dict, List

import numpy as np
import paddle
from paddle import nn

from paddlepalm.head.base_head import Head
from paddlepalm.utils import fused_softmax, rng


class BiLM(Head):
    def __init__(self, vocab_size: int, input_dim: int, num_samples: int = 0, seed: int = 0,
                 param_initializer_range: float = 0.02, phase: str = "train"):
        super().__init__(phase)
        if num_samples < 0 or num_samples >= vocab_size:
            raise ValueError(f"num_samples must be in [0, vocab_size={vocab_size}), got {num_samples}")
        self.vocab_size, self.input_dim, self.num_samples = int(vocab_size), int(input_dim), int(num_samples)
        self.softmax_weight = self.create_parameter(
            [vocab_size, input_dim], default_initializer=nn.initializer.TruncatedNormal(std=param_initializer_range))
        self.softmax_bias = self.create_parameter([vocab_size], is_bias=True)
        self._rng = np.random.RandomState(seed)
        ids = np.arange(vocab_size, dtype="float64")
        self._zipf_probs = (np.log(ids + 2) - np.log(ids + 1)) / np.log(vocab_size + 1)

    def random_state(self) -> dict:
        """The sampled-softmax generator's state (saved in checkpoints, see utils/rng.py)."""
        return rng.random_state_to_json(self._rng)

    def set_random_state(self, state: dict) -> None:
        rng.set_random_state_from_json(self._rng, state)

    @property
    def inputs_attrs(self):
        return {"reader": {"token_ids": ([-1, -1], "int64"), "seq_lens": ([-1], "int64")},
                "backbone": {"lm_forward": ([-1, -1, self.input_dim], "float32"),
                             "lm_backward": ([-1, -1, self.input_dim], "float32")}}

    @property
    def outputs_attr(self):
        if self.phase == "train":
            return {"loss": ([1], "float32")}
        return {"nll": ([-1], "float32"), "num_targets": ([-1], "int64")}

    # ------------------------------------------------------------------ forward
    def forward(self, reader_inputs, backbone_outputs):
        ids, lengths = reader_inputs["token_ids"], reader_inputs["seq_lens"]
        steps = ids.shape[1]
        valid = paddle.arange(steps - 1, dtype="int64").unsqueeze(0) < (lengths - 1).unsqueeze(1)  # [B, T-1]
        fw_hidden = backbone_outputs["lm_forward"][:, :-1]
        bw_hidden = backbone_outputs["lm_backward"][:, 1:]
        hidden = paddle.concat([fw_hidden, bw_hidden], axis=0)  # [2B, T-1, P]
        targets = paddle.concat([ids[:, 1:], ids[:, :-1]], axis=0)
        mask = paddle.concat([valid, valid], axis=0)
        if self.phase == "train":
            hidden, targets = paddle.masked_select(hidden, mask.unsqueeze(-1)).reshape([-1, self.input_dim]), \
                paddle.masked_select(targets, mask)
            if self.num_samples:
                return {"loss": self._sampled_loss(hidden, targets)}
            return {"loss": fused_softmax.mean_softmax_cross_entropy(hidden, self.softmax_weight,
                                                                     self.softmax_bias, targets)}
        nll = self._full_loss(hidden.reshape([-1, self.input_dim]), targets.reshape([-1]))
        nll = (nll.reshape(mask.shape) * mask.astype(nll.dtype)).sum(axis=1)
        batch = ids.shape[0]
        return {"nll": nll[:batch] + nll[batch:], "num_targets": 2 * mask[:batch].astype("int64").sum(axis=1),
                "example_ids": reader_inputs["example_ids"]}

    def _full_loss(self, hidden: paddle.Tensor, targets: paddle.Tensor) -> paddle.Tensor:
        return fused_softmax.softmax_cross_entropy(hidden, self.softmax_weight, self.softmax_bias, targets)

    def _sample(self):
        """Distinct candidate ids from ``num_samples`` log-uniform draws."""
        draws = np.floor(np.exp(self._rng.uniform(0, np.log(self.vocab_size + 1), self.num_samples))) - 1
        sampled = np.unique(np.clip(draws, 0, self.vocab_size - 1).astype("int64"))
        return sampled

    def _log_expected(self, ids: paddle.Tensor) -> paddle.Tensor:
        p = paddle.to_tensor(self._zipf_probs.astype("float32"))[ids]
        # expected count of an id in num_samples draws with replacement: 1 - (1 - p)^S
        return paddle.log(-paddle.expm1(self.num_samples * paddle.log1p(-p)))

    def _sampled_loss(self, hidden: paddle.Tensor, targets: paddle.Tensor) -> paddle.Tensor:
        """The mean sampled-softmax loss (one draw of candidates per call)."""
        sampled = paddle.to_tensor(self._sample())
        return fused_softmax.mean_sampled_softmax_cross_entropy(
            hidden, self.softmax_weight, self.softmax_bias, targets, sampled, self._log_expected(targets),
            self._log_expected(sampled))

    # --------------------------------------------------------------- prediction
    def _batch_results(self, arrays: Dict[str, np.ndarray]) -> List[Dict[str, Any]]:
        return [{"index": int(i), "nll": float(n), "num_targets": int(c)}
                for i, n, c in zip(arrays["example_ids"], arrays["nll"], arrays["num_targets"])]

    def epoch_postprocess(self, post_inputs=None, output_dir=None):
        results = super().epoch_postprocess(post_inputs, output_dir)
        total = sum(r["num_targets"] for r in results)
        self.perplexity = float(np.exp(sum(r["nll"] for r in results) / max(total, 1)))
        return results
