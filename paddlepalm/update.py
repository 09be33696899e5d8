"""One optimizer update: forward -> weigh -> backward -> combine -> apply.

``train_update`` takes the update's *work*: for each unit (one task, or a joint group of tasks
on the same examples) its trainers and their batches. Every unit's batch (and each of its
micro-batches) runs the backbone once with all the unit's heads; each task's loss enters times
its ``loss_weight`` and its balancer weight; the gradients add up (or, kept apart in a gradient
bank, are clipped per task and combined by the balancer); then one optimizer step. Read it top to
bottom in :func:`train_update`; each stage is a method of :class:`Update`.
"""
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import paddle

from paddlepalm import distributed
from paddlepalm.balancing.base_balancer import Balancer
from paddlepalm.balancing.static import Static
from paddlepalm.model import MultiTaskModel, to_tensors
from paddlepalm.reader.base_reader import CONTENT_ARRAYS

Batch = Dict[str, np.ndarray]
Work = Sequence[Tuple[Sequence, Dict[str, Batch]]]  # (unit's trainers, {task: batch})


@dataclass
class Optimization:
    """What applies an update: the paddle optimizer, the learning-rate scheduler it reads (stepped
    after every update), the exponential moving average of the weights (updated after every step)
    and mixed precision (GPU)."""

    optimizer: Any
    lr_scheduler: Optional[paddle.optimizer.lr.LRScheduler] = None
    ema: Any = None
    amp: Any = None  # paddlepalm.engine.Amp


@dataclass(frozen=True)
class TaskSettings:
    """How a task's batch enters an update (set on its ``Trainer``): its loss is multiplied by
    ``loss_weight``; its gradient is clipped to ``clip_norm`` (global norm) before it is added
    to the other tasks'; its batch is split into ``micro_batches`` forward/backward passes
    whose gradients add up to the whole batch's."""

    loss_weight: float = 1.0
    clip_norm: Optional[float] = None
    micro_batches: int = 1

    @classmethod
    def of(cls, trainer) -> "TaskSettings":
        return cls(float(getattr(trainer, "loss_weight", 1.0)), getattr(trainer, "clip_norm", None),
                   int(getattr(trainer, "micro_batches", 1)))


def unit_batches(trainers: Sequence) -> Dict[str, Batch]:
    """The next training batch of each member of a unit; a joint group's must hold the same examples."""
    batches = {t.name: t.next_batch() for t in trainers}
    if len(trainers) > 1:
        check_same_examples(batches)
    return batches


def check_same_examples(batches: Mapping[str, Batch]) -> None:
    """A joint batch runs the backbone once: every task's inputs must be the first task's."""
    (first, reference), *others = batches.items()
    for task, batch in others:
        for name in CONTENT_ARRAYS:
            if name in reference and not np.array_equal(reference[name], batch.get(name)):
                raise ValueError(f"joint batch: task {task}'s {name} differ from task {first}'s (examples "
                                 f"{batch.get('example_ids')} vs {reference.get('example_ids')}): the readers "
                                 "of a joint group must serve the same tokens (no masking reader in a group)")


def micro_batches(trainers: Sequence, batches: Dict[str, Batch], parts: int) -> Iterator[Tuple[Dict[str, Batch], float]]:
    """``(micro-batches {task: batch}, share)`` pairs whose share-weighted losses add up to the batch's."""
    if parts == 1:
        yield batches, 1.0
        return
    split = {t.name: t.train_reader.split_batch(batches[t.name], parts) for t in trainers}
    first = split[trainers[0].name]
    for i in range(len(first)):
        if first[i][1] > 0:  # a micro-batch with none of the loss's items (no masked token) adds nothing
            yield {name: pieces[i][0] for name, pieces in split.items()}, first[i][1]


def _scaled(loss: paddle.Tensor, factor: float) -> paddle.Tensor:
    return loss * factor if factor != 1.0 else loss


