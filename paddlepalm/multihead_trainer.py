"""``MultiHeadTrainer``: several tasks, one shared backbone, the tasks of each update drawn by a
sampling schedule (default: PALM's mix ratios)."""
import os
from contextlib import closing
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from paddlepalm import checkpoint, evaluation
from paddlepalm.balancing import Balancer, Static
from paddlepalm.engine import Amp, LossGuard, Plan, Saver
from paddlepalm.logs import log
from paddlepalm.export import export_trainers
from paddlepalm.model import MultiTaskModel
from paddlepalm.optimizer.base_optimizer import Optimizer
from paddlepalm.pretrained import LoadReport, load_pretrained_backbone
from paddlepalm.reader.base_reader import Reader, check_num_epochs
from paddlepalm.sampling.draws import BlockDraws, draw_static, units_per_update
from paddlepalm.sampling import Fixed, Mixture, Schedule
from paddlepalm.resume import Resumable
from paddlepalm.session import Evaluate, Records, Save, ScheduleFeedback, Session, TrainingState
from paddlepalm.sinks import sinks_for, writer_of
from paddlepalm.update import Optimization, unit_batches
from paddlepalm.trainer import Trainer, _cover_schedule, export_source, tokenizer_records, predict_batch, predict_task, run_settings


class MultiHeadTrainer(Resumable):
    """Trains the tasks of ``trainers`` together; ``seed`` fixes the task sampling, ``schedule``
    (a ``paddlepalm.sampling`` schedule) how the tasks are drawn: None is ``Fixed`` (PALM's mix
    ratios and per-task budgets); ``balancer`` (``palm.balancing.*``, default ``Static()``: each
    task's ``loss_weight``) how the tasks' losses of an update make its gradient
    (docs/multitask.md)."""

    def __init__(self, trainers: Sequence[Trainer], seed: int = 0, schedule: Optional[Schedule] = None,
                 balancer: Optional[Balancer] = None):
        if schedule is not None and not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a paddlepalm.sampling schedule or None, got {schedule!r}")
        if balancer is not None and not isinstance(balancer, Balancer):
            raise TypeError(f"balancer must be a palm.balancing method (Static, Uncertainty, DWA, FAMO, PCGrad, "
                            f"GradNorm), got {type(balancer).__name__}")
        if not trainers:
            raise ValueError("MultiHeadTrainer needs at least one Trainer")
        names = [t.name for t in trainers]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        self.trainers: List[Trainer] = list(trainers)
        self.seed = int(seed)
        self.schedule: Schedule = schedule if schedule is not None else Fixed()
        self.balancer: Balancer = balancer if balancer is not None else Static()
        self.model: Optional[MultiTaskModel] = None
        self.pred_model: Optional[MultiTaskModel] = None
        self.optimization: Optional[Optimization] = None
        self.optimizer_spec: Optional[Optimizer] = None
        self._plan: Optional[Plan] = None
        self._max_steps: Optional[int] = None
        self.state = TrainingState()
        self._saver: Optional[Saver] = None
        self.guard = LossGuard()
        Resumable.__init__(self)
        self._eval_settings: Optional[Dict[str, Any]] = None
        self.evaluation: Optional[evaluation.EvaluationLoop] = None
        self._weights_loaded = False
        self._affinity_settings: Optional[Dict[str, Any]] = None
        self.affinity = None  # train()'s paddlepalm.affinity.Affinity (its history) when set_affinity was called

    def get_trainer(self, name: str) -> Trainer:
        """The ``Trainer`` of task ``name``."""
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
                self.get_trainer(owner)  # raises for an unknown task
                aliases[trainer.name] = owner
            else:
                heads[trainer.name] = getattr(trainer, head_attr)
        return MultiTaskModel(getattr(self.trainers[0], backbone_attr), heads, aliases)

    def build_forward(self) -> MultiTaskModel:
        """One model: the shared backbone and a head per task. Returns PALM's ``loss_var``."""
        self.model = self._combine("backbone", "head")
        for trainer in self.trainers:
            trainer.train_in_group(self.model, None, None)
        self.balancer.bind([t.name for t in self.trainers], self.model)
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
        self.optimizer_spec = optimizer
        head_lr = {t.name: t.lr_multiplier for t in self.trainers if t.reuse_head_with is None}
        paddle_optimizer = optimizer.build(self.model, weight_decay, use_ema, ema_decay, head_lr)
        self.optimization = Optimization(paddle_optimizer, optimizer.lr_scheduler, optimizer.ema,
                                         Amp.create(use_amp, amp_dtype))
        for trainer in self.trainers:
            trainer.train_in_group(self.model, self.optimization, optimizer)
        self._apply_resume()

    def fit_readers_with_mixratio(self, readers: Sequence[Reader], sampling_reference: str, num_epochs: float,
                                  phase: str = "train", joint: Union[None, bool, Sequence[Sequence[str]]] = None,
                                  tasks_per_update: Union[int, str] = 1) -> None:
        """Bind the training readers (in task order) and draw the plan of updates.

        ``joint``: tasks whose readers serve the same examples (the slot tags and the intent of each
        utterance) train on joint batches: one backbone pass per batch, every member's loss in one
        update. ``True``: all tasks form one group; or a list of groups of task names. The readers
        of a group must hold the same examples in the same order, tokenized alike, with the same
        batch size and seed (checked here; the first difference is named). A group is drawn as
        one unit, with the mix ratio of its first task.

        ``tasks_per_update``: how many units (tasks or joint groups) each update draws, distinct,
        by the schedule (``'all'``: every unit); their gradients add up into one optimizer update.
        1 (the default) is PALM's one task per step.

        The default schedule (``Fixed``) gives each unit PALM's budget (``num_epochs`` epochs of
        ``sampling_reference``'s batches times its mix ratio); the others draw
        ``floor(num_epochs * sum of the non-auxiliary units' batches per epoch / tasks_per_update)``
        updates (UniMax: at most that many); see docs/multitask.md."""
        if len(readers) != len(self.trainers):
            raise ValueError(f"{len(readers)} readers for {len(self.trainers)} tasks")
        if phase == "train":
            check_num_epochs(num_epochs, allow_none=False)
        if phase != "train":
            return self.merge_inference_readers(readers)
        for trainer, reader in zip(self.trainers, readers):
            trainer.fit_reader(reader, phase="train")
        units = self._units(joint)
        for unit in units:
            if len(unit) > 1:
                check_joint_group([self.trainers[i] for i in unit])
        self._plan = self._draw_plan(units, sampling_reference, num_epochs, tasks_per_update)
        if self._max_steps is not None:
            self._plan.truncate(self._max_steps)
        self._check_balancer(self._plan)
        self.state.global_step = 0
        _cover_schedule(self.optimizer_spec, self.overall_train_steps)
        self._apply_resume()

    def _draw_plan(self, units: List[Tuple[int, ...]], sampling_reference: str, num_epochs: float,
                   tasks_per_update: Union[int, str]) -> Plan:
        leaders = [self.trainers[unit[0]] for unit in units]
        reference_task = [t.name for t in self.trainers].index(self.get_trainer(sampling_reference).name)
        mix = Mixture(tuple(tuple(self.trainers[i].name for i in unit) for unit in units),
                      np.asarray([t.steps_per_epoch for t in leaders], dtype="int64"),
                      np.asarray([t.mix_ratio for t in leaders], dtype="float64"),
                      np.asarray([all(self.trainers[i].is_aux for i in unit) for unit in units], dtype=bool),
                      next(u for u, unit in enumerate(units) if reference_task in unit), num_epochs,
                      units_per_update(tasks_per_update, len(units)))
        schedule = self.schedule
        schedule.check(mix)
        schedule.set_state({})  # a new plan: nothing observed yet (a resume puts the observations back)
        if schedule.dynamic:
            plan = Plan(units, np.zeros((0, mix.per_update), dtype="int64"), schedule,
                        BlockDraws(schedule, mix, self.seed, mix.total_updates, schedule.every), mix.total_updates)
        else:
            plan = Plan(units, draw_static(schedule, mix, self.seed), schedule)
        budgets = schedule.budgets(mix)
        drawn = plan.steps_done(len(plan.updates), len(self.trainers))
        for u, unit in enumerate(units):
            for i in unit:  # the updates each task trains (a dynamic plan's are not known in advance)
                self.trainers[i].budget = budgets[u] if budgets is not None else \
                    None if schedule.dynamic else int(drawn[i])
        if not isinstance(schedule, Fixed):
            log(f"sampling schedule {schedule!r}: {len(plan)} updates over units "
                f"{['+'.join(unit) for unit in mix.tasks]} of {mix.sizes.tolist()} batches per epoch")
        return plan

    def _check_balancer(self, plan: Plan) -> None:
        """Refuse, before training, a plan with an update the balancer cannot make (one task for a
        method that compares the tasks of an update)."""
        micro_batches = {t.name: t.micro_batches for t in self.trainers}
        checked = set()
        for step, row in enumerate(plan.updates, 1):
            if tuple(row) not in checked:
                checked.add(tuple(row))
                tasks = [self.trainers[i].name for unit in plan.units_at(step) for i in unit]
                try:
                    self.balancer.check_update(tasks, micro_batches)
                except ValueError as error:
                    raise ValueError(f"update {step} of {len(plan)}: {error}") from None

    def _units(self, joint: Union[None, bool, Sequence[Sequence[str]]]) -> List[Tuple[int, ...]]:
        """Trainer indices of each unit the plan draws: joint groups, and every other task alone."""
        names = [t.name for t in self.trainers]
        if joint is None or joint is False:
            groups: List[Sequence[str]] = []
        elif joint is True:
            groups = [names]
        elif isinstance(joint, (list, tuple)) and all(isinstance(g, (list, tuple)) for g in joint):
            groups = list(joint)
        else:
            raise ValueError(f"joint must be None, True or a list of lists of task names, got {joint!r}")
        grouped: Dict[int, Tuple[int, ...]] = {}
        for group in groups:
            members = tuple(names.index(self.get_trainer(name).name) for name in group)
            if len(members) < 2 or len(set(members)) != len(members):
                raise ValueError(f"a joint group needs two or more distinct tasks, got {list(group)}")
            taken = [names[i] for i in members if i in grouped]
            if taken:
                raise ValueError(f"tasks {taken} are in more than one joint group")
            for i in members:
                grouped[i] = members
        units, seen = [], set()
        for i in range(len(names)):
            unit = grouped.get(i, (i,))
            if unit not in seen:
                seen.add(unit)
                units.append(unit)
        return units

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
            reader = self.get_trainer(task_name).predict_reader
            if reader is None:
                raise RuntimeError(f"task {task_name!r} has no prediction reader")
            return reader.iter_in_file_order()
        return iterator

    @property
    def overall_train_steps(self) -> int:
        return 0 if self._plan is None else len(self._plan)

    @property
    def plan(self) -> Optional[Plan]:
        """The updates drawn by ``fit_readers_with_mixratio`` (which tasks train in each)."""
        return self._plan

    @property
    def max_steps(self) -> Optional[int]:
        """At most this many updates (None: the plan's); set before or after
        ``fit_readers_with_mixratio``: the plan is cut to it (its first ``max_steps`` updates)."""
        return self._max_steps

    @max_steps.setter
    def max_steps(self, value: Optional[int]) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"max_steps must be a positive integer or None, got {value!r}")
        self._max_steps = value
        if value is not None and self._plan is not None:
            self._plan.truncate(value)

    @property
    def global_step(self) -> int:
        return self.state.global_step

    @property
    def optimizer(self):
        """The paddle optimizer (``build_backward``)."""
        return self.optimization.optimizer if self.optimization is not None else None

    @property
    def amp(self) -> Optional[Amp]:
        return self.optimization.amp if self.optimization is not None else None

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

    def set_affinity(self, every: int, lr: Optional[float] = None) -> None:
        """Measure inter-task affinity (paddlepalm/affinity.py) every ``every`` steps of ``train()``:
        ``affinity`` records in the sinks (``metrics.jsonl``), a log line, ``self.affinity.history``.
        ``lr``: the look-ahead step's learning rate (default: the optimizer's of the moment)."""
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        self._affinity_settings = {"every": every, "lr": lr}

    # ------------------------------------------------------------- persistence
    def set_saver(self, save_path: str, save_steps: int, save_type: str = "ckpt",
                  keep_last: Optional[int] = None) -> None:
        """As ``Trainer.set_saver``; ``'predict'`` writes ``pred.step{N}/<task>/`` per task (PALM's
        layout; ``paddlepalm.Predictor`` loads the folder as all its tasks)."""
        self._saver = Saver.parse(save_path, save_steps, save_type, keep_last)
        self._saver.exporter = self._export_predict

    def _export_predict(self, directory: str, weights: Optional[Dict[str, Any]] = None) -> None:
        trained = [t for t in self.trainers if t.sample_batch is not None and t.reuse_head_with is None]
        if not trained:
            raise RuntimeError("no task has trained on a batch yet")
        for trainer in trained:
            export_trainers(self.model, [trainer], os.path.join(directory, trainer.name), weights)

    def export(self, path: str, tasks: Optional[Sequence[str]] = None, format: str = "paddle",
               label_names: Optional[Dict[str, List[str]]] = None, runtime: Optional[str] = None,
               allow_lower_precision: bool = False) -> Dict[str, Any]:
        """One inference model of ``tasks`` (default: every task with its own head) in ``path``: the
        backbone runs once and every head on its outputs; ``paddlepalm.Predictor(path)`` returns
        all tasks' results per input. ``label_names``: ``{task: class names}``. See ``Trainer.export``
        for ``format``, ``runtime``, ``allow_lower_precision`` and which weights."""
        names = [t.name for t in self.trainers if t.reuse_head_with is None] if tasks is None else list(tasks)
        if not names:
            raise ValueError("no task to export")
        chosen = [self.get_trainer(name) for name in names]
        loaded = any(t.weights_loaded for t in self.trainers) or self.weights_loaded
        model, batches, weights = export_source(chosen, self.model, self.pred_model, self.optimization,
                                                self.state.global_step > 0, loaded)
        return export_trainers(model, chosen, path, weights, format, batches, label_names, runtime,
                               allow_lower_precision)

    def load_pretrain(self, model_path: str, convert: bool = False) -> LoadReport:
        """The shared backbone's weights (see ``Trainer.load_pretrain``)."""
        model = self.model or self.pred_model
        if model is None:
            raise RuntimeError("call build_forward() before load_pretrain")
        report = load_pretrained_backbone(model.backbone, model_path)
        log(report.summary())
        return report

    def _resume_targets(self):
        return self.model, self.optimization, self.trainers, self._plan, True

    def _run_settings(self) -> Dict[str, Any]:
        settings = run_settings(self.optimizer_spec, self.trainers)
        if self._plan is not None:  # what an update holds (fit_readers_with_mixratio's joint / tasks_per_update)
            settings["updates"] = {"units": [[self.trainers[i].name for i in unit] for unit in self._plan.units],
                                   "units_per_update": int(self._plan.updates.shape[1])}
        return settings

    def _checkpoint_state(self, step: int) -> Dict[str, Any]:
        state = {"global_step": step, "seed": self.seed, "tasks": {t.name: t.progress.state() for t in self.trainers},
                 "settings": self._run_settings(), "tokenizers": tokenizer_records(self.trainers)}
        if self._plan is not None:
            state["plan"] = self._plan.state()
        if self.evaluation is not None:
            state["evaluation"] = self.evaluation.state()
        balancer = self.balancer.checkpoint_state()
        if balancer is not None:
            state["balancer"] = balancer
        return state

    def _start_training(self) -> None:
        resuming = self._resume.path if self._resume is not None else None
        super()._start_training()
        if resuming is not None:
            self.balancer.restore(self._resumed_state.get("balancer"), os.path.join(resuming, checkpoint.STATE_FILE))

    # ------------------------------------------------------------------ training
    def train(self, print_steps: int = 5, skip_nonfinite: bool = False, progress: bool = False,
              sinks: Optional[Sequence] = None) -> None:
        """Train to the end of the plan (see ``Trainer.train`` for ``skip_nonfinite``, ``progress``
        and ``sinks``)."""
        if self._plan is None:
            raise RuntimeError("call fit_readers_with_mixratio(...) before train()")
        self.guard.skip = bool(skip_nonfinite)
        self._start_training()
        self.evaluation = loop = self._resumed_evaluation(self._build_evaluation())
        self._connect_schedule(loop)
        with closing(sinks_for(progress, sinks)) as all_sinks:
            write = writer_of(all_sinks) or log
            callbacks = [ScheduleFeedback(), Records(all_sinks, print_steps)]
            if self._affinity_settings is not None:
                from paddlepalm.affinity import Affinity

                self.affinity = Affinity(sinks=all_sinks, **self._affinity_settings)
                callbacks.append(self.affinity)
            if loop is not None:
                loop.sinks, loop.write = all_sinks, write
                callbacks.append(Evaluate(loop, self._checkpoint_state))
            callbacks.append(Save(self._saver, self._checkpoint_state))
            Session(self.model, self.optimization, self.trainers, self._plan, self.state, self.guard, self.balancer,
                    callbacks, write).run()

    def _connect_schedule(self, loop: Optional[evaluation.EvaluationLoop]) -> None:
        """The evaluations hand their dev scores to the schedule; a dynamic one without ``every``
        decides after each evaluation."""
        eval_steps = loop.eval_steps if loop is not None else 0
        if loop is not None:
            loop.listeners.append(self.schedule.observe)
        if not self.schedule.dynamic:
            return
        if self.schedule.uses_dev_scores and not eval_steps:
            raise ValueError(f"{self.schedule!r} samples by dev scores: call set_evaluator(eval_steps=N) with an "
                             "eval reader for each task (Trainer.fit_reader(reader, phase='eval'))")
        self._plan.blocks.block = self.schedule.every or eval_steps

    def get_one_batch(self) -> Dict[str, Any]:
        """The batch of the next update the plan draws: one task's batch with ``__task_id`` naming
        it (PALM's layout), or, for an update of several tasks (joint batches, ``tasks_per_update``),
        ``{'__units': [(task, ...), ...], task: batch, ...}``."""
        if self._plan is None or self.state.global_step >= len(self._plan):
            raise RuntimeError("no scheduled step left: call fit_readers_with_mixratio(...) first")
        units = self._plan.units_at(self.state.global_step + 1)
        if len(units) == 1 and len(units[0]) == 1:
            batch = dict(self.trainers[units[0][0]].next_batch())
            batch["__task_id"] = np.array(units[0][0])
            return batch
        batch: Dict[str, Any] = {"__units": [tuple(self.trainers[i].name for i in unit) for unit in units]}
        for unit in units:
            batch.update(unit_batches([self.trainers[i] for i in unit]))
        return batch

    def train_one_step(self, batch: Dict[str, Any]) -> Tuple[Dict[str, Any], Union[int, Tuple[int, ...]]]:
        """One update on the batch ``get_one_batch`` gave; advances the counters and runs the saver
        as ``train()`` does. Returns ``({'loss': float}, task_id)`` for one task (PALM's), and
        ``({'loss': weighted total, 'losses': {task: loss}}, (task ids))`` for several."""
        if self.optimization is None:
            raise RuntimeError("call build_backward(optimizer) before train_one_step")
        batch = dict(batch)
        names = [t.name for t in self.trainers]
        if "__units" in batch:
            units = [[self.get_trainer(name) for name in unit] for unit in batch.pop("__units")]
            work = [(members, {t.name: batch[t.name] for t in members}) for members in units]
        else:
            trainer = self.trainers[int(np.asarray(batch.pop("__task_id")).reshape(-1)[0])]
            work = [([trainer], {trainer.name: batch})]
        self._start_training()
        for members, batches in work:
            for trainer in members:
                trainer.keep_sample(batches[trainer.name])
        session = Session(self.model, self.optimization, self.trainers, self._plan or Plan.single(0), self.state,
                          self.guard, self.balancer, [ScheduleFeedback(), Save(self._saver, self._checkpoint_state)])
        losses = session.step(work).losses
        ids = tuple(names.index(t.name) for members, _ in work for t in members)
        if len(ids) == 1:
            return {"loss": float(losses[names[ids[0]]])}, ids[0]
        weights = {t.name: t.loss_weight for members, _ in work for t in members}
        return ({"loss": sum(weights[task] * float(loss) for task, loss in losses.items()),
                 "losses": {task: float(loss) for task, loss in losses.items()}}, ids)

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
        self.get_trainer(task_name)
        if self.pred_model is None:
            raise RuntimeError("call build_predict_forward() before predict_one_batch")
        return predict_batch(self.pred_model, task_name, batch)


