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
the copied vocabulary); post-processing is the head's own (``batch_results`` /
``epoch_postprocess``). Inputs are sorted by length into batches and the results come back in
input order. Paddle models run on ``paddle.inference`` (oneDNN on CPU, the GPU when there is
one); ONNX models on onnxruntime (``pip install paddlepalm[onnx]``).

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
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from paddlepalm.head.seq_label import entity_spans  # noqa: F401  (public here since the first release)
from paddlepalm.utils.fileio import read_json

META_FILE = "palm_meta.json"
META_VERSION = 2  # paddlepalm.export.META_VERSION (not imported: loading needs no export code)


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
# work, and with two threads on two cores that other processes also use, a batch of one ATIS
# sentence took 1.7-3.9x longer than on one thread (bench/inference.py --options, docs/benchmarks.md).
SMALL_BATCH_TOKENS = 256
_TOKEN_INPUTS = ("token_ids", "char_ids", "position_ids", "input_mask")


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
        self.small_batch_threads = small_batch_threads if small else None
        self.small_predictor = None  # created on the first small batch (it loads the weights again)

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
        if self.small_batch_threads is None:
            return self.predictor
        array = next((feed[n] for n in _TOKEN_INPUTS if n in feed), None)
        if array is None or array.ndim < 2 or array.shape[0] * array.shape[1] > SMALL_BATCH_TOKENS:
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
            raise ImportError("an ONNX export runs on onnxruntime: pip install paddlepalm[onnx] "
                              "(or pip install onnxruntime)") from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
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

    A folder without ``palm_meta.json`` whose subfolders are exports (a ``MultiHeadTrainer``'s
    ``pred.step{N}/``) gives a :class:`TaskFoldersPredictor` over all of them.
    """

    def __new__(cls, path: str, *args, **kwargs):
        if cls is Predictor and not os.path.isfile(os.path.join(path, META_FILE)) and task_folders(path):
            cls = TaskFoldersPredictor
        return super().__new__(cls)

    def __init__(self, path: str, threads: Optional[int] = None, use_gpu: Optional[bool] = None,
                 batch_size: int = 32, small_batch_threads: Optional[int] = 1):
        import paddlepalm.head as heads
        import paddlepalm.reader as readers

        self.path = path
        self.meta = meta = read_meta(path)
        self.tasks = [t["name"] for t in meta["tasks"]]
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        kinds = [(t.get("head") or {}).get("class") for t in meta["tasks"]]
        if "MRC" in kinds and len(kinds) > 1:
            raise ModelFolderError(f"{path}: an MRC task reads (question, context) windows: export it alone")
        threads = threads or _default_threads()
        use_gpu = _gpu_available() if use_gpu is None else bool(use_gpu)
        runner = _OnnxRunner if meta["format"] == "onnx" else _PaddleRunner
        self._runner = runner(path, meta, threads, use_gpu, small_batch_threads)
        self._fetch = [o["fetch_name"] for o in meta["outputs"]]
        self._input_names = [i["name"] for i in meta["inputs"]]
        self._readers, self._heads = {}, {}
        for task in meta["tasks"]:
            spec = task.get("reader")
            if spec is None:
                raise ModelFolderError(f"{path}: task {task['name']} was exported without its reader")
            reader = getattr(readers, spec["class"])(os.path.join(path, spec["vocab_file"]), phase="predict",
                                                    **spec["settings"])
            reader._registered = list(self._input_names)  # the arrays the exported backbone takes
            self._readers[task["name"]] = reader
            head_spec = task.get("head")
            if head_spec is not None:
                head = getattr(heads, head_spec["class"])(phase="predict", **head_spec["args"])
                head.set_label_names(task.get("label_names"))
                self._heads[task["name"]] = head

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
        features = {task: reader.features_of(inputs, pretokenized=pretokenized)
                    for task, reader in self._readers.items()}
        if self._is_mrc():
            return self._predict_mrc(inputs, features[self.tasks[0]], batch_size or self.batch_size)
        primary = features[self.tasks[0]]
        order = np.argsort([len(f["token_ids"]) for f in primary], kind="stable")
        records: List[Dict[str, Any]] = [{} for _ in inputs]
        size = batch_size or self.batch_size
        for start in range(0, len(order), size):
            chosen = order[start:start + size]
            batches = {task: self._collate(task, [features[task][i] for i in chosen]) for task in self.tasks}
            outputs = self.run(self._merge(batches))
            for task in self.tasks:
                for index, result in zip(chosen, self._results(task, batches[task], outputs[task],
                                                               [features[task][i] for i in chosen], inputs)):
                    records[index][task] = result
        return records

    # ----------------------------------------------------------------- helpers
    def _is_mrc(self) -> bool:
        return type(self._heads.get(self.tasks[0])).__name__ == "MRC"

    def _collate(self, task: str, features: List[Dict[str, Any]]) -> Dict[str, np.ndarray]:
        return self._readers[task].collate(features, self.meta.get("fixed_length"))

    def _merge(self, batches: Dict[str, Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
        """One feed from the tasks' batches; the backbone's arrays must agree (one backbone pass)."""
        feed: Dict[str, np.ndarray] = {}
        for task, batch in batches.items():
            for name in self._input_names:
                if name not in batch:
                    continue
                if name in feed and not np.array_equal(feed[name], batch[name]):
                    raise ValueError(f"the readers of tasks {self.tasks} tokenize this input differently "
                                     f"({name} differs): export the tasks separately")
                feed.setdefault(name, batch[name])
        return feed

    def _results(self, task: str, batch, outputs, features, inputs) -> List[Dict[str, Any]]:
        head = self._heads.get(task)
        if head is None:  # a head without post-processing: its raw outputs, row by row
            return [{name: value[row] for name, value in outputs.items()} for row in range(len(features))]
        arrays = {**batch, **outputs}
        kind = type(head).__name__
        if kind == "SequenceLabel" and "tags" not in outputs:
            from paddlepalm.utils.crf import viterbi_decode_numpy
            spec = self.meta["tasks"][self.tasks.index(task)]
            labels = spec.get("label_names")
            arrays["tags"] = viterbi_decode_numpy(outputs["logits"], np.maximum(batch["word_counts"], 1),
                                                  spec["transitions"], len(labels) if labels else None)
        results = head.batch_results(arrays)
        for result, feature in zip(results, features):
            result.pop("index", None)
            result["truncated"] = bool(feature.get("truncated", False))
            head.describe_input(result, feature)
        return results

    def _predict_mrc(self, inputs, features, batch_size: int) -> List[Dict[str, Any]]:
        task = self.tasks[0]
        head, reader = self._heads[task], self._readers[task]
        head.reset()
        order = np.argsort([len(f["token_ids"]) for f in features], kind="stable")
        for start in range(0, len(order), batch_size):
            batch = self._collate(task, [features[i] for i in order[start:start + batch_size]])
            head.batch_postprocess({**batch, **self.run(batch)[task]})
        answers = head.epoch_postprocess(reader.get_epoch_outputs())
        head.reset()
        truncated = {}
        for feature in features:
            truncated[feature["question_index"]] = truncated.get(feature["question_index"], False) or feature["truncated"]
        records = [{} for _ in inputs]
        for answer in answers:
            index = answer.pop("index")
            answer.pop("id", None)
            answer["truncated"] = truncated.get(index, False)
            records[index][task] = answer
        return records


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
