"""Evaluation during training: metric objects, periodic evaluation, best checkpoint, early stopping.

Single task::

    trainer.fit_reader(dev_reader, phase='eval')          # a reader built with phase='eval'
    trainer.set_evaluator(metrics=['accuracy', 'macro_f1'], target='accuracy',
                          eval_steps=200, patience=5)      # best checkpoint in <save_path>/best
    trainer.train()

Several tasks: each ``Trainer`` gets its eval reader and metrics as above (its
``eval_steps``/``patience`` are then unused), and ``MultiHeadTrainer.set_evaluator(
eval_steps, patience)`` evaluates every non-auxiliary task that has an eval
reader; the best checkpoint is the one with the highest **mean of the tasks'
target metrics** (each a fraction in [0, 1]).

Evaluation runs the training model itself (dropout off, heads switched to their
prediction outputs for the pass), so no weights are copied. The best checkpoint
is written atomically (``checkpoint.save_checkpoint``) with the metrics in its
``trainer.json``; load it with ``Trainer.load_ckpt`` / ``load_predict_model``.
"""
import contextlib
import math
import os
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Type, Union

import numpy as np
import paddle

from paddlepalm import checkpoint, distributed, logs, metrics as palm_metrics
from paddlepalm.head.base_head import Head
from paddlepalm.metrics.mrc import mrc_scores
from paddlepalm.model import MultiTaskModel
from paddlepalm.prediction import model_runner, predict_pass
from paddlepalm.sinks import Sinks

Results = List[Dict[str, Any]]
# a count in a task's scores, not a metric: the gold labels of the evaluation data that training never
# saw (scored as wrong); present only when there are some
UNSEEN = "unseen_labels"


# ----------------------------------------------------------------------- metrics
class Metric:
    """Scores of one pass: ``metric(results, reader) -> {name: value}``, values in [0, 1]."""

    names: Sequence[str] = ()

    def __call__(self, results: Results, reader) -> Dict[str, float]:
        raise NotImplementedError


def _gold_labels(reader) -> List[int]:
    features = reader._features
    if not features or "label" not in features[0]:
        raise ValueError(f"{type(reader).__name__} of {reader._input_file} has no gold labels to evaluate against "
                         "(build it with phase='eval' on a labelled file)")
    return [f["label"] for f in features]


class Accuracy(Metric):
    names = ("accuracy",)

    def __call__(self, results, reader):
        return {"accuracy": palm_metrics.accuracy([r["label"] for r in results], _gold_labels(reader))}


class MacroF1(Metric):
    names = ("macro_f1",)

    def __call__(self, results, reader):
        return {"macro_f1": palm_metrics.macro_f1([r["label"] for r in results], _gold_labels(reader))}


class ClassF1(Metric):
    """F1 of each class on its own, ``f1/<class name>`` (the label map's names; ids without one):
    how a rare class fares, which accuracy and even macro-F1 hide. Its names depend on the data,
    so it cannot be a target metric."""

    names = ()

    def __call__(self, results, reader):
        predicted = np.asarray([r["label"] for r in results])
        gold = np.asarray(_gold_labels(reader))
        label_map = getattr(reader, "label_map", None) or {str(i): i for i in np.unique(gold)}
        scores = {}
        for name, class_id in label_map.items():
            true_positive = float(np.sum((predicted == class_id) & (gold == class_id)))
            denominator = float(np.sum(predicted == class_id) + np.sum(gold == class_id))
            scores[f"f1/{name}"] = 2 * true_positive / denominator if denominator else 0.0
        return scores


class ChunkF1(Metric):
    """Entity-level F1 of a tagging task (``metrics.chunk_f1``), over the tokens the reader kept."""

    names = ("entity_f1", "entity_precision", "entity_recall")

    def __call__(self, results, reader):
        names = reader.label_names
        # a row with a tag unseen in training keeps its gold tag names: that entity is a false negative
        gold = [f.get("gold_tags") or [names[t] for t in f["labels"]] for f in reader._features]
        predicted = [[names[t] for t in r["label"][:len(g)]] for r, g in zip(results, gold)]
        scores = palm_metrics.chunk_f1(predicted, gold)
        return {"entity_f1": scores["f1"], "entity_precision": scores["precision"],
                "entity_recall": scores["recall"]}


class SpanEMF1(Metric):
    """Extractive MRC: EM and F1 (CMRC 2018 metric for ``lang='cn'``, SQuAD's for ``'en'``), as fractions."""

    names = ("em", "f1")

    def __init__(self, lang: str = "cn"):
        self.lang = lang

    def __call__(self, results, reader):
        gold = {e.qid: e.answers for e in reader.examples}
        scores = mrc_scores(gold, {r["id"]: r["answer"] for r in results}, self.lang)
        return {"em": scores["em"] / 100, "f1": scores["f1"] / 100}


