"""One training session: the model, the optimization, the tasks, the plan of updates, the step
counter, the loss guard and the callbacks.

``Session.step(work)`` makes one update (paddlepalm/update.py), counts it, and hands the result to
the callbacks, in order; ``Session.run()`` does that for every update of the plan still to come.
``Trainer.train``, ``MultiHeadTrainer.train``, both ``train_one_step`` and ``palm train`` go
through it. What happens around an update is a callback (:class:`Callback`), not a branch here:

- :class:`ScheduleFeedback`: a sampling schedule that samples by training losses sees them;
- :class:`Records`: PALM's log line every ``print_steps``, and the sinks' records (the metrics
  file, VisualDL, the progress bar);
- :class:`Evaluate`: evaluation, the best checkpoint, early stopping (it may stop the run);
- :class:`Save`: the saver's checkpoints every ``save_steps``, and the last step's.

``train()`` uses all four; ``train_one_step`` (PALM's contract: returns, saves) the first and the
last; a PALM script prints its own lines and evaluates when it likes.
"""
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import paddle

from paddlepalm import checkpoint, distributed, update
from paddlepalm.balancing.base_balancer import Balancer
from paddlepalm.engine import LossGuard, Plan, Saver
from paddlepalm.logs import log
from paddlepalm.model import MultiTaskModel
from paddlepalm.sinks import Sinks
from paddlepalm.update import Optimization, Work


@dataclass
class TrainingState:
    """The run's position: updates done so far (the global step)."""

    global_step: int = 0


@dataclass
class TaskProgress:
    """Where one task is: updates it took part in, its epoch, and the batch within the epoch."""

    steps_done: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0

    def state(self) -> Dict[str, int]:
        return {"steps_done": self.steps_done, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch}


@dataclass
class Control:
    """What the callbacks decide after a step."""

    should_stop: bool = False


@dataclass
class StepResult:
    """One update: its global step, the work it trained, each task's loss (detached) and the
    terms its head returned beside it (``update.loss_terms``), and what the callbacks decided after it."""

    step: int
    work: Work
    losses: Dict[str, paddle.Tensor]
    terms: Dict[str, Dict[str, paddle.Tensor]] = field(default_factory=dict)
    control: Control = field(default_factory=Control)


class Callback:
    """Sees the session begin, each step end, and the session end (in reverse order: the last
    registered finishes first, as nested contexts exit)."""

    def on_train_begin(self, session: "Session") -> None:
        pass

    def on_step_end(self, session: "Session", result: StepResult, control: Control) -> None:
        pass

    def on_train_end(self, session: "Session") -> None:
        pass


class Session:
    """Trains ``trainers`` (their ``next_batch``, ``progress``, settings) on ``model`` with
    ``optimization``, the updates drawn by ``plan``; ``state.global_step`` counts the updates.
    ``write`` prints the log lines (through a progress bar while one is shown)."""

    def __init__(self, model: MultiTaskModel, optimization: Optimization, trainers: Sequence, plan: Plan,
                 state: TrainingState, guard: LossGuard, balancer: Optional[Balancer] = None,
                 callbacks: Sequence[Callback] = (), write: Callable[[str], None] = log):
        if optimization is None or optimization.optimizer is None:
            raise RuntimeError("call build_backward(optimizer) before training")
        self.model, self.optimization, self.trainers, self.plan = model, optimization, list(trainers), plan
        self.state, self.guard, self.balancer = state, guard, balancer
        self.callbacks = list(callbacks)
        self.write = write
        self.start_step = state.global_step

    @property
    def total_steps(self) -> int:
        return len(self.plan)

    def work_at(self, step: int) -> Work:
        """The units the plan draws for ``step`` and the next batch of each of their tasks."""
        units = [[self.trainers[i] for i in unit] for unit in self.plan.units_at(step)]
        return [(members, update.unit_batches(members)) for members in units]

    def step(self, work: Work) -> StepResult:
        """One update over ``work``, counted, then every callback's ``on_step_end``."""
        step = self.state.global_step + 1
        reported = update.train_update(self.model, self.optimization, work, self.guard, step, self.balancer)
        for members, _ in work:
            for trainer in members:
                trainer.progress.steps_done += 1
        self.state.global_step = step
        result = StepResult(step, work, reported.losses, reported.terms)
        for callback in self.callbacks:
            callback.on_step_end(self, result, result.control)
        return result

    def run(self) -> int:
        """Train the plan's updates after ``state.global_step`` (until a callback stops the run);
        returns the final global step."""
        if not 0 <= self.start_step <= self.total_steps:
            raise ValueError(f"the run is at global step {self.start_step}, beyond its {self.total_steps} "
                             "scheduled steps (a checkpoint of another run?)")
        distributed.broadcast_parameters(self.model)
        for callback in self.callbacks:
            callback.on_train_begin(self)
        for step in range(self.start_step + 1, self.total_steps + 1):
            if self.step(self.work_at(step)).control.should_stop:
                break
        self.guard.flush()
        for callback in reversed(self.callbacks):
            callback.on_train_end(self)
        return self.state.global_step