class Update:
    """The state of one update while it is made: the tasks' settings, the balancer and its gradient
    bank, the losses so far, and the backward terms waiting for the weights."""

    def __init__(self, model: MultiTaskModel, work: Work, balancer: Balancer, amp=None):
        self.model, self.work, self.balancer, self.amp = model, work, balancer, amp
        self.settings = {t.name: TaskSettings.of(t) for unit, _ in work for t in unit}
        self.tasks = list(self.settings)
        balancer.check_update(self.tasks, {task: s.micro_batches for task, s in self.settings.items()})
        clipping = any(s.clip_norm is not None for s in self.settings.values())
        self.bank = balancer.gradient_bank(model, clipping)
        if self.bank is not None and amp is not None and amp.scaler is not None:
            raise ValueError(f"per-task gradients ({'a per-task clip_norm' if clipping else balancer.name}) cannot be "
                             "taken from fp16-scaled losses: use amp_dtype='bfloat16' (or the optimizer's global "
                             "grad_clip_norm)")
        self.weights = balancer.weights_before_losses(self.tasks)  # None: they wait for this update's losses
        self.losses: Dict[str, paddle.Tensor] = {}  # each task's loss (unweighted, detached)
        self.terms: Dict[str, Dict[str, paddle.Tensor]] = {}  # each task's loss terms (see loss_terms)
        self.held: List[Tuple[str, paddle.Tensor]] = []  # backward terms waiting for the weights
        self.seen: Dict[str, float] = {}

    # ------------------------------------------------------------- forward
    def forward(self, batches: Dict[str, Batch], share: float) -> None:
        """One pass of a unit's (micro-)batch: the backbone once, every member's loss; its backward
        runs now when the weights are known."""
        terms = []
        for task, output in _forward(self.model, batches, self.amp).items():
            loss = output["loss"] * share if share != 1.0 else output["loss"]
            self.losses[task] = self.losses[task] + loss.detach() if task in self.losses else loss.detach()
            terms.append((task, _scaled(loss, self.settings[task].loss_weight)))
            for name, value in loss_terms(output).items():
                value = value.detach() * share if share != 1.0 else value.detach()
                kept = self.terms.setdefault(task, {})
                kept[name] = kept[name] + value if name in kept else value
        if self.weights is None:
            self.held.extend(terms)
        else:
            self.backward(terms)

    # --------------------------------------------------------------- weigh
    def weigh(self) -> paddle.Tensor:
        """The balancer's weights (from this update's losses when it needs them; their deferred
        backward runs then); returns the weighted total loss (what the loss guard checks)."""
        weighed = self.weighed_losses()
        self.seen = self.balancer.observe(lambda: _rank_mean(weighed))
        if self.weights is None:
            self.weights = self.balancer.weights_from_losses(self.tasks, self.seen)
            self.backward(self.held)
        return paddle.add_n([_scaled(loss, self.weights[task]) for task, loss in weighed.items()])

    def weighed_losses(self) -> Dict[str, paddle.Tensor]:
        return {task: loss * self.settings[task].loss_weight for task, loss in self.losses.items()}

    # ------------------------------------------------------------ backward
    def backward(self, terms: Sequence[Tuple[str, paddle.Tensor]]) -> None:
        """The weighted task losses of one pass: into the bank task by task, and/or as one sum."""
        terms = [(task, _scaled(loss, self.weights[task])) for task, loss in terms]
        if self.bank is not None:
            for i, (task, loss) in enumerate(terms):
                self.bank.add(task, loss, retain_graph=self.bank.partial or i < len(terms) - 1)
        if self.bank is None or self.bank.partial:
            total = paddle.add_n([loss for _, loss in terms]) if len(terms) > 1 else terms[0][1]
            if self.amp is not None and self.amp.scaler is not None:
                total = self.amp.scaler.scale(total)
            total.backward()

    # ------------------------------------------------------------- combine
    def combine(self) -> None:
        """Every parameter's gradient for the step: the tasks' (rank-averaged) gradients, each
        clipped to its norm, combined by the balancer; or the summed backward's, rank-averaged."""
        if self.bank is not None:
            self.bank.average_over_ranks()
        if self.bank is not None and not self.bank.partial:
            self.bank.combine({task: s.clip_norm for task, s in self.settings.items()}, self.balancer.combine)
        else:
            distributed.average_gradients(self.model.parameters())

    # --------------------------------------------------------------- apply
    def apply(self, optimization: Optimization) -> None:
        """The optimizer step, the moving average, then what the balancer learns from it."""
        amp = optimization.amp
        if amp is not None and amp.scaler is not None:
            amp.scaler.step(optimization.optimizer)
            amp.scaler.update()
        else:
            optimization.optimizer.step()
        if optimization.ema is not None:
            optimization.ema.update()
        self.balancer.finish_update(self.seen, self.bank, self.losses_after_step)

    def losses_after_step(self) -> Dict[str, float]:
        """This update's weighed task losses on the same batches after its step (forward only: FAMO)."""
        losses: Dict[str, paddle.Tensor] = {}
        with paddle.no_grad():
            for unit, batches in self.work:
                for micro, share in micro_batches(unit, batches, self.settings[unit[0].name].micro_batches):
                    for task, output in _forward(self.model, micro, self.amp).items():
                        loss = output["loss"] * share if share != 1.0 else output["loss"]
                        losses[task] = losses[task] + loss if task in losses else loss
        return _rank_mean({task: loss * self.settings[task].loss_weight for task, loss in losses.items()})


