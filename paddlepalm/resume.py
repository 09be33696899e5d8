"""Resuming from a checkpoint, whatever the order of the calls that set a run up.

``load_ckpt`` may come before or after ``build_backward`` and ``fit_reader`` /
``fit_readers_with_mixratio``. The checkpoint is read (and verified) once; each
part is put in place as soon as what it needs exists, and again if that thing is
rebuilt (a second ``fit_reader`` resets a task's position; a second
``build_backward`` makes a new optimizer). At the first training step the random
generators are restored and the resume is done; training cannot start while a
part is still waiting.
"""
import json
import os
import warnings
from typing import Any, Dict, List, Optional, Sequence


from paddlepalm import checkpoint
from paddlepalm.checkpoint import read_pickle
from paddlepalm.engine import Plan
from paddlepalm.logs import log
from paddlepalm.model import MultiTaskModel
from paddlepalm.pretrained import LoadReport, is_palm_checkpoint, load_model_leniently, load_palm_checkpoint
from paddlepalm.utils import rng


def load_checkpoint_into(path: str, model: Optional[MultiTaskModel],
                         pred_model: Optional[MultiTaskModel]) -> Optional["Resume"]:
    """Verify and read ``path``; load its weights into the training and/or prediction model.
    Returns what the training model still needs (optimizer, positions, random state)."""
    if model is None and pred_model is None:
        raise RuntimeError("call build_forward or build_predict_forward before load_ckpt")
    ckpt = checkpoint.read_checkpoint(path)
    for target in (model, pred_model):
        if target is not None:
            load_strict(target, ckpt.model_state, path)
    log(f"loaded checkpoint {path} (global step {ckpt.global_step})")
    return Resume(ckpt) if model is not None else None


def load_palm_ckpt(path: str, model: Optional[MultiTaskModel], optimizer,
                   pred_model: Optional[MultiTaskModel]) -> None:
    """Load a PALM 2.x checkpoint directory; logs what was restored and what was not."""
    if model is None and pred_model is None:
        raise RuntimeError("call build_forward or build_predict_forward before load_ckpt")
    for target, opt in ((model, optimizer), (pred_model, None)):
        if target is not None:
            report = load_palm_checkpoint(target, opt, path)
            log(report.summary() + (f"; not restored: {len(report.unexpected)} variables, e.g. "
                                    f"{report.unexpected[:5]}" if report.unexpected else ""))


def load_strict(model: MultiTaskModel, state: Dict[str, Any], path: str) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise KeyError(f"checkpoint {path} lacks {len(missing)} parameters of this model, e.g. {missing[:3]}; "
                       f"it has {len(state)} entries such as {sorted(state)[:3]}")
    mismatched = [f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
                  if tuple(state[k].shape) != tuple(v.shape)]
    if mismatched:
        raise ValueError(f"checkpoint {path} has parameters of other shapes: {mismatched[:3]}")
    model.set_state_dict({k: state[k] for k in own})


class Resumable:
    """``load_ckpt`` with its order-independent resume, and ``load_predict_model``, for ``Trainer``
    and ``MultiHeadTrainer``.
    A subclass names what a resume fills in: ``_resume_targets() -> (model, optimizer, trainers,
    schedule, needs_schedule)`` (a multi-task position is checked against the task schedule), and
    ``_run_settings()``, the optimization settings compared with the checkpoint's."""

    def __init__(self):
        self._resume: Optional["Resume"] = None
        self._resumed_state: Optional[Dict[str, Any]] = None  # trainer.json of the checkpoint resumed

    @property
    def weights_loaded(self) -> bool:
        """Whether ``load_ckpt`` / ``load_predict_model`` filled the model (export may then write it)."""
        return self._weights_loaded

    def load_ckpt(self, model_path: str) -> None:
        """Resume training (model, optimizer, counters, schedule position, evaluation state, random
        state) and/or load the prediction model. May come before or after ``build_backward`` and
        ``fit_reader`` / ``fit_readers_with_mixratio``. A PALM 2.x ``ckpt.step{N}/`` restores what
        maps (:func:`load_palm_ckpt`)."""
        self._weights_loaded = True  # export() may then write what was loaded
        if is_palm_checkpoint(model_path):
            load_palm_ckpt(model_path, self.model, self.optimizer, self.pred_model)
            return
        self._resume = load_checkpoint_into(model_path, self.model, self.pred_model)
        self._apply_resume()

    def load_predict_model(self, model_path: str, convert: bool = False) -> LoadReport:
        """Load into the prediction model, by name and leniently, whatever of its parameters
        ``model_path`` holds: a paddlepalm checkpoint (backbone and heads) or a released pretrained
        folder (the backbone). Logs what was loaded; fails when nothing matched. ``convert``: as in
        :meth:`load_pretrain`. To resume or predict from one of our checkpoints strictly, use
        :meth:`load_ckpt`."""
        if self.pred_model is None:
            raise RuntimeError("call build_predict_forward before load_predict_model")
        report = load_model_leniently(self.pred_model, model_path)
        log(report.summary())
        self._weights_loaded = True
        return report

    def _apply_resume(self) -> None:
        if self._resume is not None:
            model, optimization, trainers, schedule, needs_schedule = self._resume_targets()
            self._resume.apply(model, optimization, trainers, schedule, needs_schedule)
            if self._resume.progress_restored:
                self.state.global_step = self._resume.ckpt.global_step

    def _start_training(self) -> None:
        """Before the first step of ``train`` or of a ``train_one_step`` loop."""
        if self._resume is not None:
            self._resume.start(self.model)
            warn_changed_settings(self._resume.ckpt, self._run_settings())
            self._resumed_state, self._resume = self._resume.ckpt.trainer_state, None

    def _resumed_evaluation(self, loop):
        """The evaluation loop, with the best score and patience count of the run resumed."""
        if loop is not None and self._resumed_state and "evaluation" in self._resumed_state:
            loop.set_state(self._resumed_state["evaluation"])
        return loop