# ---------------------------------------------------------------------------- callbacks
class ScheduleFeedback(Callback):
    """Hands each update's losses to a schedule that samples by them (``Dynamic(by='loss')``)."""

    def on_step_end(self, session: Session, result: StepResult, control: Control) -> None:
        session.plan.after_update(result.step, result.losses)


@dataclass
class TrainStats:
    """What the updates since the last log line did: each task's losses (one per update it took
    part in), the loss terms its head returned beside them, and the number of examples trained on."""

    losses: Dict[str, List[paddle.Tensor]] = field(default_factory=dict)
    terms: Dict[str, Dict[str, List[paddle.Tensor]]] = field(default_factory=dict)
    samples: int = 0
    last_time: float = field(default_factory=time.time)
    last_step: int = 0

    def add(self, work: Work, losses: Mapping[str, paddle.Tensor],
            terms: Optional[Mapping[str, Mapping[str, paddle.Tensor]]] = None) -> None:
        for task, loss in losses.items():
            self.losses.setdefault(task, []).append(loss)
        for task, named in (terms or {}).items():
            for name, value in named.items():
                self.terms.setdefault(task, {}).setdefault(name, []).append(value)
        for _, batches in work:  # a joint group's tasks share their examples: count them once
            batch = next(iter(batches.values()))
            self.samples += len(batch["example_ids"] if "example_ids" in batch else next(iter(batch.values())))


UPDATE: Dict[str, Any] = {"event": "update"}  # the record sinks see after every update


class Records(Callback):
    """The sinks' records (``start``, ``update`` after every step, ``train`` with each log line)
    and PALM's log line every ``print_steps`` steps and at the last one (0: none)."""

    def __init__(self, sinks: Sinks, print_steps: int):
        self.sinks, self.print_steps = sinks, print_steps
        self.stats = TrainStats()

    def on_train_begin(self, session: Session) -> None:
        self.stats = TrainStats(last_step=session.start_step)
        self.sinks.log(session.start_step, {"event": "start", "start_step": session.start_step,
                                            "total_steps": session.total_steps})

    def on_step_end(self, session: Session, result: StepResult, control: Control) -> None:
        self.stats.add(result.work, result.losses, result.terms)
        self.sinks.log(result.step, UPDATE)
        total = session.total_steps
        if self.print_steps > 0 and (result.step % self.print_steps == 0 or result.step == total):
            session.guard.flush()
            record = train_record(result.step, total, session.trainers, self.stats,
                                  session.optimization.optimizer)
            session.write(log_line(record, [t.name for members, _ in result.work for t in members]))
            self.sinks.log(result.step, record)


class Evaluate(Callback):
    """The evaluation loop (paddlepalm/evaluation.py) after each step, and at the end; it stops the
    run when early stopping says so."""

    def __init__(self, loop, state_fn: Callable[[int], Dict]):
        self.loop, self.state_fn = loop, state_fn

    def on_step_end(self, session: Session, result: StepResult, control: Control) -> None:
        # evaluate before the step's save: the checkpoint then holds the evaluation's state
        if self.loop.after_step(result.step, session.model, self.state_fn):
            control.should_stop = True

    def on_train_end(self, session: Session) -> None:
        self.loop.finish(session.state.global_step, session.model, self.state_fn)


