"""``Predictor``: an exported model (``trainer.export``, ``pred.step{N}/``) on raw text.

A folder of single-task exports, such as a ``MultiHeadTrainer``'s ``pred.step{N}/<task>/``,
loads as one predictor over all its tasks (each task's model runs on every input; a
``MultiHeadTrainer.export`` folder runs the backbone once for all of them).

::

    predictor = paddlepalm.Predictor("outputs/joint")
    predictor.predict(["show me flights from boston to denver"])
    # [{"intent": {"label": 3, "label_name": "atis_flight", "probs": [...]},
    #   "slot": {"tags": ["O", "O", "O", "O", "B-fromloc.city_name", "O", "B-toloc.city_name"],
    #            "spans": [{"type": "fromloc.city_name", "text": "boston", "start": 21, "end": 27}, ...]}}]

Tokenization is the training reader's own (rebuilt from ``palm_meta.json``: class, settings and
the copied vocabulary); post-processing is the head's own (``Head.from_export``,
``complete_outputs``, then the prediction loop of paddlepalm/prediction.py). Inputs are sorted by
length into batches and the results come back in input order. Paddle models run on
``paddle.inference`` (oneDNN on CPU, the GPU when there is one); ONNX models on onnxruntime
(``pip install -e ".[onnx]"`` in the checkout). Which runtime setting runs (Paddle Inference fp32,
bf16 or without oneDNN, onnxruntime fp32 or int8) is the ``runtime`` argument, else the choice
measured and recorded at export (``runtime="auto"``), else the format's own: see
paddlepalm/inference_runtimes.py.

Inputs per head: a string (``Classify``, ``SequenceLabel``), a ``(text_a, text_b)`` pair (``Match``;
``Classify`` of pairs), a ``(question, context)`` pair or ``{"question", "context"}`` dict (``MRC``,
exported alone). Raw text is split by the model's own tokenizer (paddlepalm/reader/segmentation.py:
Chinese needs no spaces); ``predict(..., pretokenized=True)`` takes lists of tokens instead. A
tagger's result has one tag per ``tokens`` entry and entity ``spans`` as character offsets into
the raw text. An empty list gives an empty list;
an input of another type is a ``TypeError``; a too long input is cut to the reader's ``max_len``
and its record has ``"truncated": True`` (a CRF tagger gives the cut words the ``O`` tag).
"""
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from paddlepalm.head.base_head import Head
from paddlepalm.head.seq_label import entity_spans  # noqa: F401  (public here since the first release)
from paddlepalm.inference_runtimes import RuntimeUnavailable  # noqa: F401  (raised by Predictor; public here)
from paddlepalm.inference_runtimes import RUNTIMES, RuntimePlan, fetch_names, open_session, plan_runtime
from paddlepalm.logs import log
from paddlepalm.prediction import chunks, describe_inputs, length_order, predict_tasks
from paddlepalm.reader.base_reader import TOKEN_ARRAYS
from paddlepalm.utils.fileio import read_json

META_FILE = "palm_meta.json"
META_VERSION = 2  # paddlepalm.export.META_VERSION (not imported: loading needs no export code)


class InputsDiffer(ValueError):
    """The tasks' readers tokenized one batch differently, so it cannot share one backbone pass."""


class ModelFolderError(ValueError):
    """An export folder with missing, mismatched or unknown files."""


