"""What a training session is made of, below the update (paddlepalm/update.py) and the session
(paddlepalm/session.py): the plan of updates, the saver, the loss guard, mixed precision, the log."""
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import paddle

from paddlepalm import checkpoint, distributed
from paddlepalm.inference import verify_export
from paddlepalm.logs import log
from paddlepalm.model import MultiTaskModel
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

    def save(self, step: int, model: MultiTaskModel, optimizer, state: Dict, ema=None) -> List[str]:
        """Rank 0 writes; the other ranks hold identical parameters and write nothing.
        Parameters that are not all finite are never written. ``ema``: the moving average of the
        weights (its state is saved; a 'predict' save exports its averaged weights)."""
        self.last_saved_step = step
        written = []
        if not distributed.is_main():
            return written
        check_finite_parameters(model, step, self.last_checkpoint)
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


@dataclass
class Plan:
    """Which tasks train in each update. A *unit* is one task, or a joint group of tasks whose
    readers serve the same examples (one backbone pass, every member's loss); ``units[u]`` holds
    the trainer indices of unit ``u``. Row ``s`` of ``updates`` lists the units of update ``s+1``
    (``-1`` pads rows with fewer units).

    A static schedule's plan is drawn up front from a seed: identical on every rank, and resuming
    needs only the step number. A dynamic schedule's (``blocks``, ``sampling.draws.BlockDraws``) has
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

    def truncate(self, steps: int) -> None:
        """Keep the first ``steps`` updates (``max_steps``)."""
        if self.total is not None:
            self.total = min(self.total, int(steps))
        self.updates = self.updates[:int(steps)]

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
