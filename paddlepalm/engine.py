"""The training loop shared by ``Trainer`` (one task) and ``MultiHeadTrainer`` (several)."""
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import paddle

from paddlepalm import checkpoint, distributed
from paddlepalm.model import MultiTaskModel, to_tensors


@dataclass
class Saver:
    """Where and when to write checkpoints (``set_saver``)."""

    save_path: str
    save_steps: int
    save_types: Sequence[str] = ("ckpt",)
    last_saved_step: int = -1
    # writes the inference model of 'predict' saves: exporter(directory, weights or None)
    exporter: Optional[Callable[[str, Optional[Dict]], None]] = None

    @classmethod
    def parse(cls, save_path: str, save_steps: int, save_type: str) -> "Saver":
        types = [t.strip() for t in save_type.split(",") if t.strip()]
        unknown = [t for t in types if t not in ("ckpt", "predict")]
        if unknown or not types:
            raise ValueError(f"save_type must be 'ckpt', 'predict' or 'ckpt,predict', got {save_type!r}")
        if save_steps <= 0:
            raise ValueError(f"save_steps must be positive, got {save_steps}")
        return cls(save_path, int(save_steps), tuple(types))

    def save(self, step: int, model: MultiTaskModel, optimizer, state: Dict) -> List[str]:
        """Rank 0 writes; the other ranks hold identical parameters and write nothing."""
        self.last_saved_step = step
        written = []
        if not distributed.is_main():
            return written
        ema = getattr(optimizer, "palm_ema", None)
        if "ckpt" in self.save_types:
            extra = {ema.FILE: ema.state_dict()} if ema is not None else None
            written.append(checkpoint.save_checkpoint(
                os.path.join(self.save_path, f"ckpt.step{step}"), model, optimizer, state, extra))
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


def train_step(model: MultiTaskModel, optimizer, task: str, batch: Dict[str, np.ndarray],
               amp: Optional[Amp] = None) -> paddle.Tensor:
    """One optimization step of ``task`` on ``batch``; returns the (detached) loss."""
    model.train()
    if amp is None:
        loss = model(task, to_tensors(batch))["loss"]
        loss.backward()
        distributed.average_gradients(model.parameters())
        optimizer.step()
    else:
        with paddle.amp.auto_cast(dtype=amp.dtype):
            loss = model(task, to_tensors(batch))["loss"]
        if amp.scaler is not None:
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
                 amp: Optional[Amp] = None, after_step: Optional[Callable[[int], bool]] = None) -> int:
    """Train ``schedule[start_step:]`` (a task index per step); return the final global step.

    ``after_step(step)`` runs after each step (evaluation); training stops when it returns True."""
    if optimizer is None:
        raise RuntimeError("call build_backward(optimizer) before train()")
    distributed.broadcast_parameters(model)
    stats = TrainStats(last_step=start_step)
    step = start_step
    total = len(schedule)
    for step in range(start_step + 1, total + 1):
        trainer = trainers[int(schedule[step - 1])]
        batch = trainer._next_train_batch()
        loss = train_step(model, optimizer, trainer.name, batch, amp)
        trainer._steps_done += 1
        stats.losses.setdefault(trainer.name, []).append(loss)
        if print_steps > 0 and (step % print_steps == 0 or step == total):
            _print_progress(step, trainer, stats)
        save_if_due(saver, step, model, optimizer, state_fn)
        if after_step is not None and after_step(step):
            break
    if step > start_step:
        save_final(saver, step, model, optimizer, state_fn)
    return step


def save_if_due(saver: Optional[Saver], step: int, model, optimizer, state_fn) -> None:
    """Write the saver's checkpoints when ``step`` is a multiple of ``save_steps``; run after
    every training step, by ``train()`` and by ``train_one_step`` alike."""
    if saver is not None and step % saver.save_steps == 0:
        _save(saver, step, model, optimizer, state_fn)


def save_final(saver: Optional[Saver], step: int, model, optimizer, state_fn) -> None:
    """At the end of training: save the last step unless it was just saved."""
    if saver is not None and saver.last_saved_step != step:
        _save(saver, step, model, optimizer, state_fn)


def _save(saver: Saver, step: int, model, optimizer, state_fn) -> None:
    for path in saver.save(step, model, optimizer, state_fn(step)):
        log(f"checkpoint saved to {path}")


def _print_progress(step: int, trainer, stats: TrainStats) -> None:
    now = time.time()
    speed = (step - stats.last_step) / max(now - stats.last_time, 1e-9)
    losses = stats.losses.get(trainer.name) or []
    loss = float(paddle.stack(losses).mean()) if losses else float("nan")
    log(f"global step: {step}, {trainer.name}: step {trainer._batch_in_epoch}/{trainer.steps_pur_epoch} "
        f"(epoch {trainer._epoch}), loss: {loss:.3f}, speed: {speed:.2f} steps/s")
    stats.losses = {}
    stats.last_time, stats.last_step = now, step
    if not np.isfinite(loss):
        print(f"warning: task {trainer.name} loss is {loss}", file=sys.stderr, flush=True)