def read_meta(path: str) -> Dict[str, Any]:
    """``path``'s ``palm_meta.json``, checked against the files beside it."""
    meta_path = os.path.join(path, META_FILE)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no exported model at {path} (not a directory)")
    if not os.path.isfile(meta_path):
        folders = task_folders(path)
        raise ModelFolderError(f"{path} has no {META_FILE}: not a paddlepalm export (trainer.export, "
                               "set_saver(save_type='predict'))" + (f"; folders found: {', '.join(folders)}"
                                                                    if folders else ""))
    meta = read_json(meta_path)
    version = meta.get("version") if isinstance(meta, dict) else None
    if not isinstance(version, int) or version < META_VERSION:
        raise ModelFolderError(f"{meta_path}: format version {version!r}; this paddlepalm reads version "
                               f"{META_VERSION}: export the model again")
    if version > META_VERSION:
        raise ModelFolderError(f"{meta_path}: format version {version} is newer than this paddlepalm reads "
                               f"({META_VERSION}): upgrade paddlepalm")
    named = [meta.get("model_file"), meta.get("params_file")]
    named += [entry.get(key) for entry in (meta.get("model_files") or {}).values() for key in ("model_file", "params_file")]
    for name in dict.fromkeys(n for n in named if n):
        if not os.path.isfile(os.path.join(path, name)):
            raise ModelFolderError(f"{path}: {name} is missing ({META_FILE} names it)")
    for task in meta["tasks"]:
        vocab = (task.get("reader") or {}).get("vocab_file")
        if vocab and not os.path.isfile(os.path.join(path, vocab)):
            raise ModelFolderError(f"{path}: the vocabulary {vocab} of task {task['name']} is missing")
    return meta


def task_folders(path: str) -> List[str]:
    """The subfolders of ``path``, in name order: the tasks of a ``MultiHeadTrainer``'s
    ``pred.step{N}/`` (one export per task)."""
    if not os.path.isdir(path):
        return []
    return sorted(n for n in os.listdir(path) if not n.startswith(".") and os.path.isdir(os.path.join(path, n)))


def is_export(path: str) -> bool:
    """Whether ``path`` is an export folder, or a folder of per-task exports."""
    return os.path.isfile(os.path.join(path, META_FILE)) or any(
        os.path.isfile(os.path.join(path, name, META_FILE)) for name in task_folders(path))


def verify_export(path: str) -> None:
    """Raise :class:`ModelFolderError` unless ``path`` is a complete export, or a folder of them."""
    folders = [] if os.path.isfile(os.path.join(path, META_FILE)) else task_folders(path)
    for folder in [os.path.join(path, name) for name in folders] or [path]:
        read_meta(folder)


# Batches of at most this many token positions (rows x length) run on a one-thread predictor when
# ``threads`` > 1: every oneDNN op of a short batch is a parallel region of a few microseconds of
# work, and with two threads on two cores that other processes also use, a batch of one sentence
# runs slower than on one thread (measured: bench/inference.py --options, docs/benchmarks.md).
SMALL_BATCH_TOKENS = 256


