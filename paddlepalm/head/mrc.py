"""Extractive MRC head: start/end logits per token, n-best span decoding over windows."""
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from paddlepalm.head.base_head import Head
from paddlepalm.utils.fileio import write_json

DEFAULT_MAX_ANS_LEN = 30  # tokens; SQuAD's usual limit (PALM's None crashed)


class MRC(Head):
    """Start/end classifiers over ``encoder_outputs``; loss ``(CE(start) + CE(end)) / 2``.

    Prediction groups the windows of each question (``post_inputs`` is
    ``MRCReader.get_epoch_outputs()``), scores every span ``start <= end`` inside
    the context with at most ``max_ans_len`` tokens whose start token has its
    maximal context in that window, by ``start_logit + end_logit``, and keeps the
    ``n_best_size`` best. With ``with_negative``, the empty answer (both logits at
    ``[CLS]``) wins when its score exceeds the best span's by more than
    ``null_score_diff_threshold``. Answers are cut from the original context
    characters. Writes ``predictions.json`` (``{question id: answer}``, the SQuAD
    format that the official evaluation scripts read), ``nbest_predictions.json``
    and, with ``with_negative``, ``null_odds.json``. ``max_ans_len=None`` means
    ``DEFAULT_MAX_ANS_LEN`` tokens. ``do_lower_case`` and ``verbose`` are accepted for
    PALM scripts and have no effect: answers are cut from the original text anyway.
    """

    default_metrics = ("mrc",)
    target_metric = "f1"
    servable = True
    exported_alone = True

    def __init__(self, max_query_len: int, input_dim: int, pred_output_path: Optional[str] = None,
                 verbose: bool = False, with_negative: bool = False, do_lower_case: bool = False,
                 max_ans_len: Optional[int] = None, null_score_diff_threshold: float = 0.0,
                 n_best_size: int = 20, phase: str = "train"):
        super().__init__(phase)
        self.max_query_len = max_query_len
        self.pred_output_path = pred_output_path
        self.verbose = verbose
        self.with_negative = with_negative
        self.max_ans_len = DEFAULT_MAX_ANS_LEN if max_ans_len is None else int(max_ans_len)
        if self.max_ans_len < 1 or n_best_size < 1:
            raise ValueError(f"max_ans_len and n_best_size must be positive, got {self.max_ans_len}, {n_best_size}")
        self.null_score_diff_threshold = float(null_score_diff_threshold)
        self.n_best_size = int(n_best_size)
        self.span_logits = nn.Linear(input_dim, 2, weight_attr=paddle.ParamAttr(
            initializer=nn.initializer.TruncatedNormal(std=0.02)))

    @property
    def inputs_attrs(self):
        reader = {"seq_lens": ([-1], "int64")}
        if self.phase == "train":
            reader.update({"start_positions": ([-1], "int64"), "end_positions": ([-1], "int64")})
        return {"reader": reader, "backbone": {"encoder_outputs": ([-1, -1, -1], "float32")}}

    @property
    def outputs_attr(self):
        if self.phase == "train":
            return {"loss": ([1], "float32")}
        return {"start_logits": ([-1, -1], "float32"), "end_logits": ([-1, -1], "float32")}

    def forward(self, reader_inputs, backbone_outputs):
        logits = self.span_logits(backbone_outputs["encoder_outputs"])
        # positions by cumsum, not arange(shape[1]): also for a dynamic length (export)
        positions = paddle.cumsum(paddle.ones_like(logits[:, :, 0], dtype="int64"), axis=1) - 1
        padding = positions >= reader_inputs["seq_lens"].unsqueeze(-1)
        logits = logits - 1e4 * padding.astype(logits.dtype).unsqueeze(-1)
        start_logits, end_logits = logits[:, :, 0], logits[:, :, 1]
        if self.phase == "train":
            loss = (F.cross_entropy(start_logits, reader_inputs["start_positions"].unsqueeze(-1))
                    + F.cross_entropy(end_logits, reader_inputs["end_positions"].unsqueeze(-1))) / 2
            return {"loss": loss}
        return {"start_logits": start_logits, "end_logits": end_logits,
                "seq_lens": reader_inputs["seq_lens"], "example_ids": reader_inputs["example_ids"]}

    def _batch_results(self, arrays: Dict[str, np.ndarray]) -> List[Dict[str, Any]]:
        return [{"index": int(i), "start_logits": s[:n], "end_logits": e[:n]}
                for i, s, e, n in zip(arrays["example_ids"], arrays["start_logits"], arrays["end_logits"],
                                      arrays["seq_lens"])]

    def epoch_postprocess(self, post_inputs: Any = None, output_dir: Optional[str] = None) -> List[Dict[str, Any]]:
        """One result per question: ``{"index", "id", "answer", "score", "null_odds"?}``."""
        if not post_inputs or "examples" not in post_inputs:
            raise ValueError("MRC.epoch_postprocess needs post_inputs=reader.get_epoch_outputs() "
                             "(the questions and windows of the prediction reader)")
        examples, features = post_inputs["examples"], post_inputs["features"]
        windows_of: Dict[int, List[Tuple[Dict, Dict]]] = {}
        for result in self._results:
            feature = features[result["index"]]
            windows_of.setdefault(feature["question_index"], []).append((feature, result))
        predictions, nbest_all, null_odds, results = {}, {}, {}, []
        for example in examples:
            nbest, null_score = self._decode_question(example, windows_of.get(example.index, []))
            best = nbest[0] if nbest else {"text": "", "score": float("-inf")}
            answer = best["text"]
            record = {"index": example.index, "id": example.qid, "score": best["score"]}
            if self.with_negative:
                odds = null_score - best["score"]
                null_odds[example.qid] = odds
                record["null_odds"] = odds
                if odds > self.null_score_diff_threshold:
                    answer = ""
                nbest = nbest + [{"text": "", "score": null_score, "start_logit": None, "end_logit": None}]
                nbest.sort(key=lambda n: -n["score"])
            _add_probabilities(nbest)
            record["answer"] = answer
            predictions[example.qid] = answer
            nbest_all[example.qid] = nbest
            results.append(record)
        output_dir = output_dir or self.pred_output_path
        if output_dir is not None:
            write_json(os.path.join(output_dir, "predictions.json"), predictions)
            write_json(os.path.join(output_dir, "nbest_predictions.json"), nbest_all)
            if self.with_negative:
                write_json(os.path.join(output_dir, "null_odds.json"), null_odds)
        return results

    def describe_input(self, result: Dict[str, Any], feature: Dict[str, Any]) -> Dict[str, Any]:
        """A raw input's question id is only its position: left out."""
        result.pop("id", None)
        return result

    def export_args(self) -> Dict[str, Any]:
        return {"max_query_len": self.max_query_len, "input_dim": int(self.span_logits.weight.shape[0]),
                "with_negative": self.with_negative, "max_ans_len": self.max_ans_len,
                "null_score_diff_threshold": self.null_score_diff_threshold, "n_best_size": self.n_best_size}

    def _decode_question(self, example, windows) -> Tuple[List[Dict[str, Any]], float]:
        candidates, null_score = [], float("inf")
        for feature, result in windows:
            start_logits, end_logits = result["start_logits"], result["end_logits"]
            null_score = min(null_score, float(start_logits[0] + end_logits[0]))
            offset, n_doc = feature["doc_offset"], len(feature["token_spans"])
            starts = np.zeros(len(start_logits), dtype=bool)
            ends = np.zeros(len(start_logits), dtype=bool)
            starts[offset:offset + n_doc] = feature["max_context"]
            ends[offset:offset + n_doc] = True
            for score, start, end in best_spans(start_logits, end_logits, starts, ends,
                                                self.max_ans_len, self.n_best_size):
                first = feature["token_spans"][start - offset][0]
                last = feature["token_spans"][end - offset][1]
                candidates.append({"text": example.context[first:last], "score": score,
                                   "start_logit": float(start_logits[start]), "end_logit": float(end_logits[end]),
                                   "char_start": int(first)})
        candidates.sort(key=lambda c: -c["score"])
        nbest, seen = [], set()
        for candidate in candidates:
            if candidate["text"] in seen:
                continue
            seen.add(candidate["text"])
            nbest.append(candidate)
            if len(nbest) == self.n_best_size:
                break
        return nbest, null_score