METRICS: Dict[str, Callable[[], Metric]] = {
    "accuracy": Accuracy, "macro_f1": MacroF1, "class_f1": ClassF1, "chunk_f1": ChunkF1, "entity_f1": ChunkF1,
    "mrc": SpanEMF1, "mrc_en": lambda: SpanEMF1("en"),
}


def score_names(spec: Optional[Sequence[str]], head: Union[Head, Type[Head]]) -> List[str]:
    """The scores that the metrics named in ``spec`` report (None: the defaults of ``head``, a head
    or head class, ``Head.default_metrics``; empty when it has none): what a target metric may be."""
    names = head.default_metrics if spec is None else spec
    return [score for name in names if name in METRICS for score in METRICS[name]().names]


def build_metrics(spec: Union[None, str, Metric, Sequence[Union[str, Metric]]], head: Head) -> List[Metric]:
    """Metric objects of ``spec`` (None: the head's ``default_metrics``)."""
    if spec is None:
        if not head.default_metrics:
            raise ValueError(f"no default metric for head {type(head).__name__}: pass metrics=... to set_evaluator")
        spec = list(head.default_metrics)
    if isinstance(spec, (str, Metric)):
        spec = [spec]
    built = []
    for item in spec:
        if isinstance(item, str):
            if item not in METRICS:
                raise ValueError(f"unknown metric {item!r}; known: {sorted(METRICS)}")
            item = METRICS[item]()
        built.append(item)
    return built


def default_target(head: Head, metric_list: Sequence[Metric]) -> str:
    """The head's ``target_metric`` when the metrics report it, else the first metric's first score."""
    if head.target_metric is not None and head.target_metric in [n for m in metric_list for n in m.names]:
        return head.target_metric
    return metric_list[0].names[0]


# ------------------------------------------------------------------- one task
@contextlib.contextmanager
def prediction_mode(model: MultiTaskModel, task: str) -> Iterator[None]:
    """Dropout off and ``task``'s head returning predictions, restored afterwards."""
    head, backbone = model.head_of(task), model.backbone
    phases = head.phase, backbone.phase
    was_training = model.training
    head.phase = backbone.phase = "eval"
    model.eval()
    try:
        with paddle.no_grad():
            yield
    finally:
        head.phase, backbone.phase = phases
        if was_training:
            model.train()


class TaskEvaluator:
    """A task's dev reader and metrics; :meth:`evaluate` scores the current model."""

    def __init__(self, task: str, reader, metric_list: Sequence[Metric], target: str):
        known = [n for m in metric_list for n in m.names]
        if target not in known:
            raise ValueError(f"task {task}: target metric {target!r} is not among the metrics' outputs {known}")
        self.task, self.reader, self.metrics, self.target = task, reader, list(metric_list), target

    def evaluate(self, model: MultiTaskModel, wrap: Optional[Callable] = None) -> Dict[str, float]:
        """``wrap(batches, total, description)``, when given, wraps the pass's batches (a bar)."""
        batches = self.reader.iter_epoch(0)
        if wrap is not None:
            batches = wrap(batches, math.ceil(self.reader.num_examples / self.reader.batch_size), f"eval {self.task}")
        with prediction_mode(model, self.task):
            # gather: each rank saw its shard; score all of them, everywhere
            results = predict_pass(model.head_of(self.task), self.reader, batches, model_runner(model, self.task),
                                   gather=True)
        scores: Dict[str, float] = {}
        for metric in self.metrics:
            scores.update(metric(results, self.reader))
        unseen = getattr(self.reader, "unseen_labels", 0)
        if unseen:  # gold labels training never saw, scored as wrong (paddlepalm/reader/labels.py)
            scores[UNSEEN] = unseen
        return scores


