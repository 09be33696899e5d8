"""The training loop shared by ``Trainer`` (one task) and ``MultiHeadTrainer`` (several)."""
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import paddle

from paddlepalm import checkpoint, distributed
from paddlepalm.model import MultiTaskModel, to_tensors
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
    last_saved_step: int = -1
    last_checkpoint: Optional[str] = None
    # writes the inference model of 'predict' saves: exporter(directory, weights or None)
    exporter: Optional[Callable[[str, Optional[Dict]], None]] = None

    @classmethod
    def parse(cls, save_path: str, save_steps: int, save_type: str) -> "Saver":
        types = [t.strip() for t in save_type.split(",") if t.strip()]
        unknown = [t for t in types if t not in ("ckpt", "predict")]
        if unknown or not types:
            raise ValueError(f"save_type must be 'ckpt', 'predict' or 'ckpt,predict', got {save_type!r}")
        if isinstance(save_steps, bool) or not isinstance(save_steps, int) or save_steps <= 0:
            raise ValueError(f"save_steps must be a positive integer, got {save_steps!r}")
        return cls(save_path, int(save_steps), tuple(types))

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
        if "predict" in self.save_types:
            weights = ema.averaged_state_dict(model) if ema is not None else None
            written.extend(self._export(os.path.join(self.save_path, f"pred.step{step}"), weights))
        return written

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


def log(message: str) -> None:
    """Print on rank 0 only."""
    if distributed.is_main():
        print(message, flush=True)


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
    losses: Dict[str, List[paddle.Tensor]] = field(default_factory=dict)
    last_time: float = field(default_factory=time.time)
    last_step: int = 0


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


def train_step(model: MultiTaskModel, optimizer, task: str, batch: Dict[str, np.ndarray],
               amp: Optional[Amp] = None, guard: Optional[LossGuard] = None, step: int = 0) -> paddle.Tensor:
    """One optimization step of ``task`` on ``batch``; returns the (detached) loss.
    ``guard`` sees the loss before the update (non-finite: stop, or skip the batch)."""
    model.train()
    if amp is None:
        loss = model(task, to_tensors(batch))["loss"]
    else:
        with paddle.amp.auto_cast(dtype=amp.dtype):
            loss = model(task, to_tensors(batch))["loss"]
    if guard is None or guard.admit(task, step, loss):
        if amp is not None and amp.scaler is not None:
            amp.scaler.scale(loss).backward()
            distributed.average_gradients(model.parameters())
            amp.scaler.step(optimizer)
            amp.scaler.update()
        else:
            loss.backward()
            distributed.average_gradients(model.parameters())
            optimizer.step()
        ema = getattr(optimizer, "palm_ema", None)
        if ema is not None:
            ema.update()
    # set_to_zero=False leaves the grads of heads that did not run as None, so
    # the optimizer skips them: no momentum or decay update for inactive heads.
    optimizer.clear_grad(set_to_zero=False)
    scheduler = optimizer._learning_rate
    if isinstance(scheduler, paddle.optimizer.lr.LRScheduler):
        scheduler.step()
    return loss.detach()


def run_training(model: MultiTaskModel, optimizer, trainers: Sequence, schedule: np.ndarray, start_step: int,
                 print_steps: int, saver: Optional[Saver], state_fn: Callable[[int], Dict],
                 amp: Optional[Amp] = None, after_step: Optional[Callable[[int], bool]] = None,
                 guard: Optional[LossGuard] = None) -> int:
    """Train ``schedule[start_step:]`` (a task index per step); return the final global step.

    ``after_step(step)`` runs after each step (evaluation); training stops when it returns True.
    ``guard`` checks every loss (default: stop at a non-finite one)."""
    if optimizer is None:
        raise RuntimeError("call build_backward(optimizer) before train()")
    if not 0 <= start_step <= len(schedule):
        raise ValueError(f"the run is at global step {start_step}, beyond its {len(schedule)} scheduled steps "
                         "(a checkpoint of another run?)")
    guard = guard or LossGuard()
    guard.saver = saver
    if saver is not None and distributed.is_main():
        for name in checkpoint.recover(saver.save_path):
            log(f"restored {os.path.join(saver.save_path, name)} from the copy an interrupted save left")
    distributed.broadcast_parameters(model)
    stats = TrainStats(last_step=start_step)
    step = start_step
    total = len(schedule)
    for step in range(start_step + 1, total + 1):
        trainer = trainers[int(schedule[step - 1])]
        batch = trainer._next_train_batch()
        loss = train_step(model, optimizer, trainer.name, batch, amp, guard, step)
        trainer._steps_done += 1
        stats.losses.setdefault(trainer.name, []).append(loss)
        if print_steps > 0 and (step % print_steps == 0 or step == total):
            guard.flush()
            _print_progress(step, trainer, stats)
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


def _print_progress(step: int, trainer, stats: TrainStats) -> None:
    now = time.time()
    speed = (step - stats.last_step) / max(now - stats.last_time, 1e-9)
    losses = [float(v) for v in stats.losses.get(trainer.name) or []]
    finite = [v for v in losses if math.isfinite(v)]  # skipped batches (LossGuard.skip) are left out
    loss = sum(finite) / len(finite) if finite else float("nan")
    log(f"global step: {step}, {trainer.name}: step {trainer._batch_in_epoch}/{trainer.steps_pur_epoch} "
        f"(epoch {trainer._epoch}), loss: {loss:.3f}, speed: {speed:.2f} steps/s")
    stats.losses = {}
    stats.last_time, stats.last_step = now, step