def best_spans(start_logits: np.ndarray, end_logits: np.ndarray, start_ok: np.ndarray, end_ok: np.ndarray,
               max_ans_len: int, n_best: int) -> List[Tuple[float, int, int]]:
    """The ``n_best`` spans ``(score, start, end)`` by ``start_logit + end_logit``, best first, among
    ``start <= end < start + max_ans_len`` with ``start_ok[start]`` and ``end_ok[end]``.

    Exact: every allowed pair is scored (a length x length matrix), not only the
    top-n starts and ends."""
    length = len(start_logits)
    scores = np.asarray(start_logits, dtype="float64")[:, None] + np.asarray(end_logits, dtype="float64")[None, :]
    gap = np.arange(length)[None, :] - np.arange(length)[:, None]
    allowed = (gap >= 0) & (gap < max_ans_len) & np.asarray(start_ok)[:, None] & np.asarray(end_ok)[None, :]
    flat = np.flatnonzero(allowed)
    if not len(flat):
        return []
    values = scores.reshape(-1)[flat]
    order = np.argsort(-values, kind="stable")[:n_best]
    return [(float(values[i]), int(flat[i] // length), int(flat[i] % length)) for i in order]


def _add_probabilities(nbest: List[Dict[str, Any]]) -> None:
    if not nbest:
        return
    scores = np.array([n["score"] for n in nbest], dtype="float64")
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    for entry, prob in zip(nbest, probs):
        entry["probability"] = float(prob)
