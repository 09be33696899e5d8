"""Inter-task affinity, measured while a ``MultiHeadTrainer`` trains (Fifty et al., NeurIPS 2021,
"Efficiently Identifying Task Groupings in Multi-Task Learning"): how a step on task i changes
task j's loss,

    Z[i -> j] = 1 - L_j(θ_s - lr ∇θ_s L_i) / L_j(θ_s)

a look-ahead SGD step of the shared (backbone) parameters θ_s on task i's gradient, then every task's
loss; positive: a step on i lowers j's loss (i helps j). Here each task's loss is taken on a fixed
probe batch (the first batch of its reader's first epoch: the same in a resumed run), with the model
in eval mode (no dropout), and the
parameters are put back bit for bit: the measurement draws no random number and changes nothing in
training (``tests/test_affinity.py`` checks a run with it against one without). ``lr`` defaults to
the optimizer's learning rate of the moment. Off by default (``MultiHeadTrainer.set_affinity``,
``train.affinity_every``); each measurement costs one forward per task before, and per task one
forward and backward plus a forward of every task (docs/benchmarks.md).
"""
import contextlib
from typing import Any, Dict, Iterator, List, Mapping, Optional

import paddle

from paddlepalm.model import MultiTaskModel, to_tensors
from paddlepalm.session import Callback, Control, Session, StepResult

Affinities = Dict[str, Dict[str, float]]  # source task -> target task -> Z
RECURRENT_LAYERS = (paddle.nn.LSTM, paddle.nn.GRU, paddle.nn.SimpleRNN)  # Paddle's fused rnn operator


def lookahead_affinity(model: MultiTaskModel, probes: Mapping[str, Mapping[str, Any]], lr: float) -> Affinities:
    """``Z[i][j]`` for every pair of the tasks of ``probes`` (``{task: batch}``)."""
    trainable = [(name, p) for name, p in model.named_parameters() if not p.stop_gradient]
    shared = [i for i, (name, _) in enumerate(trainable) if name.startswith("backbone.")]
    params = [p for _, p in trainable]
    training = model.training
    model.eval()
    rng = paddle.get_rng_state()
    try:
        before = _losses(model, probes)
        saved = [params[i].numpy().copy() for i in shared]
        affinity: Affinities = {}
        for source, batch in probes.items():
            # every trainable parameter is asked for (paddlepalm's CPU layers return the gradients of
            # all their inputs); the step moves the shared ones only
            with _differentiable_recurrence(model):
                loss = model(source, to_tensors(batch))["loss"]
            grads = paddle.grad([loss], params, allow_unused=True)
            with paddle.no_grad():
                for i in shared:
                    if grads[i] is not None:
                        params[i].set_value(params[i] - lr * grads[i])
            after = _losses(model, probes)
            for i, value in zip(shared, saved):
                params[i].set_value(value)
            affinity[source] = {target: 1.0 - after[target] / before[target] for target in probes}
        return affinity
    finally:
        paddle.set_rng_state(rng)  # the measurement draws no randomness that training would have drawn
        if training:
            model.train()


@contextlib.contextmanager
def _differentiable_recurrence(model: paddle.nn.Layer) -> Iterator[None]:
    """Paddle's fused ``rnn`` operator keeps no state for a backward pass in eval mode, so the
    gradient of a recurrent backbone needs its RNN layers in training mode: they are switched to
    it with their between-layer dropout at 0, which computes what eval mode computes."""
    layers = [layer for layer in model.sublayers() if isinstance(layer, RECURRENT_LAYERS)]
    saved = [(layer.training, layer.dropout) for layer in layers]
    for layer in layers:
        layer.training, layer.dropout = True, 0.0
    try:
        yield
    finally:
        for layer, (training, dropout) in zip(layers, saved):
            layer.training, layer.dropout = training, dropout


def _losses(model: MultiTaskModel, probes: Mapping[str, Mapping[str, Any]]) -> Dict[str, float]:
    with paddle.no_grad():
        return {task: float(model(task, to_tensors(batch))["loss"]) for task, batch in probes.items()}


class Affinity(Callback):
    """Measures :func:`lookahead_affinity` every ``every`` steps: an ``affinity`` record for the
    sinks (``metrics.jsonl``), a log line, and :attr:`history`."""

    def __init__(self, every: int, lr: Optional[float] = None, sinks=None):
        self.every, self.lr, self.sinks = int(every), lr, sinks
        self.history: List[Dict[str, Any]] = []
        self.probes: Optional[Dict[str, Any]] = None

    def on_step_end(self, session: Session, result: StepResult, control: Control) -> None:
        if result.step % self.every:
            return
        if self.probes is None:  # each task's first batch of epoch 0 (no reader position moves)
            self.probes = {t.name: next(t.train_reader.iter_epoch(0)) for t in session.trainers
                           if t.train_reader is not None and t.reuse_head_with is None}
        probes = self.probes
        if len(probes) < 2:
            return
        lr = self.lr if self.lr is not None else float(session.optimization.optimizer.get_lr())
        record = {"event": "affinity", "step": result.step, "lr": lr,
                  "affinity": lookahead_affinity(session.model, probes, lr)}
        self.history.append(record)
        if self.sinks is not None:
            self.sinks.log(result.step, record)
        pairs = [f"{i}->{j} {z:+.4f}" for i, row in record["affinity"].items() for j, z in row.items() if i != j]
        session.write(f"global step: {result.step}, affinity: {', '.join(pairs)}")


def rank_sources(records: List[Dict[str, Any]], target: str) -> List[Dict[str, Any]]:
    """The other tasks ranked by their mean affinity onto ``target`` over ``records`` (``affinity``
    records), most helpful first: ``[{"task", "mean", "measurements"}]``."""
    sums: Dict[str, List[float]] = {}
    for record in records:
        for source, row in record["affinity"].items():
            if source != target and target in row:
                sums.setdefault(source, []).append(row[target])
    ranked = [{"task": task, "mean": sum(values) / len(values), "measurements": len(values)}
              for task, values in sums.items()]
    return sorted(ranked, key=lambda r: -r["mean"])