_STATIC = Static()


def loss_terms(output: Mapping[str, paddle.Tensor]) -> Dict[str, paddle.Tensor]:
    """The parts of a head's loss that it returns beside ``loss`` (outputs named ``*_loss``, as
    ELECTRA's ``generator_loss`` and ``rtd_loss``): logged, never trained on separately."""
    return {name: value for name, value in output.items() if name.endswith("_loss") and name != "loss"}


@dataclass
class UpdateLosses:
    """What an update reports: each task's loss, and the terms its head returned beside it."""

    losses: Dict[str, paddle.Tensor]
    terms: Dict[str, Dict[str, paddle.Tensor]]


def train_update(model: MultiTaskModel, optimization: Optimization, work: Work, guard=None, step: int = 0,
                 balancer: Optional[Balancer] = None) -> UpdateLosses:
    """One optimizer update over ``work``; returns each task's (unweighted, detached) loss and
    loss terms (:func:`loss_terms`).
    ``guard`` (``engine.LossGuard``) sees the weighted total before the step: a non-finite one
    stops training, or skips the update. ``balancer``: ``paddlepalm.balancing`` (None: static)."""
    model.train()
    update = Update(model, work, balancer if balancer is not None else _STATIC, optimization.amp)
    for unit, batches in work:
        for micro, share in micro_batches(unit, batches, update.settings[unit[0].name].micro_batches):
            update.forward(micro, share)
    total = update.weigh()
    if guard is None or guard.admit("+".join(update.losses), step, total):
        update.combine()
        update.apply(optimization)
    # set_to_zero=False leaves the grads of heads that did not run as None, so
    # the optimizer skips them: no momentum or decay update for inactive heads.
    optimization.optimizer.clear_grad(set_to_zero=False)
    if optimization.lr_scheduler is not None:
        optimization.lr_scheduler.step()
    return UpdateLosses(update.losses, update.terms)


def _forward(model: MultiTaskModel, batches: Dict[str, Batch], amp) -> Dict[str, Dict[str, paddle.Tensor]]:
    tensors = {task: to_tensors(batch) for task, batch in batches.items()}
    if amp is None:
        return model.forward_tasks(tensors)
    with paddle.amp.auto_cast(dtype=amp.dtype):
        return model.forward_tasks(tensors)


def _rank_mean(losses: Mapping[str, paddle.Tensor]) -> Dict[str, float]:
    return dict(zip(losses, distributed.mean_over_ranks([float(loss) for loss in losses.values()])))
