"""Resuming from a checkpoint, whatever the order of the calls that set a run up.

``load_ckpt`` may come before or after ``build_backward`` and ``fit_reader`` /
``fit_readers_with_mixratio``. The checkpoint is read (and verified) once; each
part is put in place as soon as what it needs exists, and again if that thing is
rebuilt (a second ``fit_reader`` resets a task's position; a second
``build_backward`` makes a new optimizer). At the first training step the random
generators are restored and the resume is done; training cannot start while a
part is still waiting.
"""
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from paddlepalm import checkpoint
from paddlepalm.utils import rng
from paddlepalm.checkpoint import read_pickle


class Resume:
    def __init__(self, ckpt: checkpoint.Checkpoint):
        self.ckpt = ckpt
        self.optimizer_restored = False
        self.progress_restored = False

    @property
    def path(self) -> str:
        return self.ckpt.path

    def apply(self, model, optimizer, trainers: Sequence, schedule: Optional[np.ndarray] = None,
              needs_schedule: bool = False) -> None:
        """Put in place every part whose target exists now (idempotent)."""
        if optimizer is not None:
            checkpoint.restore_optimizer_state(model, optimizer, self.path)
            ema = getattr(optimizer, "palm_ema", None)
            if ema is not None:
                ema_file = os.path.join(self.path, ema.FILE)
                if not os.path.isfile(ema_file):
                    raise checkpoint.CheckpointError(f"{ema_file} missing: build_backward(use_ema=True) needs the "
                                                     "EMA state of the checkpoint it resumes")
                ema.set_state_dict(read_pickle(ema_file))
            self.optimizer_restored = True
        if all(t.train_reader is not None for t in trainers) and (schedule is not None or not needs_schedule):
            self._restore_progress(trainers, schedule)
            self.progress_restored = True

    def _restore_progress(self, trainers: Sequence, schedule: Optional[np.ndarray]) -> None:
        state = self.ckpt.trainer_state
        where = os.path.join(self.path, checkpoint.STATE_FILE)
        tasks: Dict[str, Any] = state.get("tasks", {})
        for trainer in trainers:
            if trainer.name not in tasks:
                raise checkpoint.CheckpointError(f"{where} has no position for task {trainer.name!r} "
                                                 f"(it has {sorted(tasks)})")
            progress = tasks[trainer.name]
            if progress["batch_in_epoch"] > trainer.steps_pur_epoch:
                raise checkpoint.CheckpointError(
                    f"{where}: task {trainer.name} is at batch {progress['batch_in_epoch']} of an epoch of "
                    f"{trainer.steps_pur_epoch} batches: the checkpoint belongs to other data or batch size")
        step = self.ckpt.global_step
        if schedule is not None:
            if step > len(schedule):
                raise checkpoint.CheckpointError(f"{where}: global step {step} is beyond this run's "
                                                 f"{len(schedule)} steps")
            counts = np.bincount(schedule[:step], minlength=len(trainers))
            for index, trainer in enumerate(trainers):
                if counts[index] != tasks[trainer.name]["steps_done"]:
                    raise checkpoint.CheckpointError(
                        f"{where}: task {trainer.name} has done {tasks[trainer.name]['steps_done']} steps, but this "
                        f"run's schedule gives it {counts[index]} of the first {step}: another seed, mix or data")
        elif len(trainers) == 1 and tasks[trainers[0].name]["steps_done"] != step:
            raise checkpoint.CheckpointError(f"{where}: global step {step} differs from task {trainers[0].name}'s "
                                             f"{tasks[trainers[0].name]['steps_done']} steps")
        for trainer in trainers:
            trainer._restore_progress(state)

    def waiting_for(self) -> List[str]:
        missing = []
        if not self.optimizer_restored:
            missing.append("the optimizer state (call build_backward)")
        if not self.progress_restored:
            missing.append("the data position (call fit_reader / fit_readers_with_mixratio)")
        return missing

    def start(self, model) -> None:
        """At the first training step: everything must be in place; the generators are restored."""
        missing = self.waiting_for()
        if missing:
            raise RuntimeError(f"load_ckpt({self.path!r}) cannot resume yet: waiting for {' and '.join(missing)}")
        if self.ckpt.rng_state is not None:
            rng.restore(self.ckpt.rng_state, model)