def warn_changed_settings(ckpt: checkpoint.Checkpoint, current: Dict[str, Any]) -> None:
    """Warn, naming each one, about the optimization settings (``trainer.json``'s ``settings``)
    that differ from those the checkpoint was trained with. A warning, not an error: changing
    them on resume is legitimate, but the run then no longer continues the one it resumes.
    Checkpoints written before the settings were recorded are not compared."""
    recorded = ckpt.trainer_state.get("settings")
    if recorded is None:
        return
    old, new = _flatten(recorded), _flatten(json.loads(json.dumps(current)))
    changed = [f"{key}: {old.get(key, 'unset')!r} -> {new.get(key, 'unset')!r}"
               for key in sorted(set(old) | set(new)) if old.get(key, "unset") != new.get(key, "unset")]
    if changed:
        warnings.warn(f"resuming {ckpt.path} with optimization settings other than the ones it was trained with "
                      f"({'; '.join(changed)}): training goes on with the new ones", stacklevel=3)


def _flatten(tree: Any, prefix: str = "") -> Dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: Dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def check_tokenizers(state: Dict[str, Any], trainers: Sequence, where: str) -> None:
    """Every reader bound to a task tokenizes as the checkpoint's training reader did (checkpoints
    written before the record existed are not compared)."""
    recorded = state.get("tokenizers") or {}
    for trainer in trainers:
        expected = recorded.get(trainer.name)
        for reader in trainer.bound_readers() if expected else []:
            found = reader.tokenizer_record()
            differ = [key for key in expected if found.get(key) != expected[key]]
            if differ:
                raise checkpoint.CheckpointError(
                    f"{where}: task {trainer.name} was trained with "
                    f"{', '.join(f'{k}={expected[k]!r}' for k in differ)}, but its {type(reader).__name__} has "
                    f"{', '.join(f'{k}={found.get(k)!r}' for k in differ)}: load it with the tokenizer and "
                    "vocabulary it was trained with (the weights would meet other token ids)")


class Resume:
    def __init__(self, ckpt: checkpoint.Checkpoint):
        self.ckpt = ckpt
        self.optimizer_restored = False
        self.progress_restored = False

    @property
    def path(self) -> str:
        return self.ckpt.path

    def apply(self, model, optimization, trainers: Sequence, schedule: Optional[Plan] = None,
              needs_schedule: bool = False) -> None:
        """Put in place every part whose target exists now (idempotent)."""
        check_tokenizers(self.ckpt.trainer_state, trainers, os.path.join(self.path, checkpoint.STATE_FILE))
        if optimization is not None:
            checkpoint.restore_optimizer_state(model, optimization.optimizer, self.path)
            ema = optimization.ema
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

    def _restore_progress(self, trainers: Sequence, schedule: Optional[Plan]) -> None:
        state = self.ckpt.trainer_state
        where = os.path.join(self.path, checkpoint.STATE_FILE)
        tasks: Dict[str, Any] = state.get("tasks", {})
        for trainer in trainers:
            if trainer.name not in tasks:
                raise checkpoint.CheckpointError(f"{where} has no position for task {trainer.name!r} "
                                                 f"(it has {sorted(tasks)})")
            progress = tasks[trainer.name]
            if progress["batch_in_epoch"] > trainer.steps_per_epoch:
                raise checkpoint.CheckpointError(
                    f"{where}: task {trainer.name} is at batch {progress['batch_in_epoch']} of an epoch of "
                    f"{trainer.steps_per_epoch} batches: the checkpoint belongs to other data or batch size")
        step = self.ckpt.global_step
        if schedule is not None:
            schedule.restore(state.get("plan"), where)  # the same schedule; a dynamic one's decisions replayed
            if step > len(schedule):
                raise checkpoint.CheckpointError(f"{where}: global step {step} is beyond this run's "
                                                 f"{len(schedule)} steps")
            counts = schedule.steps_done(step, len(trainers))
            for index, trainer in enumerate(trainers):
                if counts[index] != tasks[trainer.name]["steps_done"]:
                    raise checkpoint.CheckpointError(
                        f"{where}: task {trainer.name} has done {tasks[trainer.name]['steps_done']} steps, but this "
                        f"run's schedule gives it {counts[index]} of the first {step}: another seed, mix or data")
        elif len(trainers) == 1 and tasks[trainers[0].name]["steps_done"] != step:
            raise checkpoint.CheckpointError(f"{where}: global step {step} differs from task {trainers[0].name}'s "
                                             f"{tasks[trainers[0].name]['steps_done']} steps")
        for trainer in trainers:
            trainer.restore_progress(state)

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