# -------------------------------------------------------------- during training
class EvaluationLoop:
    """Evaluates every ``eval_steps`` steps and at the end; keeps the best checkpoint; stops early.

    The score compared across evaluations is the mean of the tasks' target metrics
    (higher is better). ``patience``: stop after that many evaluations in a row
    without a better score (``None``: never stop early).
    """

    def __init__(self, evaluators: Sequence[TaskEvaluator], eval_steps: int, patience: Optional[int] = None,
                 best_dir: Optional[str] = None, min_delta: float = 0.0):
        if not evaluators:
            raise ValueError("no task has an eval reader: call fit_reader(reader, phase='eval') first")
        if eval_steps < 0 or (patience is not None and patience < 1):
            raise ValueError(f"eval_steps must be >= 0 and patience >= 1, got {eval_steps}, {patience}")
        self.evaluators = list(evaluators)
        self.eval_steps = int(eval_steps)
        self.patience = patience
        self.best_dir = best_dir
        self.min_delta = float(min_delta)
        self.history: List[Dict[str, Any]] = []
        self.best_score = -math.inf
        self.best_step: Optional[int] = None
        self.stopped_early = False
        self._since_best = 0
        self._last_step: Optional[int] = None
        # called after each evaluation with (step, {task: target score}): a dynamic sampling schedule
        self.listeners: List[Callable[[int, Dict[str, float]], None]] = []
        self.sinks = Sinks()  # train(sinks=...) sets them: each evaluation is an 'eval' record
        self.write: Callable[[str], None] = logs.log  # the session's log writer (above a progress bar)

    def state(self) -> Dict[str, Any]:
        """What a checkpoint keeps so that a resumed run picks the same best checkpoint and
        stops early at the same step as an uninterrupted one."""
        return {"best_score": None if self.best_score == -math.inf else self.best_score,
                "best_step": self.best_step, "since_best": self._since_best, "last_step": self._last_step,
                "history": self.history}

    def set_state(self, state: Dict[str, Any]) -> None:
        self.best_score = -math.inf if state.get("best_score") is None else float(state["best_score"])
        self.best_step = state.get("best_step")
        self._since_best = int(state.get("since_best", 0))
        self._last_step = state.get("last_step")
        self.history = list(state.get("history", []))

    @property
    def aggregate_name(self) -> str:
        if len(self.evaluators) == 1:
            return f"{self.evaluators[0].task}.{self.evaluators[0].target}"
        return "mean(" + ", ".join(f"{e.task}.{e.target}" for e in self.evaluators) + ")"

    def after_step(self, step: int, model: MultiTaskModel, state_fn: Callable[[int], Dict]) -> bool:
        """Evaluate when due; True when training should stop now."""
        if self.eval_steps and step % self.eval_steps == 0:
            self.run(step, model, state_fn)
        return self.stopped_early

    def finish(self, step: int, model, state_fn: Callable[[int], Dict]) -> None:
        if self._last_step != step:
            self.run(step, model, state_fn)

    def run(self, step: int, model: MultiTaskModel, state_fn: Callable[[int], Dict]) -> Dict[str, Any]:
        started = time.time()
        record: Dict[str, Any] = {"step": step, "tasks": {}}
        for evaluator in self.evaluators:
            scores = evaluator.evaluate(model, self.sinks.wrap)
            record["tasks"][evaluator.task] = scores
            shown = ", ".join(f"{k}: {v}" if isinstance(v, int) else f"{k}: {v:.4f}" for k, v in scores.items())
            self.write(f"global step: {step}, eval {evaluator.task}: {shown}")
        score = float(np.mean([record["tasks"][e.task][e.target] for e in self.evaluators]))
        record["score"] = score
        self.history.append(record)
        for listener in self.listeners:
            listener(step, {e.task: record["tasks"][e.task][e.target] for e in self.evaluators})
        self._last_step = step
        improved = score > self.best_score + self.min_delta
        if improved:
            self.best_score, self.best_step, self._since_best = score, step, 0
            if self.best_dir is not None:
                state = dict(state_fn(step), best_metric=self.aggregate_name, best_score=score,
                             eval=record["tasks"])
                if distributed.is_main():
                    checkpoint.save_checkpoint(self.best_dir, model, None, state)
        else:
            self._since_best += 1
        note = f", saved to {self.best_dir}" if improved and self.best_dir else ""
        self.write(f"global step: {step}, eval {self.aggregate_name}: {score:.4f} "
             f"(best {self.best_score:.4f} at step {self.best_step}{note}), time: {time.time() - started:.1f} s")
        self.sinks.log(step, {"event": "eval", "step": step, "tasks": record["tasks"], "score": score,
                              "best_score": self.best_score, "best_step": self.best_step, "improved": improved,
                              "target": self.aggregate_name})
        if self.patience is not None and self._since_best >= self.patience:
            self.stopped_early = True
            self.write(f"early stopping at global step {step}: no better {self.aggregate_name} "
                 f"for {self._since_best} evaluations")
        return record


def best_dir_for(best_dir: Optional[str], saver, save_best: bool) -> Optional[str]:
    if not save_best:
        return None
    if best_dir is not None:
        return best_dir
    if saver is None:
        raise ValueError("save_best needs a place: call set_saver(save_path, ...) first or pass best_dir=")
    return os.path.join(saver.save_path, "best")
