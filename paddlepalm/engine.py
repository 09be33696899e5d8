"""The training loop shared by ``Trainer`` (one task) and ``MultiHeadTrainer`` (several)."""
import contextlib
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import paddle

from paddlepalm import checkpoint, distributed
from paddlepalm.balancing.base_balancer import Balancer
from paddlepalm.balancing.static import Static
from paddlepalm.inference import verify_export
from paddlepalm.model import MultiTaskModel, to_tensors
from paddlepalm.sinks import Sinks
from paddlepalm.utils import rng


class NonFiniteLossError(FloatingPointError):
    """Training met a non-finite loss (or parameters); the message names the task, the
    step and the last checkpoint written before it."""


@dataclass
class Saver:
    """Where and when to write checkpoints (``set_saver``)."""

    save_path: str
    save_steps: int
    save_types: Sequence[str] = ("ckpt",)
    keep_last: Optional[int] = None  # keep the newest N ckpt.step / pred.step folders (None: all)
    last_saved_step: int = -1
    last_checkpoint: Optional[str] = None
    # writes the inference model of 'predict' saves: exporter(directory, weights or None)
    exporter: Optional[Callable[[str, Optional[Dict]], None]] = None

    @classmethod
    def parse(cls, save_path: str, save_steps: int, save_type: str, keep_last: Optional[int] = None) -> "Saver":
        types = [t.strip() for t in save_type.split(",") if t.strip()]
        unknown = [t for t in types if t not in ("ckpt", "predict")]
        if unknown or not types:
            raise ValueError(f"save_type must be 'ckpt', 'predict' or 'ckpt,predict', got {save_type!r}")
        if isinstance(save_steps, bool) or not isinstance(save_steps, int) or save_steps <= 0:
            raise ValueError(f"save_steps must be a positive integer, got {save_steps!r}")
        if keep_last is not None and (isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1):
            raise ValueError(f"keep_last must be a positive integer or None (keep all), got {keep_last!r}")
        return cls(save_path, int(save_steps), tuple(types), keep_last)

    def save(self, step: int, model: MultiTaskModel, optimizer, state: Dict) -> List[str]:
        """Rank 0 writes; the other ranks hold identical parameters and write nothing.
        Parameters that are not all finite are never written."""
        self.last_saved_step = step
        written = []
        if not distributed.is_main():
            return written
        check_finite_parameters(model, step, self.last_checkpoint)
        ema = getattr(optimizer, "palm_ema", None)
        if "ckpt" in self.save_types:
            extra = {ema.FILE: ema.state_dict()} if ema is not None else None
            path = checkpoint.save_checkpoint(os.path.join(self.save_path, f"ckpt.step{step}"), model, optimizer,
                                              state, extra, rng_state=rng.capture(model))
            written.append(path)
            self.last_checkpoint = path
            self._rotate("ckpt", step, checkpoint.verify)
        if "predict" in self.save_types:
            weights = ema.averaged_state_dict(model) if ema is not None else None
            exported = self._export(os.path.join(self.save_path, f"pred.step{step}"), weights)
            written.extend(exported)
            if exported:
                self._rotate("pred", step, verify_export)
        return written

    def _rotate(self, kind: str, step: int, verify: Callable[[str], None]) -> None:
        """With ``keep_last``: once ``{kind}.step{step}`` verifies, delete the ones older than the
        newest ``keep_last`` (``best/`` and folders of later steps are never touched)."""
        if self.keep_last is None:
            return
        newest = os.path.join(self.save_path, f"{kind}.step{step}")
        try:
            verify(newest)
        except (checkpoint.CheckpointError, OSError, ValueError) as error:
            print(f"warning: {newest} does not verify ({error}): no older {kind}.step folder deleted",
                  file=sys.stderr, flush=True)
            return
        for path in checkpoint.older_steps(self.save_path, kind, step, self.keep_last - 1):
            checkpoint.remove_directory(path)
            log(f"deleted {path} (keeping the newest {self.keep_last})")

    def _export(self, directory: str, weights: Optional[Dict]) -> List[str]:
        """PALM's ``pred.step{N}``: an inference model (paddlepalm/export.py). A failed export is
        reported and training goes on."""
        if self.exporter is None:
            print(f"warning: no predict model written to {directory}: this trainer cannot export one",
                  file=sys.stderr, flush=True)
            return []
        try:
            self.exporter(directory, weights)
        except Exception as error:  # noqa: BLE001 (any failure of tracing/saving: report, keep training)
            print(f"warning: predict model export to {directory} failed: {type(error).__name__}: {error}",
                  file=sys.stderr, flush=True)
            return []
        return [directory]