class Save(Callback):
    """The saver's checkpoints every ``save_steps`` steps, and the last step's at the end."""

    def __init__(self, saver: Optional[Saver], state_fn: Callable[[int], Dict]):
        self.saver, self.state_fn = saver, state_fn

    def on_train_begin(self, session: Session) -> None:
        session.guard.saver = self.saver
        if self.saver is not None and distributed.is_main():
            for name in checkpoint.recover(self.saver.save_path):
                session.write(f"restored {name} in {self.saver.save_path} from the copy an interrupted save left")

    def on_step_end(self, session: Session, result: StepResult, control: Control) -> None:
        if self.saver is not None and result.step % self.saver.save_steps == 0:
            save(self.saver, result.step, session.model, session.optimization, self.state_fn, session.guard,
                 session.write)

    def on_train_end(self, session: Session) -> None:
        if session.state.global_step > session.start_step:
            save_final(self.saver, session.state.global_step, session.model, session.optimization, self.state_fn,
                       session.guard, session.write)


def save(saver: Saver, step: int, model: MultiTaskModel, optimization: Optimization, state_fn: Callable[[int], Dict],
         guard: LossGuard, write: Callable[[str], None] = log) -> None:
    """Write the saver's checkpoints of ``step`` (the loss guard's pending checks first)."""
    guard.flush()
    for path in saver.save(step, model, optimization.optimizer, state_fn(step), optimization.ema):
        write(f"checkpoint saved to {path}")


def save_final(saver: Optional[Saver], step: int, model: MultiTaskModel, optimization: Optimization,
               state_fn: Callable[[int], Dict], guard: LossGuard, write: Callable[[str], None] = log) -> None:
    """At the end of training: save the last step unless it was just saved."""
    if saver is not None and saver.last_saved_step != step:
        save(saver, step, model, optimization, state_fn, guard, write)


def train_record(step: int, total: int, trainers: Sequence, stats: TrainStats, optimizer) -> Dict[str, Any]:
    """The ``train`` record of a log line (then ``stats`` restart): per task, the mean loss of its
    updates since the last line (skipped, non-finite losses left out), how many of the window's
    updates it took part in (``share``: the realized sampling proportion), the mean of each loss
    term its head returns beside the loss (``update.loss_terms``) and its epoch position;
    the learning rate of the next update, steps and examples per second."""
    now = time.time()
    window = max(step - stats.last_step, 1)
    seconds = max(now - stats.last_time, 1e-9)
    tasks = {}
    for trainer in trainers:
        losses = [float(v) for v in stats.losses.get(trainer.name) or []]
        finite = [v for v in losses if math.isfinite(v)]
        progress = trainer.progress
        tasks[trainer.name] = {"loss": sum(finite) / len(finite) if finite else None, "updates": len(losses),
                               "share": len(losses) / window, "epoch": progress.epoch,
                               "batch": progress.batch_in_epoch, "steps_per_epoch": trainer.steps_per_epoch}
        for name, values in (stats.terms.get(trainer.name) or {}).items():
            finite = [v for v in (float(x) for x in values) if math.isfinite(v)]
            tasks[trainer.name][name] = sum(finite) / len(finite) if finite else None
    record = {"event": "train", "step": step, "total_steps": total, "lr": float(optimizer.get_lr()),
              "steps_per_s": (step - stats.last_step) / seconds, "samples_per_s": stats.samples / seconds,
              "tasks": tasks}
    stats.losses, stats.terms, stats.samples = {}, {}, 0
    stats.last_time, stats.last_step = now, step
    return record


def log_line(record: Dict[str, Any], names: Sequence[str]) -> str:
    """PALM's log line for the tasks of the last update (each task's mean loss since the last line)."""
    parts = []
    for name in names:
        task = record["tasks"][name]
        loss = float("nan") if task["loss"] is None else task["loss"]
        parts.append(f"{name}: step {task['batch']}/{task['steps_per_epoch']} (epoch {task['epoch']}), loss: {loss:.3f}")
    return f"global step: {record['step']}, {', '.join(parts)}, speed: {record['steps_per_s']:.2f} steps/s"