def check_joint_group(trainers: Sequence[Trainer]) -> None:
    """The tasks of a joint group must read the same examples: same count, order, tokens, batch
    size and shuffling, so that every batch (and every data-parallel shard) holds the same rows
    for all of them. Names the first example that differs."""
    from paddlepalm.head.base_head import Head

    lead = trainers[0]
    for trainer in trainers:
        if type(trainer.head).prepare_inputs is not Head.prepare_inputs:
            raise ValueError(f"task {trainer.name}: its head ({type(trainer.head).__name__}) changes the backbone's "
                             "inputs, so it cannot share a backbone pass in a joint group")
    for trainer in trainers[1:]:
        a, b = lead.train_reader, trainer.train_reader
        where = f"joint group {[t.name for t in trainers]}: task {trainer.name} vs task {lead.name}"
        for what, x, y in (("mix_ratio", lead.mix_ratio, trainer.mix_ratio),
                           ("micro_batches", lead.micro_batches, trainer.micro_batches),
                           ("batch_size", a.batch_size, b.batch_size), ("reader seed", a.seed, b.seed),
                           ("shuffle", a.shuffle, b.shuffle), ("number of examples", a.num_examples, b.num_examples)):
            if x != y:
                raise ValueError(f"{where}: {what} {y} vs {x}; a joint group's tasks must agree on it")
        for fa, fb in zip(a._features, b._features):
            if fa["token_ids"] != fb["token_ids"] or fa["segment_ids"] != fb["segment_ids"]:
                raise ValueError(f"{where}: example {fa['example_id']} differs: {_where(b, fb)} is tokenized as "
                                 f"{fb['token_ids'][:12]}..., {_where(a, fa)} as {fa['token_ids'][:12]}...; the "
                                 "files of a joint group must hold the same sentences in the same order")


def _where(reader: Reader, feature: Dict[str, Any]) -> str:
    line = feature.get("line")
    return f"{reader._input_file}:{line}" if line is not None else f"{reader._input_file} example {feature['example_id']}"