def _print(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


_echo: Callable[[str], None] = _print  # a progress bar swaps in tqdm.write while it is shown (see sinks.py)


def log(message: str) -> None:
    """Print a progress or log line on rank 0 only, to stderr (stdout carries results only)."""
    if distributed.is_main():
        _echo(message)


@contextlib.contextmanager
def echo_through(writer: Callable[[str], None]) -> Iterator[None]:
    """Send :func:`log`'s lines through ``writer`` for a while (a progress bar keeps itself intact)."""
    global _echo
    previous, _echo = _echo, writer
    try:
        yield
    finally:
        _echo = previous


@dataclass
class Amp:
    """Mixed precision for GPU training: bf16, or fp16 with dynamic loss scaling."""

    dtype: str = "float16"
    scaler: Optional[paddle.amp.GradScaler] = None

    @classmethod
    def create(cls, enabled: bool, dtype: str) -> Optional["Amp"]:
        if not enabled:
            return None
        if dtype not in ("float16", "bfloat16"):
            raise ValueError(f"amp_dtype must be 'float16' or 'bfloat16', got {dtype!r}")
        if not paddle.is_compiled_with_cuda() or "gpu" not in paddle.get_device():
            log("use_amp ignored: mixed precision is for GPUs (Paddle has no useful bf16/fp16 CPU kernels)")
            return None
        scaler = paddle.amp.GradScaler(init_loss_scaling=2.0 ** 15) if dtype == "float16" else None
        return cls(dtype, scaler)


@dataclass
class TrainStats:
    """What the updates since the last log line did: each task's losses (one per update it took
    part in) and the number of examples trained on."""

    losses: Dict[str, List[paddle.Tensor]] = field(default_factory=dict)
    samples: int = 0
    last_time: float = field(default_factory=time.time)
    last_step: int = 0

    def add(self, work: "Work", losses: Mapping[str, paddle.Tensor]) -> None:
        for task, loss in losses.items():
            self.losses.setdefault(task, []).append(loss)
        for _, batches in work:  # a joint group's tasks share their examples: count them once
            batch = next(iter(batches.values()))
            self.samples += len(batch["example_ids"] if "example_ids" in batch else next(iter(batch.values())))


def check_finite_parameters(model: MultiTaskModel, step: int, last_checkpoint: Optional[str]) -> None:
    finite = paddle.stack([paddle.isfinite(p).all() for p in model.parameters()]).all()
    if not bool(finite):
        bad = [name for name, p in model.named_parameters() if not bool(paddle.isfinite(p).all())]
        raise NonFiniteLossError(f"parameters are not finite after global step {step} ({len(bad)} tensors, e.g. "
                                 f"{bad[:3]}); no checkpoint written. Last good checkpoint: "
                                 f"{last_checkpoint or 'none written in this run'}")


@dataclass
class LossGuard:
    """Looks at every step's loss before its update: a non-finite loss stops training
    with :class:`NonFiniteLossError`, or, with ``skip``, the batch is dropped (no update)
    and counted in ``skipped``.

    On CPU reading the loss costs nothing (the step has finished when the forward
    returns). On GPU it would force a device sync per step, so there the check is
    deferred to the logging and saving points (``flush``) unless ``skip`` is on, which
    needs the answer before the update."""

    skip: bool = False
    skipped: int = 0
    saver: Optional[Saver] = None
    _pending: List = field(default_factory=list)

    def admit(self, task: str, step: int, loss: paddle.Tensor) -> bool:
        """True when the step's update should be applied."""
        if not self.skip and "gpu" in paddle.get_device():
            self._pending.append((task, step, loss.detach()))
            return True
        value = float(loss)
        finite = distributed.all_ranks_agree(math.isfinite(value)) if self.skip else math.isfinite(value)
        if finite:
            return True
        if not self.skip:
            self._stop(task, step, value)
        self.skipped += 1
        log(f"task {task}: non-finite loss ({value}) at global step {step}: batch skipped, no update "
            f"({self.skipped} skipped so far)")
        return False

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        for task, step, loss in pending:
            value = float(loss)
            if not math.isfinite(value):
                self._stop(task, step, value)

    def _stop(self, task: str, step: int, value: float) -> None:
        last = self.saver.last_checkpoint if self.saver is not None else None
        raise NonFiniteLossError(f"task {task}: loss is {value} at global step {step}; training stopped. "
                                 f"Last good checkpoint: {last or 'none written in this run'}")


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


@dataclass
class Plan:
    """Which tasks train in each update. A *unit* is one task, or a joint group of tasks whose
    readers serve the same examples (one backbone pass, every member's loss); ``units[u]`` holds
    the trainer indices of unit ``u``. Row ``s`` of ``updates`` lists the units of update ``s+1``
    (``-1`` pads rows with fewer units).

    A static schedule's plan is drawn up front from a seed: identical on every rank, and resuming
    needs only the step number. A dynamic schedule's (``blocks``, ``sampler.BlockDraws``) has
    ``total`` updates of which ``updates`` holds those drawn so far; the next block is drawn
    when an update beyond them is asked for, and its decisions are in ``state()``."""

    units: List[Tuple[int, ...]]
    updates: np.ndarray
    schedule: Optional[object] = None  # the paddlepalm.sampling schedule it was drawn by (None: Fixed)
    blocks: Optional[object] = None
    total: Optional[int] = None

    @classmethod
    def single(cls, steps: int) -> "Plan":
        return cls([(0,)], np.zeros((steps, 1), dtype="int64"))

    def __len__(self) -> int:
        return len(self.updates) if self.total is None else self.total

    def _draw_to(self, step: int) -> None:
        while self.blocks is not None and len(self.updates) < min(step, len(self)):
            self.updates = np.concatenate([self.updates, self.blocks.draw(len(self.updates) + 1)])

    def units_at(self, step: int) -> List[Tuple[int, ...]]:
        self._draw_to(step)
        return [self.units[u] for u in self.updates[step - 1] if u >= 0]

    def steps_done(self, step: int, num_tasks: int) -> np.ndarray:
        """Updates each task took part in among the first ``step``."""
        self._draw_to(step)
        drawn = self.updates[:step]
        per_unit = np.bincount(drawn[drawn >= 0], minlength=len(self.units))
        counts = np.zeros(num_tasks, dtype="int64")
        for unit, count in zip(self.units, per_unit):
            counts[list(unit)] += count
        return counts

    def after_update(self, step: int, losses: Mapping[str, paddle.Tensor]) -> None:
        """Hand the update's losses to a schedule that samples by them."""
        if getattr(self.schedule, "uses_losses", False):
            self.schedule.observe_losses(step, {task: float(loss) for task, loss in losses.items()})

    @property
    def config(self) -> Dict:
        return self.schedule.config() if self.schedule is not None else {"name": "Fixed"}

    def state(self) -> Dict:
        """For the checkpoint: the schedule, and a dynamic plan's decisions and observations."""
        return {"schedule": self.config, **(self.blocks.state() if self.blocks is not None else {})}

    def restore(self, state: Optional[Dict], where: str) -> None:
        """Take up the plan of the run that wrote ``state`` (a checkpoint without one is PALM's Fixed)."""
        recorded = (state or {}).get("schedule", {"name": "Fixed"})
        if recorded != self.config:
            raise checkpoint.CheckpointError(f"{where}: the run resumed sampled its tasks with {recorded}, this "
                                             f"run with {self.config}")
        if self.blocks is not None:
            self.updates = self.blocks.restore(state)


Work = Sequence[Tuple[Sequence, Dict[str, Dict[str, np.ndarray]]]]  # (unit's trainers, {task: batch})


def unit_batches(trainers: Sequence) -> Dict[str, Dict[str, np.ndarray]]:
    """The next training batch of each member of a unit; a joint group's must hold the same examples."""
    batches = {t.name: t._next_train_batch() for t in trainers}
    if len(trainers) > 1:
        check_same_examples(batches)
    return batches


_BACKBONE_ARRAYS = ("token_ids", "segment_ids", "seq_lens", "char_ids")


def check_same_examples(batches: Mapping[str, Dict[str, np.ndarray]]) -> None:
    """A joint batch runs the backbone once: every task's inputs must be the first task's."""
    (first, reference), *others = batches.items()
    for task, batch in others:
        for name in _BACKBONE_ARRAYS:
            if name in reference and not np.array_equal(reference[name], batch.get(name)):
                raise ValueError(f"joint batch: task {task}'s {name} differ from task {first}'s (examples "
                                 f"{batch.get('example_ids')} vs {reference.get('example_ids')}): the readers "
                                 "of a joint group must serve the same tokens (no masking reader in a group)")


def _micro_batches(trainers: Sequence, batches: Dict[str, Dict[str, np.ndarray]], parts: int):
    """``(micro-batches {task: batch}, weight)`` pairs whose weighted losses add up to the batch's."""
    if parts == 1:
        yield batches, 1.0
        return
    split = {t.name: t.train_reader.split_batch(batches[t.name], parts) for t in trainers}
    first = split[trainers[0].name]
    for i in range(len(first)):
        if first[i][1] > 0:  # a micro-batch with none of the loss's items (no masked token) adds nothing
            yield {name: pieces[i][0] for name, pieces in split.items()}, first[i][1]


class GradientBank:
    """Each task's gradient of one update, kept apart: so that it can be clipped on its own
    before the tasks' gradients are combined (``Trainer(clip_norm=...)``), and for the gradient
    methods of loss balancing (PCGrad combines them; GradNorm reads the norms of those of one
    layer). ``only``: keep the gradients of these parameters alone; the update's gradient then
    comes from the ordinary backward (``partial``); ``boundary()`` gives the input of their layer
    in the current pass, where the per-task backward stops."""

    def __init__(self, parameters: Sequence[paddle.Tensor], only: Optional[Sequence[paddle.Tensor]] = None,
                 boundary: Optional[Callable[[], Optional[paddle.Tensor]]] = None):
        trainable = [p for p in parameters if not p.stop_gradient]
        self.params = trainable if only is None else list(only)
        self.partial = only is not None
        # paddle.grad runs the custom backward functions (utils/cpu_speed.py) between the loss and
        # the tensors it is asked for; each returns the gradients of its inputs, which Paddle
        # accepts only for tensors on the way to an asked one. A partial bank asks for every
        # parameter from the first kept one on (in model order: the later layers and the heads) and
        # for the layer's input, where the backward stops; without that input (a layer that runs
        # more than once per pass, as ALBERT's shared one), for every parameter.
        first = min(i for i, p in enumerate(trainable) if any(p is q for q in self.params)) if only else 0
        self._trainable, self._downstream = trainable, trainable[first:]
        self._boundary = boundary
        self.grads: Dict[str, Dict[int, paddle.Tensor]] = {}

    def add(self, task: str, loss: paddle.Tensor, retain_graph: bool) -> None:
        """Add the gradient of ``loss`` to ``task``'s account (``paddle.grad``: the parameters'
        ``.grad`` stay untouched until ``combine``)."""
        account = self.grads.setdefault(task, {})
        stop = self._boundary() if self._boundary is not None else None
        if self.partial and stop is not None and not stop.stop_gradient:
            asked = self._downstream + [stop]
        else:
            asked = self._trainable
        grads = paddle.grad([loss], asked, retain_graph=retain_graph, allow_unused=True)
        position = {id(p): j for j, p in enumerate(asked)}
        for i, param in enumerate(self.params):
            grad = grads[position[id(param)]]
            if grad is not None:
                account[i] = account[i] + grad if i in account else grad

    def average_over_ranks(self) -> None:
        """Data parallelism: every task's gradient becomes its mean over ranks (one all-reduce),
        before any clipping or combination, so every rank combines the same gradients."""
        distributed.average_tensors([grad for grads in self.grads.values() for grad in grads.values()])

    def gradients_of(self, params: Sequence[paddle.Tensor]) -> Dict[str, List[paddle.Tensor]]:
        """Each task's gradients of ``params`` (those it has)."""
        where = {id(p): i for i, p in enumerate(self.params)}
        return {task: [grads[where[id(p)]] for p in params if where.get(id(p)) in grads]
                for task, grads in self.grads.items()}

    def combine(self, clip_norms: Mapping[str, Optional[float]],
                combine_fn: Callable[[Dict[str, Dict[int, paddle.Tensor]]], Dict[int, paddle.Tensor]]) -> None:
        """Set every parameter's gradient to ``combine_fn`` (the balancer's: the sum, or PCGrad's
        projection) of the tasks' gradients, each clipped to its norm first."""
        clipped: Dict[str, Dict[int, paddle.Tensor]] = {}
        for task, grads in self.grads.items():
            scale = clip_scale(list(grads.values()), clip_norms.get(task))
            clipped[task] = grads if scale is None else {i: grad * scale for i, grad in grads.items()}
        for i, grad in combine_fn(clipped).items():
            self.params[i]._set_grad_ivar(grad)


def clip_scale(grads: Sequence[paddle.Tensor], clip_norm: Optional[float]) -> Optional[paddle.Tensor]:
    """Paddle's ``ClipGradByGlobalNorm`` factor ``c / max(norm, c)``; None when not clipping."""
    if clip_norm is None or not grads:
        return None
    norm = paddle.sqrt(paddle.add_n([paddle.sum(g.astype("float32") ** 2) for g in grads]))
    return clip_norm / paddle.maximum(norm, paddle.to_tensor(clip_norm, dtype="float32"))


def _forward(model: MultiTaskModel, batches: Dict[str, Dict[str, np.ndarray]], amp: Optional[Amp]):
    tensors = {task: to_tensors(batch) for task, batch in batches.items()}
    if amp is None:
        return model.forward_tasks(tensors)
    with paddle.amp.auto_cast(dtype=amp.dtype):
        return model.forward_tasks(tensors)


def _backward(loss: paddle.Tensor, amp: Optional[Amp], retain_graph: bool = False) -> None:
    if amp is not None and amp.scaler is not None:
        loss = amp.scaler.scale(loss)
    loss.backward(retain_graph=retain_graph)


def train_update(model: MultiTaskModel, optimizer, work: Work, amp: Optional[Amp] = None,
                 guard: Optional[LossGuard] = None, step: int = 0,
                 balancer: Optional[Balancer] = None) -> Dict[str, paddle.Tensor]:
    """One optimizer update over ``work``: for each unit (one task, or a joint group on the same
    examples) and each of its micro-batches, one forward pass (the backbone once) and the backward
    of its tasks' weighted losses; the gradients add up; then one step. Returns each task's
    (unweighted, detached) loss. ``guard`` sees the weighted total before the step (non-finite:
    stop, or skip the update).

    A task's loss enters multiplied by its ``loss_weight`` and by the ``balancer``'s weight
    (``paddlepalm.balancing``; None: static weights). The tasks' gradients are kept apart
    (``GradientBank``) for per-task clipping and for the balancer's gradient methods."""
    model.train()
    balancer = balancer if balancer is not None else _STATIC
    settings = {t.name: TaskSettings.of(t) for unit, _ in work for t in unit}
    balancer.check_update(list(settings), {task: s.micro_batches for task, s in settings.items()})
    bank = _gradient_bank(model, settings, amp, balancer)
    weights = None if balancer.needs_losses_first else balancer.loss_weights(list(settings))
    losses: Dict[str, paddle.Tensor] = {}
    held: List[Tuple[str, paddle.Tensor]] = []  # terms whose backward waits for every loss (FAMO)
    for unit, batches in work:
        for micro, weight in _micro_batches(unit, batches, settings[unit[0].name].micro_batches):
            terms = []
            for task, output in _forward(model, micro, amp).items():
                loss = output["loss"] * weight if weight != 1.0 else output["loss"]
                losses[task] = losses[task] + loss.detach() if task in losses else loss.detach()
                terms.append((task, _scaled(loss, settings[task].loss_weight)))
            if weights is None:
                held.extend(terms)
            else:
                _backward_terms(terms, weights, bank, amp)
    weighed = {task: loss * settings[task].loss_weight for task, loss in losses.items()}  # what the balancer weighs
    seen = _rank_mean(weighed) if balancer.reads_losses else {}
    if weights is None:
        weights = balancer.loss_weights(list(settings), seen)
        _backward_terms(held, weights, bank, amp)
    total = paddle.add_n([_scaled(loss, weights[task]) for task, loss in weighed.items()])
    if guard is None or guard.admit("+".join(losses), step, total):
        if bank is not None:
            bank.average_over_ranks()
        if bank is not None and not bank.partial:
            bank.combine({task: s.clip_norm for task, s in settings.items()}, balancer.combine)
        else:
            distributed.average_gradients(model.parameters())
        if amp is not None and amp.scaler is not None:
            amp.scaler.step(optimizer)
            amp.scaler.update()
        else:
            optimizer.step()
        ema = getattr(optimizer, "palm_ema", None)
        if ema is not None:
            ema.update()
        if balancer.reads_losses:
            balancer.after_update(seen, bank, lambda: _losses_after_step(model, work, settings, amp))
    # set_to_zero=False leaves the grads of heads that did not run as None, so
    # the optimizer skips them: no momentum or decay update for inactive heads.
    optimizer.clear_grad(set_to_zero=False)
    scheduler = optimizer._learning_rate
    if isinstance(scheduler, paddle.optimizer.lr.LRScheduler):
        scheduler.step()
    return losses


_STATIC = Static()


def _scaled(loss: paddle.Tensor, factor: float) -> paddle.Tensor:
    return loss * factor if factor != 1.0 else loss


def _gradient_bank(model: MultiTaskModel, settings: Mapping[str, TaskSettings], amp: Optional[Amp],
                   balancer: Balancer) -> Optional[GradientBank]:
    """The update's per-task gradients: every parameter's for per-task clipping and PCGrad, one
    layer's for GradNorm; None when nothing needs them."""
    clipping = any(s.clip_norm is not None for s in settings.values())
    if not clipping and balancer.task_gradients is None:
        return None
    if amp is not None and amp.scaler is not None:
        raise ValueError(f"per-task gradients ({'a per-task clip_norm' if clipping else balancer.name}) cannot be "
                         "taken from fp16-scaled losses: use amp_dtype='bfloat16' (or the optimizer's global "
                         "grad_clip_norm)")
    if clipping or balancer.task_gradients == "all":
        return GradientBank(model.parameters())
    return GradientBank(model.parameters(), only=balancer.layer_parameters(model), boundary=balancer.layer_input)


def _backward_terms(terms: Sequence[Tuple[str, paddle.Tensor]], weights: Mapping[str, float],
                    bank: Optional[GradientBank], amp: Optional[Amp]) -> None:
    """The backward of one pass's weighted task losses: into the bank task by task, and/or as one sum."""
    terms = [(task, _scaled(loss, weights[task])) for task, loss in terms]
    if bank is not None:
        for i, (task, loss) in enumerate(terms):
            bank.add(task, loss, retain_graph=bank.partial or i < len(terms) - 1)
    if bank is None or bank.partial:
        _backward(paddle.add_n([loss for _, loss in terms]) if len(terms) > 1 else terms[0][1], amp)


def _rank_mean(losses: Mapping[str, paddle.Tensor]) -> Dict[str, float]:
    return dict(zip(losses, distributed.mean_over_ranks([float(loss) for loss in losses.values()])))


def _losses_after_step(model: MultiTaskModel, work: Work, settings: Mapping[str, TaskSettings],
                       amp: Optional[Amp]) -> Dict[str, float]:
    """The update's weighed task losses on the same batches after its step (forward only: FAMO)."""
    losses: Dict[str, paddle.Tensor] = {}
    with paddle.no_grad():
        for unit, batches in work:
            for micro, weight in _micro_batches(unit, batches, settings[unit[0].name].micro_batches):
                for task, output in _forward(model, micro, amp).items():
                    loss = output["loss"] * weight if weight != 1.0 else output["loss"]
                    losses[task] = losses[task] + loss if task in losses else loss
    return _rank_mean({task: loss * settings[task].loss_weight for task, loss in losses.items()})


def train_step(model: MultiTaskModel, optimizer, task: str, batch: Dict[str, np.ndarray],
               amp: Optional[Amp] = None, guard: Optional[LossGuard] = None, step: int = 0,
               trainer=None) -> paddle.Tensor:
    """One update of ``task`` alone on ``batch`` (``train_update`` with one unit); returns its loss."""
    member = trainer if trainer is not None else _Bare(task)
    return train_update(model, optimizer, [([member], {task: batch})], amp, guard, step)[task]


@dataclass
class _Bare:
    """A task with the default settings, for ``train_step`` without its ``Trainer``."""

    name: str


def run_training(model: MultiTaskModel, optimizer, trainers: Sequence, plan: Plan, start_step: int,
                 print_steps: int, saver: Optional[Saver], state_fn: Callable[[int], Dict],
                 amp: Optional[Amp] = None, after_step: Optional[Callable[[int], bool]] = None,
                 guard: Optional[LossGuard] = None, balancer: Optional[Balancer] = None,
                 sinks: Optional[Sinks] = None) -> int:
    """Train the updates ``plan`` holds after ``start_step``; return the final global step.

    ``after_step(step)`` runs after each update (evaluation); training stops when it returns True.
    ``guard`` checks every loss (default: stop at a non-finite one). ``balancer``: see ``train_update``.
    ``sinks`` (paddlepalm/sinks.py) see a ``start`` record, an ``update`` record per step and, with
    each log line, its ``train`` record (:func:`train_record`)."""
    if optimizer is None:
        raise RuntimeError("call build_backward(optimizer) before train()")
    if not 0 <= start_step <= len(plan):
        raise ValueError(f"the run is at global step {start_step}, beyond its {len(plan)} scheduled steps "
                         "(a checkpoint of another run?)")
    guard = guard or LossGuard()
    guard.saver = saver
    if saver is not None and distributed.is_main():
        for name in checkpoint.recover(saver.save_path):
            log(f"restored {os.path.join(saver.save_path, name)} from the copy an interrupted save left")
    distributed.broadcast_parameters(model)
    stats = TrainStats(last_step=start_step)
    step = start_step
    total = len(plan)
    sinks = sinks if sinks is not None else Sinks()
    sinks.log(start_step, {"event": "start", "start_step": start_step, "total_steps": total})
    for step in range(start_step + 1, total + 1):
        units = [[trainers[i] for i in unit] for unit in plan.units_at(step)]
        work = [(members, unit_batches(members)) for members in units]
        losses = train_update(model, optimizer, work, amp, guard, step, balancer)
        plan.after_update(step, losses)
        for members in units:
            for trainer in members:
                trainer._steps_done += 1
        stats.add(work, losses)
        sinks.log(step, UPDATE)
        if print_steps > 0 and (step % print_steps == 0 or step == total):
            guard.flush()
            record = train_record(step, total, trainers, stats, optimizer)
            _print_progress(record, [t.name for members in units for t in members])
            sinks.log(step, record)
        stop = after_step is not None and after_step(step)  # evaluate first: the checkpoint then holds it
        save_if_due(saver, step, model, optimizer, state_fn, guard)
        if stop:
            break
    guard.flush()
    if step > start_step:
        save_final(saver, step, model, optimizer, state_fn, guard)
    return step


def save_if_due(saver: Optional[Saver], step: int, model, optimizer, state_fn,
                guard: Optional[LossGuard] = None) -> None:
    """Write the saver's checkpoints when ``step`` is a multiple of ``save_steps``; run after
    every training step, by ``train()`` and by ``train_one_step`` alike."""
    if saver is not None and step % saver.save_steps == 0:
        _save(saver, step, model, optimizer, state_fn, guard)


def save_final(saver: Optional[Saver], step: int, model, optimizer, state_fn,
               guard: Optional[LossGuard] = None) -> None:
    """At the end of training: save the last step unless it was just saved."""
    if saver is not None and saver.last_saved_step != step:
        _save(saver, step, model, optimizer, state_fn, guard)


def _save(saver: Saver, step: int, model, optimizer, state_fn, guard: Optional[LossGuard]) -> None:
    if guard is not None:
        guard.flush()
    for path in saver.save(step, model, optimizer, state_fn(step)):
        log(f"checkpoint saved to {path}")


def train_record(step: int, total: int, trainers: Sequence, stats: TrainStats, optimizer) -> Dict[str, Any]:
    """The ``train`` record of a log line (then ``stats`` restart): per task, the mean loss of its
    updates since the last line (skipped, non-finite losses left out), how many of the window's
    updates it took part in (``share``: the realized sampling proportion) and its epoch position;
    the learning rate of the next update, steps and examples per second."""
    now = time.time()
    window = max(step - stats.last_step, 1)
    seconds = max(now - stats.last_time, 1e-9)
    tasks = {}
    for trainer in trainers:
        losses = [float(v) for v in stats.losses.get(trainer.name) or []]
        finite = [v for v in losses if math.isfinite(v)]
        tasks[trainer.name] = {"loss": sum(finite) / len(finite) if finite else None, "updates": len(losses),
                               "share": len(losses) / window, "epoch": trainer._epoch,
                               "batch": trainer._batch_in_epoch, "steps_per_epoch": trainer.steps_pur_epoch}
    record = {"event": "train", "step": step, "total_steps": total, "lr": float(optimizer.get_lr()),
              "steps_per_s": (step - stats.last_step) / seconds, "samples_per_s": stats.samples / seconds,
              "tasks": tasks}
    stats.losses, stats.samples = {}, 0
    stats.last_time, stats.last_step = now, step
    return record


def _print_progress(record: Dict[str, Any], names: Sequence[str]) -> None:
    """PALM's log line for the tasks of the last update (each task's mean loss since the last line)."""
    parts = []
    for name in names:
        task = record["tasks"][name]
        loss = float("nan") if task["loss"] is None else task["loss"]
        parts.append(f"{name}: step {task['batch']}/{task['steps_per_epoch']} (epoch {task['epoch']}), loss: {loss:.3f}")
    log(f"global step: {record['step']}, {', '.join(parts)}, speed: {record['steps_per_s']:.2f} steps/s")


UPDATE: Dict[str, Any] = {"event": "update"}  # the record sinks see after every update