def _default_threads() -> int:
    value = os.environ.get("MKL_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
    return int(value) if value and value.isdigit() else (os.cpu_count() or 1)


def _gpu_available() -> bool:
    import paddle
    return paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0


class Predictor:
    """Loads an exported model folder; :meth:`predict` maps raw inputs to one record per input,
    ``{task: result}`` for every task of the model.

    ``threads``: CPU threads (default ``MKL_NUM_THREADS``, else every core). ``use_gpu``: default
    when Paddle sees a GPU. ``batch_size``: inputs per run. ``small_batch_threads``: on CPU, a
    Paddle model runs batches of at most ``SMALL_BATCH_TOKENS`` token positions (one or a few
    sentences) on a second predictor with this many threads (created on first use; it holds the
    weights once more); ``None``: every batch on ``threads``. onnxruntime needs no such split.
    ``runtime``: the runtime setting to run (a name of ``paddlepalm.inference_runtimes.RUNTIMES``:
    ``paddle``, ``paddle-bf16``, ``paddle-no-onednn``, ``onnxruntime``, ``onnxruntime-int8``), for
    every batch; ``None``: the choice recorded in the export (``export(..., runtime="auto")``
    measured it, per batch size), else the export format's own (Paddle Inference with oneDNN, or
    onnxruntime). A setting that cannot run here or on this export is a
    ``RuntimeUnavailable`` error naming the reason. :attr:`runtime_plan` and
    :meth:`describe_runtime` say which settings run and why.

    :meth:`predict` is, batch by batch, :meth:`features` (tokenization), :meth:`collate` and
    :meth:`feed` (arrays), :meth:`run` (the model) and the heads' post-processing;
    :meth:`results` post-processes one batch alone, and :meth:`threads_for` says which threads run
    a feed (benchmarks and tests time or check the steps with them).

    A folder without ``palm_meta.json`` whose subfolders are exports (a ``MultiHeadTrainer``'s
    ``pred.step{N}/``) gives a :class:`TaskFoldersPredictor` over all of them.
    """

    def __new__(cls, path: str, *args, **kwargs):
        if cls is Predictor and not os.path.isfile(os.path.join(path, META_FILE)) and task_folders(path):
            cls = TaskFoldersPredictor
        return super().__new__(cls)

    def __init__(self, path: str, threads: Optional[int] = None, use_gpu: Optional[bool] = None,
                 batch_size: int = 32, small_batch_threads: Optional[int] = 1, runtime: Optional[str] = None):
        import paddlepalm.reader as readers

        self.path = path
        self.meta = meta = read_meta(path)
        self.tasks = [t["name"] for t in meta["tasks"]]
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self._heads: Dict[str, Head] = {task["name"]: _exported_head(path, meta, task) for task in meta["tasks"]}
        alone = [t for t, head in self._heads.items() if head.exported_alone]
        if alone and len(self.tasks) > 1:
            raise ModelFolderError(f"{path}: task {alone[0]}'s {type(self._heads[alone[0]]).__name__} head reads "
                                   "inputs of its own (Head.exported_alone): export it alone")
        self.threads = threads or _default_threads()
        self.use_gpu = _gpu_available() if use_gpu is None else bool(use_gpu)
        self.small_batch_threads = small_batch_threads
        self.runtime_plan: RuntimePlan = plan_runtime(meta, runtime, self.use_gpu)
        if self.runtime_plan.source == "format default" and meta.get("runtime") and not self.use_gpu:
            log(f"{path}: {self.runtime_plan.reason}")
        self._input_names = [i["name"] for i in meta["inputs"]]
        self._sessions: Dict[Tuple[str, int], Any] = {}  # (setting, threads) -> session, in creation order
        self._session(self.runtime_plan.large_batches, self.threads)  # loads and checks the model now
        self._readers = {}
        for task in meta["tasks"]:
            spec = task.get("reader")
            if spec is None:
                raise ModelFolderError(f"{path}: task {task['name']} was exported without its reader")
            reader = getattr(readers, spec["class"])(os.path.join(path, spec["vocab_file"]), phase="predict",
                                                    **spec["settings"])
            reader._registered = list(self._input_names)  # the arrays the exported backbone takes
            self._readers[task["name"]] = reader

    # ------------------------------------------------------------------ running
    def run(self, feed: Dict[str, np.ndarray]) -> Dict[str, Dict[str, np.ndarray]]:
        """The model's outputs on one batch of reader arrays, ``{task: {output name: array}}``."""
        missing = [n for n in self._input_names if n not in feed]
        if missing:
            raise KeyError(f"the batch lacks the model inputs {missing}")
        name, threads = self._route(feed)
        arrays = self._session(name, threads).run({n: feed[n] for n in self._input_names},
                                                  fetch_names(self.meta, name))
        outputs: Dict[str, Dict[str, np.ndarray]] = {t: {} for t in self.tasks}
        for spec, array in zip(self.meta["outputs"], arrays):
            outputs[spec["task"]][spec["name"]] = np.asarray(array)
        return outputs

    def predict(self, inputs: Sequence[Any], batch_size: Optional[int] = None,
                pretokenized: bool = False) -> List[Dict[str, Any]]:
        """One record per input, in input order: ``{task: result}``. Raw text is tokenized by the
        model's own tokenizer (Chinese needs no spaces); ``pretokenized``: each text is a list of
        tokens instead. A tagger's result has one tag per token, the ``tokens`` and the entity
        ``spans`` with character offsets into the raw text."""
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
            raise TypeError(f"predict takes a list of inputs, got {type(inputs).__name__}")
        if not len(inputs):
            return []
        features = self.features(inputs, pretokenized)
        order = length_order(features[self.tasks[0]])  # every task's features line up (one task: MRC)
        batches = (self.collate({task: [features[task][i] for i in chosen] for task in self.tasks})
                   for chosen in chunks(order, batch_size or self.batch_size))
        results = predict_tasks(self._heads, self._readers, batches, self._outputs)
        records: List[Dict[str, Any]] = [{} for _ in inputs]
        for task in self.tasks:
            indices = [result["index"] for result in results[task]]
            described = describe_inputs(self._heads[task], self._readers[task], features[task], results[task])
            for index, result in zip(indices, described):
                records[index][task] = result
        return records

    # ----------------------------------------------------- the steps of predict
    def features(self, inputs: Sequence[Any], pretokenized: bool = False) -> Dict[str, List[Dict[str, Any]]]:
        """Each task's features of raw ``inputs`` (its reader's ``features_of``)."""
        return {task: reader.features_of(inputs, pretokenized=pretokenized) for task, reader in self._readers.items()}

    def collate(self, features: Mapping[str, Sequence[Dict[str, Any]]]) -> Dict[str, Dict[str, np.ndarray]]:
        """Each task's batch of its ``features`` (padded to the export's fixed length, if any)."""
        return {task: self._readers[task].collate(list(chosen), self.meta.get("fixed_length"))
                for task, chosen in features.items()}

    def feed(self, batches: Mapping[str, Dict[str, np.ndarray]], first: Optional[str] = None) -> Dict[str, np.ndarray]:
        """The model's inputs from the tasks' batches: the backbone's arrays must agree (one backbone
        pass), else :class:`InputsDiffer`; with ``first``, that task's arrays win where they differ
        (the other tasks' outputs of that run are then not theirs)."""
        feed: Dict[str, np.ndarray] = {}
        order = sorted(batches, key=lambda task: task != first)
        for task in order:
            batch = batches[task]
            for name in self._input_names:
                if name not in batch:
                    continue
                if first is None and name in feed and not np.array_equal(feed[name], batch[name]):
                    raise InputsDiffer(f"the readers of tasks {self.tasks} tokenize this input differently "
                                       f"({name} differs)")
                feed.setdefault(name, batch[name])
        return feed

    def results(self, task: str, batch: Dict[str, np.ndarray], outputs: Dict[str, np.ndarray],
                features: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """``task``'s results of one batch (collated from ``features``) and its outputs (``run``), as
        :meth:`predict` records them; an MRC head's are per window (``predict`` decodes the answers
        from all windows of a question)."""
        head = self._heads[task]
        results = head.batch_results(head.complete_outputs({**batch, **outputs}))
        return describe_inputs(head, self._readers[task], features, results)

    def threads_for(self, feed: Dict[str, np.ndarray]) -> int:
        """The CPU threads that run ``feed`` (``small_batch_threads`` for a small batch)."""
        return self._route(feed)[1]

    def runtime_for(self, feed: Dict[str, np.ndarray]) -> str:
        """The runtime setting (paddlepalm.inference_runtimes.RUNTIMES) that runs ``feed``."""
        return self._route(feed)[0]

    @property
    def loaded_threads(self) -> List[int]:
        """The thread counts of the model's predictors loaded so far (the small-batch one loads
        on the first small batch)."""
        return [threads for _, threads in self._sessions]

    @property
    def loaded_runtimes(self) -> List[Tuple[str, int]]:
        """``(runtime setting, threads)`` of each model session loaded so far, in load order."""
        return list(self._sessions)

    def describe_runtime(self) -> str:
        """Which runtime settings run this model and why (recorded at export, given, or the
        format's default), on one line."""
        return self.runtime_plan.describe()

    def batch_results(self, batches: Mapping[str, Dict[str, np.ndarray]]) -> Dict[str, List[Dict[str, Any]]]:
        """Each task's per-row results (``{"index", "label", "probs", ...}``: the head's
        post-processing, without the raw-text description) of one batch of reader arrays by task;
        the comparisons of runtime settings read them (paddlepalm/runtime_choice.py)."""
        outputs = self._outputs(batches)
        return {task: self._heads[task].batch_results(outputs[task]) for task in self.tasks}

    def _is_small(self, feed: Mapping[str, np.ndarray]) -> bool:
        """A batch of at most ``SMALL_BATCH_TOKENS`` token positions, on CPU."""
        if self.use_gpu:
            return False
        array = next((feed[n] for n in TOKEN_ARRAYS if n in feed), None)
        return array is not None and array.ndim >= 2 and array.shape[0] * array.shape[1] <= SMALL_BATCH_TOKENS

    def _route(self, feed: Mapping[str, np.ndarray]) -> Tuple[str, int]:
        """The runtime setting and thread count of the session that runs ``feed``."""
        if not self._is_small(feed):
            return self.runtime_plan.large_batches, self.threads
        name = self.runtime_plan.small_batches
        small = self.small_batch_threads
        if RUNTIMES[name].splits_small_batches and small is not None and 0 < small < self.threads:
            return name, small
        return name, self.threads

    def _session(self, name: str, threads: int):
        """The model session of setting ``name`` on ``threads`` threads, loaded (and checked
        against the metadata) on first use: the small-batch one holds the weights once more."""
        key = (name, threads)
        if key not in self._sessions:
            session = open_session(self.path, self.meta, name, threads, self.use_gpu)
            expected = [i["name"] for i in self.meta["inputs"]]
            if sorted(session.input_names) != sorted(expected):
                raise ModelFolderError(f"{self.path}: the {name} model takes inputs {session.input_names} but "
                                       f"{META_FILE} lists {expected}")
            missing = [f for f in fetch_names(self.meta, name) if f not in session.output_names]
            if missing:
                raise ModelFolderError(f"{self.path}: the {name} model has no outputs {missing} that {META_FILE} maps")
            self._sessions[key] = session
        return self._sessions[key]

    def _outputs(self, batches: Mapping[str, Dict[str, np.ndarray]]) -> Dict[str, Dict[str, np.ndarray]]:
        """The prediction loop's runner: each head's completed outputs over its batch's arrays. One
        run for all tasks; when their readers tokenize a batch differently (a sentence longer than
        ``max_len``: a tagger cuts whole words, a classifier word pieces), one run per task, each on
        its own arrays."""
        try:
            shared = self.run(self.feed(batches))
            outputs = {task: shared[task] for task in self.tasks}
        except InputsDiffer:
            outputs = {task: self.run(self.feed(batches, first=task))[task] for task in self.tasks}
        return {task: self._heads[task].complete_outputs({**batches[task], **outputs[task]}) for task in self.tasks}


class _RawOutputs(Head):
    """The head of a task exported without post-processing (a pretraining head): its outputs, row
    by row."""

    def __init__(self, names: Sequence[str]):
        super().__init__("predict")
        self.names = list(names)

    def _batch_results(self, arrays: Dict[str, np.ndarray]) -> List[Dict[str, Any]]:
        return [{"index": int(index), **{name: arrays[name][row] for name in self.names}}
                for row, index in enumerate(arrays["example_ids"])]


def _exported_head(path: str, meta: Mapping[str, Any], task: Mapping[str, Any]) -> Head:
    """The post-processing head of an exported task (``Head.from_export``)."""
    import paddlepalm.head as heads

    spec = task.get("head")
    if spec is None:
        return _RawOutputs([o["name"] for o in meta["outputs"] if o["task"] == task["name"]])
    cls = getattr(heads, spec["class"], None)
    if not (isinstance(cls, type) and issubclass(cls, Head) and cls.servable):
        raise ModelFolderError(f"{path}: task {task['name']} has a head {spec['class']!r} that this paddlepalm "
                               "does not serve")
    return cls.from_export(task)


class TaskFoldersPredictor(Predictor):
    """A folder of single-task exports (a ``MultiHeadTrainer``'s ``pred.step{N}/<task>/``) as one
    predictor: :meth:`predict` gives ``{task: result}`` for every task, each task's model run on
    every input (a backbone pass per task). The arguments are :class:`Predictor`'s, for each task."""

    def __init__(self, path: str, threads: Optional[int] = None, use_gpu: Optional[bool] = None,
                 batch_size: int = 32, small_batch_threads: Optional[int] = 1, runtime: Optional[str] = None):
        self.path = path
        self.batch_size = int(batch_size)
        folders = task_folders(path)
        self.parts: List[Predictor] = []
        for name in folders:
            try:
                self.parts.append(Predictor(os.path.join(path, name), threads, use_gpu, batch_size,
                                            small_batch_threads, runtime))
            except (ModelFolderError, FileNotFoundError) as error:
                raise ModelFolderError(f"{path}: task folder {name} does not load: {error} (task folders found: "
                                       f"{', '.join(folders)})") from None
        self.tasks = [task for part in self.parts for task in part.tasks]
        if len(set(self.tasks)) != len(self.tasks):
            raise ModelFolderError(f"{path}: a task is exported in two of its folders ({', '.join(folders)})")
        self.meta = {"tasks": [task for part in self.parts for task in part.meta["tasks"]], "folders": folders}

    def run(self, feed: Dict[str, np.ndarray]) -> Dict[str, Dict[str, np.ndarray]]:
        """Every task model's outputs on one batch of reader arrays, ``{task: {output name: array}}``."""
        return {task: outputs for part in self.parts for task, outputs in part.run(feed).items()}

    def predict(self, inputs: Sequence[Any], batch_size: Optional[int] = None,
                pretokenized: bool = False) -> List[Dict[str, Any]]:
        """One record per input, in input order: ``{task: result}`` for every task."""
        records: Optional[List[Dict[str, Any]]] = None
        for part in self.parts:
            results = part.predict(inputs, batch_size or self.batch_size, pretokenized=pretokenized)
            records = results if records is None else [{**old, **new} for old, new in zip(records, results)]
        return records or []

    # ----------------------------------------------------- the steps of predict
    def features(self, inputs: Sequence[Any], pretokenized: bool = False) -> Dict[str, List[Dict[str, Any]]]:
        return {task: found for part in self.parts for task, found in part.features(inputs, pretokenized).items()}

    def collate(self, features: Mapping[str, Sequence[Dict[str, Any]]]) -> Dict[str, Dict[str, np.ndarray]]:
        return {task: batch for part in self.parts
                for task, batch in part.collate({t: features[t] for t in part.tasks if t in features}).items()}

    def feed(self, batches: Mapping[str, Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
        raise NotImplementedError("each task folder's model takes its own feed: use .parts, a Predictor per folder")

    def results(self, task: str, batch: Dict[str, np.ndarray], outputs: Dict[str, np.ndarray],
                features: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
        return next(part for part in self.parts if task in part.tasks).results(task, batch, outputs, features)

    def threads_for(self, feed: Dict[str, np.ndarray]) -> int:
        raise NotImplementedError("each task folder's model runs on its own threads: use .parts")

    def runtime_for(self, feed: Dict[str, np.ndarray]) -> str:
        raise NotImplementedError("each task folder's model runs its own runtime setting: use .parts")

    @property
    def loaded_threads(self) -> List[int]:
        return [threads for part in self.parts for threads in part.loaded_threads]

    @property
    def loaded_runtimes(self) -> List[Tuple[str, int]]:
        return [loaded for part in self.parts for loaded in part.loaded_runtimes]

    def describe_runtime(self) -> str:
        return "; ".join(f"{os.path.basename(part.path)}: {part.describe_runtime()}" for part in self.parts)

    def batch_results(self, batches: Mapping[str, Dict[str, np.ndarray]]) -> Dict[str, List[Dict[str, Any]]]:
        return {task: results for part in self.parts
                for task, results in part.batch_results({t: batches[t] for t in part.tasks}).items()}
