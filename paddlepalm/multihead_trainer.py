"""``MultiHeadTrainer``: several tasks, one shared backbone, a task drawn per step by mix ratio."""
import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from paddlepalm import evaluation
from paddlepalm.engine import Amp, LossGuard, Saver, log, run_training, save_if_due, train_step
from paddlepalm.export import export_trainers
from paddlepalm.model import MultiTaskModel
from paddlepalm.optimizer.base_optimizer import Optimizer
from paddlepalm.pretrained import LoadReport, load_pretrained_backbone
from paddlepalm.reader.base_reader import Reader, check_num_epochs
from paddlepalm.sampler import build_schedule, task_budgets
from paddlepalm.resume import Resumable
from paddlepalm.trainer import Trainer, _cover_schedule, export_source, predict_batch, predict_task, run_settings


class MultiHeadTrainer(Resumable):
    """Trains the tasks of ``trainers`` together; ``seed`` fixes the task sampling."""

    def __init__(self, trainers: Sequence[Trainer], seed: int = 0):
        if not trainers:
            raise ValueError("MultiHeadTrainer needs at least one Trainer")
        names = [t.name for t in trainers]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        self.trainers: List[Trainer] = list(trainers)
        self.seed = int(seed)
        self.model: Optional[MultiTaskModel] = None
        self.pred_model: Optional[MultiTaskModel] = None
        self.optimizer = None
        self._optimizer_spec: Optional[Optimizer] = None
        self._schedule: Optional[np.ndarray] = None
        self._global_step = 0
        self._saver: Optional[Saver] = None
        self.amp: Optional[Amp] = None
        self.guard = LossGuard()
        Resumable.__init__(self)
        self._eval_settings: Optional[Dict[str, Any]] = None
        self.evaluation: Optional[evaluation.EvaluationLoop] = None
        self._weights_loaded = False

    def _trainer(self, name: str) -> Trainer:
        for trainer in self.trainers:
            if trainer.name == name:
                return trainer
        raise KeyError(f"no task named {name!r}; tasks are {[t.name for t in self.trainers]}")

    # ------------------------------------------------------------------ building
    def _combine(self, backbone_attr: str, head_attr: str) -> MultiTaskModel:
        backbones = {id(getattr(t, backbone_attr)) for t in self.trainers}
        if None in [getattr(t, backbone_attr) for t in self.trainers]:
            raise RuntimeError("every Trainer must be built (build_forward / build_predict_forward) first")
        if len(backbones) != 1:
            raise ValueError("all tasks must be built on the same backbone object")
        heads, aliases = {}, {}
        for trainer in self.trainers:
            owner = trainer.reuse_head_with
            if owner is not None:
                self._trainer(owner)  # raises for an unknown task
                aliases[trainer.name] = owner
            else:
                heads[trainer.name] = getattr(trainer, head_attr)
        return MultiTaskModel(getattr(self.trainers[0], backbone_attr), heads, aliases)

    def build_forward(self) -> MultiTaskModel:
        """One model: the shared backbone and a head per task. Returns PALM's ``loss_var``."""
        self.model = self._combine("backbone", "head")
        for trainer in self.trainers:
            trainer.model = self.model
        return self.model

    def build_predict_forward(self) -> MultiTaskModel:
        self.pred_model = self._combine("pred_backbone", "pred_head")
        self.pred_model.eval()
        for trainer in self.trainers:
            trainer.pred_model = self.pred_model
        return self.pred_model

    def build_backward(self, optimizer: Optimizer, weight_decay: Optional[float] = None,
                       use_ema: bool = False, ema_decay: Optional[float] = None,
                       use_amp: bool = False, amp_dtype: str = "float16") -> None:
        """One optimizer over the shared backbone and every head (see ``Trainer.build_backward``)."""
        if self.model is None:
            raise RuntimeError("call build_forward() before build_backward")
        self._optimizer_spec = optimizer
        head_lr = {t.name: t.lr_multiplier for t in self.trainers if t.reuse_head_with is None}
        self.optimizer = optimizer.build(self.model, weight_decay, use_ema, ema_decay, head_lr)
        self.amp = Amp.create(use_amp, amp_dtype)
        for trainer in self.trainers:
            trainer.optimizer, trainer._optimizer_spec, trainer.amp = self.optimizer, optimizer, self.amp
        self._apply_resume()

    def fit_readers_with_mixratio(self, readers: Sequence[Reader], sampling_reference: str, num_epochs: float,
                                  phase: str = "train") -> None:
        if len(readers) != len(self.trainers):
            raise ValueError(f"{len(readers)} readers for {len(self.trainers)} tasks")
        if phase == "train":
            check_num_epochs(num_epochs, allow_none=False)
        if phase != "train":
            return self.merge_inference_readers(readers)
        for trainer, reader in zip(self.trainers, readers):
            trainer.fit_reader(reader, phase="train")
        reference = [t.name for t in self.trainers].index(self._trainer(sampling_reference).name)
        budgets = task_budgets(num_epochs, [t.mix_ratio for t in self.trainers], reference,
                               self.trainers[reference].steps_pur_epoch)
        for trainer, budget in zip(self.trainers, budgets):
            trainer.budget = budget
        self._schedule = build_schedule([t.mix_ratio for t in self.trainers], budgets,
                                        [t.is_aux for t in self.trainers], self.seed)
        self._global_step = 0
        _cover_schedule(self._optimizer_spec, self.overall_train_steps)
        self._apply_resume()

    def merge_inference_readers(self, readers) -> Callable[[str], Iterator[Dict[str, np.ndarray]]]:
        """Bind a prediction reader to each task (a list in task order, or ``{task name: reader}``);
        returns PALM's ``iterator(task_name)``: one pass over that task's prediction batches, for
        ``predict_one_batch(task_name, batch)``."""
        if isinstance(readers, dict):
            unknown = sorted(set(readers) - {t.name for t in self.trainers})
            if unknown:
                raise KeyError(f"readers for unknown tasks {unknown}; tasks are {[t.name for t in self.trainers]}")
            pairs = [(t, readers[t.name]) for t in self.trainers if t.name in readers]
        else:
            if len(readers) != len(self.trainers):
                raise ValueError(f"{len(readers)} readers for {len(self.trainers)} tasks")
            pairs = list(zip(self.trainers, readers))
        for trainer, reader in pairs:
            trainer.fit_reader(reader, phase="predict")

        def iterator(task_name: str) -> Iterator[Dict[str, np.ndarray]]:
            reader = self._trainer(task_name).predict_reader
            if reader is None:
                raise RuntimeError(f"task {task_name!r} has no prediction reader")
            return reader.iter_in_file_order()
        return iterator

    @property
    def overall_train_steps(self) -> int:
        return 0 if self._schedule is None else len(self._schedule)

    # ---------------------------------------------------------------- evaluation
    def set_evaluator(self, eval_steps: int = 0, patience: Optional[int] = None, save_best: bool = True,
                      best_dir: Optional[str] = None, min_delta: float = 0.0) -> None:
        """Evaluate every non-auxiliary task that has an eval reader (``Trainer.fit_reader(reader,
        phase='eval')``, metrics from ``Trainer.set_evaluator``) every ``eval_steps`` steps and at
        the end. The best checkpoint maximizes the mean of the tasks' target metrics."""
        self._eval_settings = dict(eval_steps=eval_steps, patience=patience, save_best=save_best,
                                   best_dir=best_dir, min_delta=min_delta)

    def _build_evaluation(self) -> Optional[evaluation.EvaluationLoop]:
        if self._eval_settings is None:
            return None
        s = self._eval_settings
        evaluators = [e for e in (t.task_evaluator() for t in self.trainers if not t.is_aux) if e is not None]
        return evaluation.EvaluationLoop(evaluators, s["eval_steps"], s["patience"],
                                         evaluation.best_dir_for(s["best_dir"], self._saver, s["save_best"]),
                                         s["min_delta"])

    # ------------------------------------------------------------- persistence
    def set_saver(self, save_path: str, save_steps: int, save_type: str = "ckpt") -> None:
        """As ``Trainer.set_saver``; ``'predict'`` writes ``pred.step{N}/<task>/`` per task."""
        self._saver = Saver.parse(save_path, save_steps, save_type)
        self._saver.exporter = self._export_predict

    def _export_predict(self, directory: str, weights: Optional[Dict[str, Any]] = None) -> None:
        trained = [t for t in self.trainers if t._sample_batch is not None and t.reuse_head_with is None]
        if not trained:
            raise RuntimeError("no task has trained on a batch yet")
        for trainer in trained:
            export_trainers(self.model, [trainer], os.path.join(directory, trainer.name), weights)

    def export(self, path: str, tasks: Optional[Sequence[str]] = None, format: str = "paddle",
               label_names: Optional[Dict[str, List[str]]] = None) -> Dict[str, Any]:
        """One inference model of ``tasks`` (default: every task with its own head) in ``path``: the
        backbone runs once and every head on its outputs; ``paddlepalm.Predictor(path)`` returns
        all tasks' results per input. ``label_names``: ``{task: class names}``. See ``Trainer.export``
        for ``format`` and which weights."""
        names = [t.name for t in self.trainers if t.reuse_head_with is None] if tasks is None else list(tasks)
        if not names:
            raise ValueError("no task to export")
        chosen = [self._trainer(name) for name in names]
        loaded = any(t._weights_loaded for t in self.trainers) or self._weights_loaded
        model, batches, weights = export_source(chosen, self.model, self.pred_model, self.optimizer,
                                                self._global_step > 0, loaded)
        return export_trainers(model, chosen, path, weights, format, batches, label_names)

    def load_pretrain(self, model_path: str, convert: bool = False) -> LoadReport:
        """The shared backbone's weights (see ``Trainer.load_pretrain``)."""
        model = self.model or self.pred_model
        if model is None:
            raise RuntimeError("call build_forward() before load_pretrain")
        report = load_pretrained_backbone(model.backbone, model_path)
        log(report.summary())
        return report

    def _resume_targets(self):
        return self.model, self.optimizer, self.trainers, self._schedule, True

    def _run_settings(self) -> Dict[str, Any]:
        return run_settings(self._optimizer_spec, self.trainers)

    def _checkpoint_state(self, step: int) -> Dict[str, Any]:
        state = {"global_step": step, "seed": self.seed, "tasks": {t.name: t._progress_state() for t in self.trainers},
                 "settings": self._run_settings()}
        if self.evaluation is not None:
            state["evaluation"] = self.evaluation.state()
        return state

    # ------------------------------------------------------------------ training
    def train(self, print_steps: int = 5, skip_nonfinite: bool = False) -> None:
        """Train to the end of the schedule (see ``Trainer.train`` for ``skip_nonfinite``)."""
        if self._schedule is None:
            raise RuntimeError("call fit_readers_with_mixratio(...) before train()")
        self.guard.skip = bool(skip_nonfinite)
        self._start_training()
        self.evaluation = loop = self._resumed_evaluation(self._build_evaluation())
        after_step = None if loop is None else (
            lambda step: loop.after_step(step, self.model, self._checkpoint_state))
        self._global_step = run_training(self.model, self.optimizer, self.trainers, self._schedule,
                                         self._global_step, print_steps, self._saver, self._checkpoint_state,
                                         amp=self.amp, after_step=after_step, guard=self.guard)
        if loop is not None:
            loop.finish(self._global_step, self.model, self._checkpoint_state)

    def get_one_batch(self) -> Dict[str, Any]:
        """The next batch of the task the schedule draws next; ``__task_id`` names that task."""
        if self._schedule is None or self._global_step >= len(self._schedule):
            raise RuntimeError("no scheduled step left: call fit_readers_with_mixratio(...) first")
        index = int(self._schedule[self._global_step])
        batch = dict(self.trainers[index]._next_train_batch())
        batch["__task_id"] = np.array(index)
        return batch

    def train_one_step(self, batch: Dict[str, Any]) -> Tuple[Dict[str, Any], int]:
        """One step of the task ``batch['__task_id']`` names (``get_one_batch``); advances the
        counters and runs the saver as ``train()`` does. Returns ``({'loss': float}, task_id)``."""
        if self.optimizer is None:
            raise RuntimeError("call build_backward(optimizer) before train_one_step")
        batch = dict(batch)
        task_id = int(np.asarray(batch.pop("__task_id")).reshape(-1)[0])
        trainer = self.trainers[task_id]
        self._start_training()
        loss = train_step(self.model, self.optimizer, trainer.name, batch, self.amp, self.guard,
                          self._global_step + 1)
        if trainer._sample_batch is None:
            trainer._sample_batch = batch
        trainer._steps_done += 1
        self._global_step += 1
        save_if_due(self._saver, self._global_step, self.model, self.optimizer, self._checkpoint_state, self.guard)
        return {"loss": float(loss)}, task_id

    # ---------------------------------------------------------------- prediction
    def predict(self, output_dir: Optional[str] = None, print_steps: int = 1000) -> Dict[str, List[Dict[str, Any]]]:
        """Predict every task with a prediction reader; writes ``output_dir/<task>/predictions.json``."""
        if self.pred_model is None:
            raise RuntimeError("call build_predict_forward() before predict()")
        results = {}
        for trainer in self.trainers:
            if trainer.predict_reader is None:
                continue
            task_dir = None if output_dir is None else os.path.join(output_dir, trainer.name)
            results[trainer.name] = predict_task(self.pred_model, trainer.name, trainer.predict_reader,
                                                 task_dir, print_steps)
        if not results:
            raise RuntimeError("no task has a prediction reader: call merge_inference_readers(readers)")
        return results

    def predict_one_batch(self, task_name: str, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """``task_name``'s prediction outputs on ``batch``, a dict of arrays (``Trainer.predict_one_batch``)."""
        self._trainer(task_name)
        if self.pred_model is None:
            raise RuntimeError("call build_predict_forward() before predict_one_batch")
        return predict_batch(self.pred_model, task_name, batch)
