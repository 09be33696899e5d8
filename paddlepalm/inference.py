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
(``pip install -e ".[onnx]"`` in the checkout).

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
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from paddlepalm.head.base_head import Head
from paddlepalm.head.seq_label import entity_spans  # noqa: F401  (public here since the first release)
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
    for key in ("model_file", "params_file"):
        if meta.get(key) and not os.path.isfile(os.path.join(path, meta[key])):
            raise ModelFolderError(f"{path}: {meta[key]} is missing ({META_FILE} names it)")
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


class _PaddleRunner:
    def __init__(self, path: str, meta: Dict[str, Any], threads: int, use_gpu: bool,
                 small_batch_threads: Optional[int] = 1):
        self.path, self.meta, self.use_gpu = path, meta, use_gpu
        self.predictor = self._create(threads)
        names = list(self.predictor.get_input_names())
        expected = [i["name"] for i in meta["inputs"]]
        if sorted(names) != sorted(expected):
            raise ModelFolderError(f"{path}: the model takes inputs {names} but {META_FILE} lists {expected}")
        outputs = set(self.predictor.get_output_names())
        missing = [o["fetch_name"] for o in meta["outputs"] if o["fetch_name"] not in outputs]
        if missing:
            raise ModelFolderError(f"{path}: the model has no outputs {missing} that {META_FILE} maps")
        small = not use_gpu and small_batch_threads is not None and 0 < small_batch_threads < threads
        self.threads = threads
        self.small_batch_threads = small_batch_threads if small else None
        self.small_predictor = None  # created on the first small batch (it loads the weights again)

    def threads_for(self, feed: Dict[str, np.ndarray]) -> int:
        """The CPU threads that run ``feed``: ``small_batch_threads`` for a small batch."""
        if self.small_batch_threads is None:
            return self.threads
        array = next((feed[n] for n in TOKEN_ARRAYS if n in feed), None)
        if array is None or array.ndim < 2 or array.shape[0] * array.shape[1] > SMALL_BATCH_TOKENS:
            return self.threads
        return self.small_batch_threads

    @property
    def loaded_threads(self) -> List[int]:
        """The thread counts of the predictors created so far."""
        return [self.threads] + ([self.small_batch_threads] if self.small_predictor is not None else [])

    def _create(self, threads: int):
        import paddle.inference as inference

        config = inference.Config(os.path.join(self.path, self.meta["model_file"]),
                                  os.path.join(self.path, self.meta["params_file"]))
        if self.use_gpu:
            config.enable_use_gpu(256, 0)
        else:
            config.disable_gpu()
            config.enable_mkldnn()
            config.set_cpu_math_library_num_threads(threads)
        config.disable_glog_info()  # never enable_memory_optim(): it breaks PIR predictors
        return inference.create_predictor(config)

    def _predictor_for(self, feed: Dict[str, np.ndarray]):
        if self.small_batch_threads is None or self.threads_for(feed) != self.small_batch_threads:
            return self.predictor
        if self.small_predictor is None:
            self.small_predictor = self._create(self.small_batch_threads)
        return self.small_predictor

    def run(self, feed: Dict[str, np.ndarray], fetch: Sequence[str]) -> List[np.ndarray]:
        predictor = self._predictor_for(feed)
        for name, array in feed.items():
            handle = predictor.get_input_handle(name)
            handle.reshape(list(array.shape))
            handle.copy_from_cpu(np.ascontiguousarray(array))
        predictor.run()
        return [predictor.get_output_handle(name).copy_to_cpu() for name in fetch]


class _OnnxRunner:
    def __init__(self, path: str, meta: Dict[str, Any], threads: int, use_gpu: bool,
                 small_batch_threads: Optional[int] = None):
        try:
            import onnxruntime
        except ImportError:
            raise ImportError("an ONNX export runs on onnxruntime: pip install -e \".[onnx]\" in the paddlepalm checkout "
                              "(or pip install onnxruntime)") from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads = threads
        options.log_severity_level = 3  # errors only: paddle2onnx leaves unused initializers that ORT warns about
        providers = ["CPUExecutionProvider"]
        if use_gpu and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = onnxruntime.InferenceSession(os.path.join(path, meta["model_file"]), options,
                                                    providers=providers)
        names = [i.name for i in self.session.get_inputs()]
        expected = [i["name"] for i in meta["inputs"]]
        if sorted(names) != sorted(expected):
            raise ModelFolderError(f"{path}: the model takes inputs {names} but {META_FILE} lists {expected}")

    def threads_for(self, feed: Dict[str, np.ndarray]) -> int:
        return self.threads

    @property
    def loaded_threads(self) -> List[int]:
        return [self.threads]

    def run(self, feed: Dict[str, np.ndarray], fetch: Sequence[str]) -> List[np.ndarray]:
        return self.session.run(list(fetch), feed)


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
                 batch_size: int = 32, small_batch_threads: Optional[int] = 1):
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
        threads = threads or _default_threads()
        use_gpu = _gpu_available() if use_gpu is None else bool(use_gpu)
        runner = _OnnxRunner if meta["format"] == "onnx" else _PaddleRunner
        self._runner = runner(path, meta, threads, use_gpu, small_batch_threads)
        self._fetch = [o["fetch_name"] for o in meta["outputs"]]
        self._input_names = [i["name"] for i in meta["inputs"]]
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
        arrays = self._runner.run({n: feed[n] for n in self._input_names}, self._fetch)
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
        return self._runner.threads_for(feed)

    @property
    def loaded_threads(self) -> List[int]:
        """The thread counts of the model's predictors loaded so far (the small-batch one loads
        on the first small batch)."""
        return self._runner.loaded_threads

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
                 batch_size: int = 32, small_batch_threads: Optional[int] = 1):
        self.path = path
        self.batch_size = int(batch_size)
        folders = task_folders(path)
        self.parts: List[Predictor] = []
        for name in folders:
            try:
                self.parts.append(Predictor(os.path.join(path, name), threads, use_gpu, batch_size,
                                            small_batch_threads))
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

    @property
    def loaded_threads(self) -> List[int]:
        return [threads for part in self.parts for threads in part.loaded_threads]
