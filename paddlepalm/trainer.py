"""``Trainer``: trains, evaluates, saves and predicts one task (PALM's contract)."""
import os
from contextlib import closing
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np
import paddle

from paddlepalm import distributed
from paddlepalm.backbone.base_backbone import Backbone
from paddlepalm import evaluation
from paddlepalm.export import export_trainers
from paddlepalm.engine import Amp, LossGuard, Plan, Saver
from paddlepalm.logs import log
from paddlepalm.head.base_head import Head
from paddlepalm.model import MultiTaskModel, share_parameters
from paddlepalm.optimizer.base_optimizer import Optimizer, positive_finite
from paddlepalm.prediction import chunks, describe_inputs, length_order, logged, model_runner, predict_pass
from paddlepalm.pretrained import LoadReport, load_pretrained_backbone
from paddlepalm.reader.base_reader import Reader
from paddlepalm.resume import Resumable
from paddlepalm.session import Evaluate, Records, Save, Session, TaskProgress, TrainingState, save_final
from paddlepalm.sinks import sinks_for, writer_of
from paddlepalm.update import Optimization


class Trainer(Resumable):
    """One task: its reader, its head on a (possibly shared) backbone, and its training state.

    Optimization settings of the task (positive finite numbers; see docs/optimization.md):
    ``loss_weight`` scales its loss in every update; ``lr_multiplier`` scales the learning rate
    of its own head's parameters (a head reused with ``reuse_head_with`` keeps its owner's);
    ``clip_norm`` clips its gradient by its global norm before it joins other tasks' gradients
    (None: no per-task clipping; the optimizer's ``grad_clip_norm`` clips the combined update);
    ``micro_batches`` splits each training batch into this many forward/backward passes whose
    gradients add up to the whole batch's (gradient accumulation: a large batch in small memory;
    docs/multitask.md).
    """

    def __init__(self, name: str, mix_ratio: float = 1.0, reuse_head_with: Optional[str] = None, *,
                 loss_weight: float = 1.0, lr_multiplier: float = 1.0, clip_norm: Optional[float] = None,
                 micro_batches: int = 1):
        if mix_ratio <= 0:
            raise ValueError(f"mix_ratio must be positive, got {mix_ratio}")
        if isinstance(micro_batches, bool) or not isinstance(micro_batches, int) or micro_batches < 1:
            raise ValueError(f"micro_batches must be a positive integer, got {micro_batches!r}")
        self.micro_batches = micro_batches
        self._name = name
        self._mix_ratio = float(mix_ratio)
        self.reuse_head_with = reuse_head_with
        self.loss_weight = positive_finite("loss_weight", loss_weight)
        self.lr_multiplier = positive_finite("lr_multiplier", lr_multiplier)
        self.clip_norm = positive_finite("clip_norm", clip_norm, allow_none=True)
        if reuse_head_with is not None and self.lr_multiplier != 1.0:
            raise ValueError(f"task {name}: lr_multiplier belongs to the head's owner: set it on the Trainer of "
                             f"{reuse_head_with!r}, whose head this task reuses")
        self.is_aux = False
        self.backbone: Optional[Backbone] = None
        self.head: Optional[Head] = None
        self.model: Optional[MultiTaskModel] = None
        self.pred_backbone: Optional[Backbone] = None
        self.pred_head: Optional[Head] = None
        self.pred_model: Optional[MultiTaskModel] = None
        self.optimization: Optional[Optimization] = None  # build_backward (or the MultiHeadTrainer's)
        self.optimizer_spec: Optional[Optimizer] = None  # the palm.optimizer object given to build_backward
        self.train_reader: Optional[Reader] = None
        self.predict_reader: Optional[Reader] = None
        self.eval_reader: Optional[Reader] = None
        self._eval_settings: Optional[Dict[str, Any]] = None
        self.evaluation: Optional[evaluation.EvaluationLoop] = None
        self._saver: Optional[Saver] = None
        self.guard = LossGuard()
        Resumable.__init__(self)
        self.state = TrainingState()
        self.max_steps: Optional[int] = None  # train exactly this many updates (None: the reader's epochs)
        self.budget: Optional[int] = None  # this task's updates in a MultiHeadTrainer's plan (train_in_group)
        self._predict_batches: Optional[Iterator[Dict[str, np.ndarray]]] = None
        self._sample_batch: Optional[Dict[str, np.ndarray]] = None  # traced by 'predict' saves
        self._weights_loaded = False  # load_ckpt / load_predict_model filled the prediction model
        self._reset_progress()

    def _reset_progress(self) -> None:
        self.progress = TaskProgress()
        self._batches = None

    # ------------------------------------------------------------------ building
    def build_forward(self, backbone: Backbone, head: Head) -> MultiTaskModel:
        """Attach ``head`` to ``backbone``; returns the model (PALM's ``loss_var``)."""
        self.backbone, self.head = backbone, head
        self.model = MultiTaskModel(backbone, {self.name: head})
        self._share_with_prediction()
        return self.model

    def build_predict_forward(self, pred_backbone: Backbone, pred_head: Head) -> MultiTaskModel:
        self.pred_backbone, self.pred_head = pred_backbone, pred_head
        self.pred_model = MultiTaskModel(pred_backbone, {self.name: pred_head})
        self.pred_model.eval()
        self._share_with_prediction()
        return self.pred_model

    def _share_with_prediction(self) -> None:
        """With both models built, the prediction model uses the training model's parameters
        (PALM: one scope), whichever was built first; ``load_ckpt``/``load_predict_model`` then
        set both."""
        if self.model is not None and self.pred_model is not None:
            shared = share_parameters(self.model, self.pred_model)
            log(f"task {self.name}: the prediction model shares {shared} parameters with the training model")

    def build_backward(self, optimizer: Optimizer, weight_decay: Optional[float] = None,
                       use_ema: bool = False, ema_decay: Optional[float] = None,
                       use_amp: bool = False, amp_dtype: str = "float16") -> None:
        """Make the optimizer. ``use_amp`` trains in ``amp_dtype`` on GPUs (fp16 with dynamic
        loss scaling, or bf16); it is ignored, with a note, on CPU."""
        if self.model is None:
            raise RuntimeError("call build_forward(backbone, head) before build_backward")
        self.optimizer_spec = optimizer
        paddle_optimizer = optimizer.build(self.model, weight_decay, use_ema, ema_decay, {self.name: self.lr_multiplier})
        self.optimization = Optimization(paddle_optimizer, optimizer.lr_scheduler, optimizer.ema,
                                         Amp.create(use_amp, amp_dtype))
        self._apply_resume()

    def fit_reader(self, reader: Reader, phase: str = "train") -> Iterator[Dict[str, np.ndarray]]:
        """Bind ``reader`` to this task; returns an iterator of its batches (PALM's idiom
        ``for batch in trainer.fit_reader(reader): trainer.train_one_step(batch)``).

        ``'train'``: batches over epochs until the task's budget (``num_epochs`` epochs; under a
        ``MultiHeadTrainer``, its share); when it ends, the last step is saved as ``train()`` does.
        ``'predict'`` and ``'eval'``: one pass over the data. Nothing is read until the
        iterator is used, so a caller may ignore it and call ``train()`` or ``predict()``.
        """
        if phase == "train":
            if self.head is None:
                raise RuntimeError("call build_forward(backbone, head) before fit_reader(phase='train')")
            self._attach_reader(reader, self.backbone, self.head)
            self.train_reader = reader
            self._check_micro_batches()
            self._reset_progress()
            self._apply_resume()
            return self._train_batches()
        if phase == "eval" and self.head is not None:
            # evaluation during training runs the training model (see paddlepalm/evaluation.py)
            self._attach_reader(reader, self.backbone, self.head)
            self.eval_reader = reader
        elif phase in ("predict", "eval"):
            if self.pred_head is None:
                raise RuntimeError("call build_predict_forward(backbone, head) before fit_reader(phase='predict')")
            self._attach_reader(reader, self.pred_backbone, self.pred_head)
            self.predict_reader = reader
            self._predict_batches = None
        else:
            raise ValueError(f"phase must be 'train' or 'predict', got {phase!r}")
        return reader.iter_in_file_order()

    def _train_batches(self) -> Iterator[Dict[str, np.ndarray]]:
        budget = self._budget()
        if self.budget is None:
            _cover_schedule(self.optimizer_spec, budget)
        start = self.state.global_step
        for _ in range(budget - self.progress.steps_done):
            yield self.next_batch()
        if self.state.global_step > start:
            save_final(self._saver, self.state.global_step, self.model, self.optimization, self._checkpoint_state,
                       self.guard)

    @staticmethod
    def _attach_reader(reader: Reader, backbone: Backbone, head: Head) -> None:
        if reader._registered is None:
            reader.register_with(backbone)
        if distributed.ensure_initialized():
            reader.shard(distributed.rank(), distributed.world_size())
        if not reader.num_examples:
            raise RuntimeError(f"{type(reader).__name__} has no data: call load_data() before fit_reader")
        if hasattr(reader, "check_num_classes") and hasattr(head, "num_classes"):
            reader.check_num_classes(head.num_classes)
        head.set_label_names(getattr(reader, "label_names", None))

    def set_as_aux(self) -> None:
        """An auxiliary task trains alongside but never holds up the end of training."""
        self.is_aux = True

    # ---------------------------------------------------------------- evaluation
    def set_evaluator(self, metrics=None, target: Optional[str] = None, eval_steps: int = 0,
                      patience: Optional[int] = None, save_best: bool = True, best_dir: Optional[str] = None,
                      min_delta: float = 0.0) -> None:
        """Evaluate on the ``fit_reader(reader, phase='eval')`` reader during :meth:`train`.

        ``metrics``: names (``'accuracy'``, ``'macro_f1'``, ``'class_f1'`` (F1 per class), ``'chunk_f1'``, ``'mrc'``, ``'mrc_en'``) or
        :class:`paddlepalm.evaluation.Metric` objects; by default chosen from the head. ``target``: the
        metric that picks the best checkpoint (``<save_path>/best`` or ``best_dir``). Evaluates every
        ``eval_steps`` steps (0: only at the end); stops after ``patience`` evaluations without a better
        target. Under a ``MultiHeadTrainer`` only ``metrics`` and ``target`` are used.
        """
        self._eval_settings = dict(metrics=metrics, target=target, eval_steps=eval_steps, patience=patience,
                                   save_best=save_best, best_dir=best_dir, min_delta=min_delta)

    def task_evaluator(self) -> Optional[evaluation.TaskEvaluator]:
        """This task's dev reader and metrics, or None when it has no eval reader."""
        if self.eval_reader is None:
            return None
        settings = self._eval_settings or {}
        metric_list = evaluation.build_metrics(settings.get("metrics"), self.head)
        target = settings.get("target") or evaluation.default_target(self.head, metric_list)
        return evaluation.TaskEvaluator(self.name, self.eval_reader, metric_list, target)

    def _build_evaluation(self) -> Optional[evaluation.EvaluationLoop]:
        if self._eval_settings is None:
            return None
        s = self._eval_settings
        evaluator = self.task_evaluator()
        return evaluation.EvaluationLoop([evaluator] if evaluator else [], s["eval_steps"], s["patience"],
                                         evaluation.best_dir_for(s["best_dir"], self._saver, s["save_best"]),
                                         s["min_delta"])

    # ------------------------------------------------------------- persistence
    def set_saver(self, save_path: str, save_steps: int, save_type: str = "ckpt",
                  keep_last: Optional[int] = None) -> None:
        """Save every ``save_steps`` steps (and at the end) of ``train()`` or a ``train_one_step``
        loop: ``'ckpt'`` writes ``ckpt.step{N}/`` (to resume or predict from), ``'predict'`` writes
        ``pred.step{N}/``, a Paddle inference model of this task (paddlepalm/export.py; with EMA,
        of the averaged weights); ``'ckpt,predict'`` both. ``keep_last``: keep only the newest N
        ``ckpt.step`` (and ``pred.step``) folders, an older one deleted once the new one verifies
        (None: keep all, as PALM did; ``best/`` is never deleted)."""
        self._saver = Saver.parse(save_path, save_steps, save_type, keep_last)
        self._saver.exporter = self._export_predict

    def _export_predict(self, directory: str, weights: Optional[Dict[str, Any]] = None) -> None:
        export_trainers(self.model, [self], directory, weights)

    def export(self, path: str, format: str = "paddle", label_names: Optional[List[str]] = None,
               runtime: Optional[str] = None, allow_lower_precision: bool = False) -> Dict[str, Any]:
        """Write this task's inference model to ``path`` (see paddlepalm/export.py; with EMA, of
        the averaged weights) and return its metadata; ``paddlepalm.Predictor(path)`` loads it.
        ``format``: ``'paddle'`` (Paddle Inference) or ``'onnx'``. ``label_names``: class names
        for the Predictor's records (by default the reader's, e.g. a tagger's label map). Exports the trained model, or
        else the prediction model once weights were loaded into it (``load_ckpt``,
        ``load_predict_model``); its inputs are read from a bound reader's first batch.
        ``runtime``: ``"auto"`` measures the runtime settings (Paddle Inference fp32 / bf16 / without
        oneDNN, onnxruntime fp32 / int8) on those inputs and records the fastest that agrees with
        fp32 Paddle as the Predictor's default; lower precision only with ``allow_lower_precision``;
        a setting's name records that one (paddlepalm/runtime_choice.py). ``None``: no record."""
        model, batches, weights = export_source([self], self.model, self.pred_model, self.optimization,
                                                self.state.global_step > 0, self._weights_loaded)
        return export_trainers(model, [self], path, weights, format, batches,
                               {self.name: label_names} if label_names else None, runtime, allow_lower_precision)

    def load_pretrain(self, model_path: str, convert: bool = False) -> LoadReport:
        """Backbone weights from a pretrained release or checkpoint (formats: paddlepalm.pretrained),
        or from a registry name such as ``'ernie-3.0-medium-zh'`` (``palm ls pretrain``; downloaded
        once into the cache, see docs/downloader.md; an existing path wins over a name).
        ``convert`` is PALM's argument (re-pack the release); releases are read as they are here."""
        backbone = self.backbone or self.pred_backbone
        if backbone is None:
            raise RuntimeError("call build_forward or build_predict_forward before load_pretrain")
        report = load_pretrained_backbone(backbone, model_path)
        log(report.summary())
        return report

    def _resume_targets(self):
        return self.model, self.optimization, [self], None, False

    def settings(self) -> Dict[str, Any]:
        """This task's optimization settings; every checkpoint's ``trainer.json`` records them."""
        return {"loss_weight": self.loss_weight, "lr_multiplier": self.lr_multiplier, "clip_norm": self.clip_norm,
                "micro_batches": self.micro_batches}

    def _run_settings(self) -> Dict[str, Any]:
        return run_settings(self.optimizer_spec, [self])

    def _checkpoint_state(self, step: int) -> Dict[str, Any]:
        state = {"global_step": step, "tasks": {self.name: self.progress.state()},
                 "settings": self._run_settings(), "tokenizers": tokenizer_records([self])}
        if self.evaluation is not None:
            state["evaluation"] = self.evaluation.state()
        return state

    def restore_progress(self, state: Dict[str, Any]) -> None:
        """This task's position from a checkpoint's ``trainer.json`` (resume)."""
        task = state.get("tasks", {}).get(self.name)
        if task:
            self.progress = TaskProgress(task["steps_done"], task["epoch"], task["batch_in_epoch"])
            self._batches = None

    # ------------------------------------------------------------------ training
    def next_batch(self) -> Dict[str, np.ndarray]:
        """The next training batch (epoch after epoch), advancing :attr:`progress`."""
        if self.train_reader is None:
            raise RuntimeError(f"task {self.name}: call fit_reader(reader) before training")
        progress = self.progress
        if self._batches is None:
            self._batches = self.train_reader.iter_epoch(progress.epoch, skip_batches=progress.batch_in_epoch)
        for _ in range(2):
            try:
                batch = next(self._batches)
                progress.batch_in_epoch += 1
                if self._sample_batch is None:
                    self._sample_batch = batch
                return batch
            except StopIteration:
                progress.epoch += 1
                progress.batch_in_epoch = 0
                self._batches = self.train_reader.iter_epoch(progress.epoch)
        raise RuntimeError(f"task {self.name}: the reader yields no full batch "
                           f"({self.train_reader.num_examples} examples, batch size {self.train_reader.batch_size})")

    def _check_micro_batches(self) -> None:
        if self.train_reader is not None and self.micro_batches > self.train_reader.batch_size:
            raise ValueError(f"task {self.name}: micro_batches={self.micro_batches} exceeds the batch size "
                             f"{self.train_reader.batch_size}")

    def get_one_batch(self, phase: str = "train") -> Dict[str, np.ndarray]:
        """The next training batch, or the next prediction batch of one pass over the prediction
        reader (``StopIteration`` after the last one; ``fit_reader`` starts a new pass)."""
        if phase == "train":
            return self.next_batch()
        if self.predict_reader is None:
            raise RuntimeError("call fit_reader(reader, phase='predict') first")
        if self._predict_batches is None:
            self._predict_batches = self.predict_reader.iter_in_file_order()
        return next(self._predict_batches)

    def train_one_step(self, batch: Dict[str, np.ndarray]) -> Dict[str, Any]:
        """One optimization step on ``batch``; advances the counters and runs the saver
        (``set_saver``) exactly as ``train()`` does. Returns ``{'loss': float}`` and the terms the
        head returns beside its loss (ELECTRA: ``generator_loss``, ``rtd_loss``), as floats."""
        if self.optimization is None:
            raise RuntimeError("call build_backward(optimizer) before train_one_step")
        self._start_training()
        self.keep_sample(batch)
        session = Session(self.model, self.optimization, [self], Plan.single(0), self.state, self.guard,
                          callbacks=[Save(self._saver, self._checkpoint_state)])
        result = session.step([([self], {self.name: batch})])
        terms = {name: float(value) for name, value in result.terms.get(self.name, {}).items()}
        return {"loss": float(result.losses[self.name]), **terms}

    def _budget(self) -> int:
        """Steps this task trains: its share under a MultiHeadTrainer, else ``num_epochs`` epochs
        (``num_epochs=None``: one epoch, as PALM did)."""
        if self.max_steps is not None:
            return int(self.max_steps)
        if self.budget is not None:
            return self.budget
        epochs = self.train_reader.num_epochs
        return int((1 if epochs is None else epochs) * self.steps_per_epoch)

    def train(self, print_steps: int = 5, skip_nonfinite: bool = False, progress: bool = False,
              sinks: Optional[Sequence] = None) -> None:
        """Train to the task's budget. A non-finite loss stops training with an error naming the
        task, the step and the last checkpoint; with ``skip_nonfinite`` such a batch makes no
        update and is counted (``trainer.guard.skipped``) instead. ``progress``: a tqdm bar over
        the steps (PALM's log lines still printed, above it). ``sinks``: objects that see the
        training and evaluation records (paddlepalm/sinks.py: ``MetricsFile``, ``VisualDLWriter``)."""
        if self.train_reader is None:
            raise RuntimeError("call fit_reader(reader) before train()")
        self.guard.skip = bool(skip_nonfinite)
        self._start_training()
        budget = self._budget()
        _cover_schedule(self.optimizer_spec, budget)
        self.evaluation = loop = self._resumed_evaluation(self._build_evaluation())
        with closing(sinks_for(progress, sinks)) as all_sinks:
            self._session(Plan.single(budget), print_steps, all_sinks, loop).run()

    def _session(self, plan: Plan, print_steps: int, sinks, loop) -> Session:
        """``train()``'s session: log lines and records, evaluation, saving (in that order)."""
        write = writer_of(sinks) or log
        callbacks = [Records(sinks, print_steps)]
        if loop is not None:
            loop.sinks, loop.write = sinks, write
            callbacks.append(Evaluate(loop, self._checkpoint_state))
        callbacks.append(Save(self._saver, self._checkpoint_state))
        return Session(self.model, self.optimization, [self], plan, self.state, self.guard, callbacks=callbacks,
                       write=write)

    # ---------------------------------------------------------------- prediction
    def predict(self, output_dir: Optional[str] = None, print_steps: int = 1000, inputs: Optional[Sequence[Any]] = None,
                pretokenized: bool = False, batch_size: int = 32) -> List[Dict[str, Any]]:
        """Predict the ``fit_reader(reader, phase='predict')`` data (PALM's ``predict``), or, with
        ``inputs``, raw texts (lists of tokens with ``pretokenized``) tokenized as the task's
        reader does: the records a ``Predictor`` of the exported model gives."""
        if inputs is not None:
            return self._predict_inputs(inputs, pretokenized, batch_size)
        if self.pred_model is None or self.predict_reader is None:
            raise RuntimeError("call build_predict_forward and fit_reader(reader, phase='predict') before predict()")
        return predict_task(self.pred_model, self.name, self.predict_reader, output_dir, print_steps)

    def _predict_inputs(self, inputs: Sequence[Any], pretokenized: bool, batch_size: int) -> List[Dict[str, Any]]:
        bound = self.predict_reader or self.train_reader or self.eval_reader
        if self.pred_model is None or bound is None:
            raise RuntimeError("call build_predict_forward and bind a reader (fit_reader) before predict(inputs=...)")
        if self.predict_reader is None:
            self.pred_head.set_label_names(getattr(bound, "label_names", None))
        return predict_inputs(self.pred_model, self.name, bound.clone("predict"), inputs, pretokenized, batch_size)

    def predict_one_batch(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """The prediction outputs of one batch, a dict of arrays (see :func:`predict_batch`);
        ``self.pred_head.batch_results(outputs)`` turns them into per-example results."""
        if self.pred_model is None:
            raise RuntimeError("call build_predict_forward before predict_one_batch")
        return predict_batch(self.pred_model, self.name, batch)

    # ---------------------------------------------------------------- properties
    @property
    def name(self) -> str:
        return self._name

    @property
    def mix_ratio(self) -> float:
        return self._mix_ratio

    @property
    def num_examples(self) -> int:
        return self.train_reader.num_examples if self.train_reader else 0

    @property
    def num_epochs(self):
        return self.train_reader.num_epochs if self.train_reader else None

    @property
    def global_step(self) -> int:
        """Updates trained so far (this task's run; in a MultiHeadTrainer, the group's)."""
        return self.state.global_step

    @property
    def optimizer(self) -> Optional[paddle.optimizer.Optimizer]:
        """The paddle optimizer (``build_backward``)."""
        return self.optimization.optimizer if self.optimization is not None else None

    @property
    def amp(self) -> Optional[Amp]:
        return self.optimization.amp if self.optimization is not None else None

    @property
    def cur_train_step(self) -> int:
        return self.progress.steps_done

    @property
    def cur_train_epoch(self) -> int:
        return self.progress.epoch

    @property
    def steps_per_epoch(self) -> int:
        """Training batches per epoch (0 before ``fit_reader``)."""
        return self.train_reader.steps_per_epoch if self.train_reader else 0

    @property
    def steps_pur_epoch(self) -> int:  # PALM's spelling
        return self.steps_per_epoch

    @property
    def sample_batch(self) -> Optional[Dict[str, np.ndarray]]:
        """The first batch this task trained on (its inputs define an exported model's)."""
        return self._sample_batch

    def bound_readers(self) -> List[Reader]:
        """The readers bound to this task (training, evaluation, prediction)."""
        return [r for r in (self.train_reader, self.eval_reader, self.predict_reader) if r is not None]

    def keep_sample(self, batch: Dict[str, np.ndarray]) -> None:
        """Remember ``batch`` as :attr:`sample_batch` unless one is kept already."""
        if self._sample_batch is None:
            self._sample_batch = batch

    def train_in_group(self, model: MultiTaskModel, optimization: Optimization, optimizer_spec: Optimizer) -> None:
        """Train as a member of a ``MultiHeadTrainer``: its model (the shared backbone and every
        head) and optimization replace this task's own."""
        self.model, self.optimization, self.optimizer_spec = model, optimization, optimizer_spec


def tokenizer_records(trainers) -> Dict[str, Dict[str, Any]]:
    """Each training task's tokenizer record (``Reader.tokenizer_record``), for a checkpoint."""
    return {t.name: t.train_reader.tokenizer_record() for t in trainers if t.train_reader is not None}


def export_source(trainers, model: Optional[MultiTaskModel], pred_model: Optional[MultiTaskModel],
                  optimization: Optional[Optimization], trained: bool, loaded: bool):
    """What ``export`` writes: ``(model, sample batches by task, weights)``. The training model
    once it has trained (with EMA, its averaged weights), else the prediction model once weights
    were loaded; a task that has not trained gives its inputs by a bound reader's first batch."""
    if trained and model is not None:
        chosen = model
    elif loaded and (pred_model is not None or model is not None):
        chosen = pred_model if pred_model is not None else model
    else:
        raise RuntimeError("nothing to export yet: train the model, or load weights into it "
                           "(load_ckpt / load_predict_model) first")
    ema = optimization.ema if optimization is not None and chosen is model else None
    weights = ema.averaged_state_dict(model) if ema is not None else None
    batches = {}
    for trainer in trainers:
        if trainer.sample_batch is not None and chosen is model:
            continue
        reader = trainer.predict_reader or trainer.train_reader or trainer.eval_reader
        if reader is None:
            raise RuntimeError(f"task {trainer.name}: bind a reader (fit_reader) before export: its batches "
                               "give the model's inputs")
        batches[trainer.name] = next(reader.iter_epoch(0))
    return chosen, batches, weights


def run_settings(spec: Optional[Optimizer], trainers) -> Dict[str, Any]:
    """The optimization settings of a run: the optimizer's and each task's (``trainer.json``)."""
    return {"optimizer": spec.settings() if spec is not None else None,
            "tasks": {t.name: t.settings() for t in trainers}}


def _cover_schedule(spec: Optional[Optimizer], total_steps: int) -> None:
    sched = spec.lr_schedualer if spec is not None else None
    if sched is not None and sched.cover(total_steps):
        log(f"learning-rate schedule stretched to the {total_steps} training steps (it was shorter)")


def predict_batch(model: MultiTaskModel, task: str, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The head's prediction outputs on ``batch`` as numpy arrays (PALM's fetched outputs):
    ``logits``/``probs`` for classification and matching, per-word emissions ``logits`` and the
    Viterbi ``tags`` for sequence labeling, ``start_logits``/``end_logits`` for MRC."""
    outputs = model_runner(model, task)(batch)
    return {name: value.numpy() if isinstance(value, paddle.Tensor) else np.asarray(value)
            for name, value in outputs.items()}


def predict_inputs(model: MultiTaskModel, task: str, reader: Reader, inputs: Sequence[Any], pretokenized: bool,
                   batch_size: int) -> List[Dict[str, Any]]:
    """Raw ``inputs`` through ``reader.features_of``, in batches sorted by length; one result per
    input, in input order, with the head's description of the input (``describe_input``)."""
    if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
        raise TypeError(f"inputs must be a list, got {type(inputs).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    features = reader.features_of(inputs, pretokenized=pretokenized)
    head = model.head_of(task)
    batches = (reader.collate([features[i] for i in chosen]) for chosen in chunks(length_order(features), batch_size))
    results = predict_pass(head, reader, batches, model_runner(model, task))
    return describe_inputs(head, reader, features, results)


def predict_task(model: MultiTaskModel, task: str, reader: Reader, output_dir: Optional[str],
                 print_steps: int) -> List[Dict[str, Any]]:
    """One pass over ``reader``; results in input order, written to ``output_dir/predictions.json``.

    Under data parallelism each rank predicts its shard; the results are gathered,
    every rank returns all of them and rank 0 writes the files.
    """
    output_dir = output_dir if distributed.is_main() else None
    batches = logged(reader.iter_epoch(0), task, reader.steps_per_epoch, print_steps, log)
    results = predict_pass(model.head_of(task), reader, batches, model_runner(model, task), output_dir, gather=True)
    if output_dir is not None:
        log(f"{task}: {len(results)} predictions written to {os.path.join(output_dir, 'predictions.json')}")
    return results
