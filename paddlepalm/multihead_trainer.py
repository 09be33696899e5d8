"""``MultiHeadTrainer``: several tasks, one shared backbone, a task drawn per step by mix ratio."""
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from paddlepalm import evaluation
from paddlepalm.engine import Amp, Saver, log, run_training, train_step
from paddlepalm.model import MultiTaskModel
from paddlepalm.optimizer.base_optimizer import Optimizer
from paddlepalm.pretrained import load_pretrained_backbone
from paddlepalm.reader.base_reader import Reader, check_num_epochs
from paddlepalm.sampler import build_schedule, task_budgets
from paddlepalm.trainer import Trainer, _cover_schedule, predict_batch, predict_task, restore_checkpoint


class MultiHeadTrainer:
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
        self._eval_settings: Optional[Dict[str, Any]] = None
        self.evaluation: Optional[evaluation.EvaluationLoop] = None

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
        self.optimizer = optimizer.build(self.model, weight_decay, use_ema, ema_decay)
        self.amp = Amp.create(use_amp, amp_dtype)
        for trainer in self.trainers:
            trainer.optimizer, trainer._optimizer_spec, trainer.amp = self.optimizer, optimizer, self.amp

    def fit_readers_with_mixratio(self, readers: Sequence[Reader], sampling_reference: str, num_epochs: float,
                                  phase: str = "train") -> None:
        if len(readers) != len(self.trainers):
            raise ValueError(f"{len(readers)} readers for {len(self.trainers)} tasks")
        if phase == "train":
            check_num_epochs(num_epochs, allow_none=False)
        if phase != "train":
            self.merge_inference_readers(readers)
            return
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

    def merge_inference_readers(self, readers: Sequence[Reader]) -> None:
        for trainer, reader in zip(self.trainers, readers):
            trainer.fit_reader(reader, phase="predict")

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
        self._saver = Saver.parse(save_path, save_steps, save_type)

    def load_pretrain(self, model_path: str):
        model = self.model or self.pred_model
        if model is None:
            raise RuntimeError("call build_forward() before load_pretrain")
        report = load_pretrained_backbone(model.backbone, model_path)
        log(report.summary())
        return report

    def load_ckpt(self, model_path: str) -> None:
        """Resume training (model, optimizer, counters, schedule position) and/or load the prediction model."""
        step = restore_checkpoint(model_path, self.model, self.optimizer, self.pred_model, self.trainers)
        if step is not None:
            self._global_step = step

    def _checkpoint_state(self, step: int) -> Dict[str, Any]:
        return {"global_step": step, "seed": self.seed,
                "tasks": {t.name: t._progress_state() for t in self.trainers}}

    # ------------------------------------------------------------------ training
    def train(self, print_steps: int = 5) -> None:
        if self._schedule is None:
            raise RuntimeError("call fit_readers_with_mixratio(...) before train()")
        self.evaluation = loop = self._build_evaluation()
        after_step = None if loop is None else (
            lambda step: loop.after_step(step, self.model, self._checkpoint_state))
        self._global_step = run_training(self.model, self.optimizer, self.trainers, self._schedule,
                                         self._global_step, print_steps, self._saver, self._checkpoint_state,
                                         amp=self.amp, after_step=after_step)
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

    def train_one_step(self, batch: Dict[str, Any]) -> float:
        batch = dict(batch)
        trainer = self.trainers[int(batch.pop("__task_id"))]
        loss = train_step(self.model, self.optimizer, trainer.name, batch, self.amp)
        trainer._steps_done += 1
        self._global_step += 1
        return float(loss)

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

    def predict_one_batch(self, task_name: str, batch: Dict[str, np.ndarray]) -> List[Dict[str, Any]]:
        self._trainer(task_name)
        return predict_batch(self.pred_model, task_name, batch)
