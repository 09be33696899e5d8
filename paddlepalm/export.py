"""Export tasks of a model as one inference model (PALM's ``pred.step{N}``; ``trainer.export``).

``export_model`` writes into a directory::

    inference.json       the static program (PIR), from ``paddle.jit.to_static`` + ``paddle.jit.save``
    inference.pdiparams  its weights                       (format="paddle")
    model.onnx           the same program through paddle2onnx  (format="onnx", instead of the two above)
    model.int8.onnx      model.onnx with int8 weights (runtime="auto" or "onnxruntime-int8")
    vocab.txt            the readers' vocabulary, copied
    palm_meta.json       see below

With a ``runtime`` option the export holds the model files of the runtime settings it names
(``"auto"``: all; paddlepalm/inference_runtimes.py) beside its format's, measures them and records
the choice in ``palm_meta.json`` ``"runtime"`` (paddlepalm/runtime_choice.py); ``"model_files"``
lists every model file by kind with its output names.

A model of several tasks runs the backbone **once** per batch and every task's head on its
outputs: one program, with the outputs of all heads. ``palm_meta.json`` holds the format
version, the inputs (name, dtype, shape; -1 = any size) in feed order, the outputs (task, our
name, Paddle's ``fetch_name_N``), and per task its head (class and the arguments that rebuild its
post-processing), label names, reader (class and settings: tokenizer, ``max_len``, label map...)
and, for CRF taggers, the transition matrix. ``paddlepalm.Predictor`` reads it; nothing in the
directory is executed or unpickled to load it.

The inputs are those of a reader batch that the prediction outputs depend on (found in the traced
program: labels and pass-through arrays such as ``example_ids`` drop out). The batch and sequence
dimensions are dynamic unless ``fixed_length`` is given (ELMo: see :func:`export_model`).

CRF decoding stays outside the graph: ``viterbi_decode`` has no ONNX conversion, and in a Paddle
Inference predictor the exported ``viterbi_decode`` gave other paths than the dynamic graph on the
same emissions (with oneDNN on: 10 tag positions differed over 40 ATIS sentences whose emissions agreed to 2e-7). The ``tags`` output
is left out and the Predictor decodes the emissions (``logits``) with the transitions in the
metadata (:func:`paddlepalm.utils.crf.viterbi_decode_numpy`, equal to the dynamic graph's paths).
What a head exports and how its exported outputs are completed is the head's own declaration
(``Head.export_args``, ``export_extras``, ``exporting``, ``complete_outputs``: paddlepalm/head/).
"""
import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import paddle
from paddle import nn

from paddlepalm.evaluation import prediction_mode
from paddlepalm.inference_runtimes import (INT8_QUANTIZATION, ONNX_FILE, ONNX_INT8_FILE, ONNX_INT8_MODEL, ONNX_MODEL,
                                           PADDLE_MODEL, RUNTIMES)
from paddlepalm.logs import log
from paddlepalm.model import MultiTaskModel, to_tensors
from paddlepalm.reader.base_reader import TOKEN_ARRAYS
from paddlepalm.utils.fileio import write_json

META_FILE = "palm_meta.json"
MODEL_PREFIX = "inference"
META_VERSION = 2
FORMATS = ("paddle", "onnx")
FORMAT_MODEL = {"paddle": PADDLE_MODEL, "onnx": ONNX_MODEL}


class ExportError(RuntimeError):
    """An export that could not be written (the directory is left as it was)."""


@dataclass
class TaskExport:
    """One task to export: its name, a reader batch (a training batch will do: labels drop out),
    the reader whose tokenization the Predictor reuses, and the label names."""

    name: str
    sample_batch: Mapping[str, np.ndarray]
    reader: Any = None
    label_names: Optional[List[str]] = None


class _Program(nn.Layer):
    """The prediction outputs of ``tasks`` as a function of a list of arrays (dy2static traces
    positional inputs only): ``MultiTaskModel.forward_tasks``, the backbone once, then every
    task's head on its outputs. Reader arrays not fed are placeholders: heads only pass them
    through, and outputs that are not fetched are pruned from the saved program."""

    def __init__(self, model: MultiTaskModel, outputs: Sequence[Tuple[str, List[str]]], input_names: List[str],
                 placeholders: Mapping[str, str]):
        super().__init__()
        self.model = model
        self.task_outputs = [(task, list(names)) for task, names in outputs]
        self.input_names = list(input_names)
        self.placeholders = dict(placeholders)

    def forward(self, arrays):
        batch = dict(zip(self.input_names, arrays))
        for name, dtype in self.placeholders.items():
            batch[name] = paddle.zeros([1], dtype=dtype)
        outputs = self.model.forward_tasks({task: batch for task, _ in self.task_outputs})
        return [outputs[task][name] for task, names in self.task_outputs for name in names]


def _spec(name: str, array: np.ndarray, fixed_length: Optional[int]) -> paddle.static.InputSpec:
    dims = [-1] * min(array.ndim, 2)
    if fixed_length is not None and name in TOKEN_ARRAYS:  # padded to ``fixed_length``
        dims[1] = int(fixed_length)
    return paddle.static.InputSpec(dims + list(array.shape[2:]), str(array.dtype), name)


def _trace(layer: _Program, arrays: Mapping[str, np.ndarray], fixed_length: Optional[int]):
    specs = [_spec(name, arrays[name], fixed_length) for name in layer.input_names]
    static = paddle.jit.to_static(layer, input_spec=[specs], full_graph=True)
    return static, static.forward.concrete_program


@contextlib.contextmanager
def _all_predicting(model: MultiTaskModel, tasks: Sequence[str]):
    """Every task's head predicting, as exported (``Head.exporting``: a CRF's decoder stays outside)."""
    with contextlib.ExitStack() as stack:
        for task in tasks:
            stack.enter_context(prediction_mode(model, task))
        for head in {id(h): h for h in (model.head_of(t) for t in tasks)}.values():
            stack.enter_context(head.exporting())
        yield


def head_spec(head) -> Optional[Dict[str, Any]]:
    """Class and constructor arguments that rebuild ``head``'s post-processing (no weights), or
    None for a head without one (pretraining heads: the Predictor returns their raw outputs)."""
    if not head.servable:
        return None
    return {"class": type(head).__name__, "args": head.export_args()}


def export_model(model: MultiTaskModel, tasks: Sequence[TaskExport], directory: str,
                 weights: Optional[Dict[str, Any]] = None, format: str = "paddle",
                 fixed_length: Optional[int] = None, runtime: Optional[str] = None,
                 allow_lower_precision: bool = False) -> Dict[str, Any]:
    """Write the prediction program of ``tasks`` (one backbone pass) to ``directory``, atomically,
    and return the metadata written to ``palm_meta.json``. ``weights``: a state dict to export
    instead of the model's own (EMA averages); the model is left as it was. ``fixed_length``: the
    sequence length every input is padded to (ELMo's LSTMs do not export with a dynamic length;
    the Predictor pads).

    ``runtime``: ``None`` writes the model of ``format`` alone, with no runtime record (the
    Predictor runs the format's own setting). ``"auto"`` writes every model file the runtime
    settings run (the Paddle program, ``model.onnx``, the int8 ``model.int8.onnx``), measures each
    setting on the tasks' example batches and records the fastest accepted one per batch size
    (paddlepalm/runtime_choice.py); lower-precision settings (bf16, int8) only with
    ``allow_lower_precision``. A setting's name writes what it needs and records it as the choice."""
    check_exportable(model, format)
    check_runtime_option(model, runtime)
    if not tasks:
        raise ValueError("nothing to export: no task given")
    names = [t.name for t in tasks]
    arrays: Dict[str, np.ndarray] = {}
    for task in tasks:
        for key, value in task.sample_batch.items():
            if not key.startswith("__"):
                arrays.setdefault(key, np.asarray(value))
    original = None
    if weights is not None:
        original = {k: v.numpy().copy() for k, v in model.state_dict().items()}
        model.set_state_dict(weights)
    try:
        with _all_predicting(model, names):
            outputs = []
            for task in tasks:
                batch = {k: np.asarray(v) for k, v in task.sample_batch.items() if not k.startswith("__")}
                reference = model(task.name, to_tensors(batch))
                kept = [n for n in reference if n not in batch]
                outputs.append((task.name, kept))
            all_inputs = sorted(arrays)
            _, program = _trace(_Program(model, outputs, all_inputs, {}), arrays, fixed_length)
            used = [name for name, value in zip(all_inputs, program.inputs[1]) if not value.use_empty()]
            layer = _Program(model, outputs, used, {n: str(arrays[n].dtype) for n in all_inputs if n not in used})
            static, _ = _trace(layer, arrays, fixed_length)
            meta = {"version": META_VERSION, "format": format, "fixed_length": fixed_length,
                    "inputs": [{"name": n, "dtype": str(arrays[n].dtype), "shape": list(_spec(n, arrays[n], fixed_length).shape)}
                               for n in used],
                    "tasks": [_task_meta(model, task, kept) for task, (_, kept) in zip(tasks, outputs)]}
            meta = _save(static, directory, meta, outputs, tasks, _ModelFiles(format, runtime, model),
                         runtime, allow_lower_precision)
    finally:
        if original is not None:
            model.set_state_dict(original)
    return meta


def _task_meta(model: MultiTaskModel, task: TaskExport, outputs: List[str]) -> Dict[str, Any]:
    head = model.head_of(task.name)
    label_names = task.label_names if task.label_names is not None else getattr(head, "label_names", None)
    entry = {"name": task.name, "head": head_spec(head), "outputs": outputs,
             "label_names": list(label_names) if label_names else None, "reader": None}
    if task.reader is not None:
        entry["reader"] = {"class": type(task.reader).__name__, "settings": task.reader.settings()}
    entry.update(head.export_extras())
    return entry


class _ModelFiles:
    """Which model files an export writes: its format's, and with a ``runtime`` option those of
    the runtime settings (``"auto"``: all of them; the Paddle program always, the reference of the
    comparisons). ``problems``: why a kind that was wanted could not be written (auto goes on)."""

    def __init__(self, format: str, runtime: Optional[str], model: MultiTaskModel):
        self.primary = FORMAT_MODEL[format]
        kinds = {self.primary}
        if runtime == "auto":
            kinds |= {PADDLE_MODEL, ONNX_MODEL, ONNX_INT8_MODEL}
        elif runtime is not None:
            kinds |= {PADDLE_MODEL, RUNTIMES[runtime].model}
        if ONNX_INT8_MODEL in kinds:
            kinds.add(ONNX_MODEL)  # the int8 model is quantized from it
        self.wanted = kinds
        self.required = {self.primary} | ({RUNTIMES[runtime].model} if runtime not in (None, "auto") else set())
        if ONNX_INT8_MODEL in self.required:
            self.required.add(ONNX_MODEL)
        self.problems: Dict[str, str] = {}
        refusal = getattr(model.backbone, "onnx_refusal", None)
        if refusal:
            for kind in (ONNX_MODEL, ONNX_INT8_MODEL):
                if kind in self.wanted:
                    self.wanted.discard(kind)
                    self.problems[kind] = f"the {type(model.backbone).__name__} backbone has no ONNX export: {refusal}"

    def failed(self, kind: str, error: Exception) -> None:
        """A wanted kind could not be written: an error if it is required, else a recorded problem."""
        if kind in self.required:
            raise error
        self.problems[kind] = str(error)
        if kind == ONNX_MODEL:
            self.problems.setdefault(ONNX_INT8_MODEL, f"no ONNX model to quantize ({error})")
        log(f"export: no {kind} model ({error}); the settings that run it are left out")


def _save(static, directory: str, meta: Dict[str, Any], outputs: Sequence[Tuple[str, List[str]]],
          tasks: Sequence[TaskExport], kinds: _ModelFiles, runtime: Optional[str] = None,
          allow_lower_precision: bool = False) -> Dict[str, Any]:
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(directory)}.", dir=parent)
    try:
        paddle.jit.save(static, os.path.join(tmp, MODEL_PREFIX))
        files: Dict[str, Dict[str, Any]] = {
            PADDLE_MODEL: {"model_file": MODEL_PREFIX + ".json", "params_file": MODEL_PREFIX + ".pdiparams",
                           "fetch_names": _fetch_names(tmp)}}
        if ONNX_MODEL in kinds.wanted:
            try:
                files[ONNX_MODEL] = {"model_file": ONNX_FILE, "fetch_names": _to_onnx(tmp)}
            except ExportError as error:
                kinds.failed(ONNX_MODEL, error)
        if ONNX_INT8_MODEL in kinds.wanted and ONNX_MODEL in files:
            try:
                _quantize_int8(tmp)
                files[ONNX_INT8_MODEL] = {"model_file": ONNX_INT8_FILE, "fetch_names": files[ONNX_MODEL]["fetch_names"],
                                          "quantization": dict(INT8_QUANTIZATION)}
            except ExportError as error:
                kinds.failed(ONNX_INT8_MODEL, error)
        if PADDLE_MODEL not in kinds.wanted:
            for name in (files[PADDLE_MODEL]["model_file"], files[PADDLE_MODEL]["params_file"]):
                os.remove(os.path.join(tmp, name))
            del files[PADDLE_MODEL]
        primary = files[kinds.primary]
        meta["model_file"], meta["params_file"] = primary["model_file"], primary.get("params_file")
        meta["model_files"] = files
        flat = [(task, name) for task, names in outputs for name in names]
        meta["outputs"] = [{"task": t, "name": n, "fetch_name": f} for (t, n), f in zip(flat, primary["fetch_names"])]
        _copy_vocabularies(tmp, tasks, meta)
        meta["paddle_version"] = paddle.__version__
        write_json(os.path.join(tmp, META_FILE), meta)
        if runtime is not None:
            from paddlepalm.runtime_choice import measure_runtimes

            meta["runtime"] = measure_runtimes(tmp, {t.name: t.sample_batch for t in tasks}, runtime,
                                               allow_lower_precision, kinds.problems)
            write_json(os.path.join(tmp, META_FILE), meta)
        if os.path.exists(directory):
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _copy_vocabularies(tmp: str, tasks: Sequence[TaskExport], meta: Dict[str, Any]) -> None:
    """Each reader's vocabulary into the export (``vocab.txt``; another, different one as
    ``vocab.<task>.txt``)."""
    copied: Dict[str, str] = {}
    for task, entry in zip(tasks, meta["tasks"]):
        if task.reader is None:
            continue
        with open(task.reader.vocab_path, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
        if digest not in copied:
            name = "vocab.txt" if not copied else f"vocab.{task.name}.txt"
            shutil.copyfile(task.reader.vocab_path, os.path.join(tmp, name))
            copied[digest] = name
        entry["reader"]["vocab_file"] = copied[digest]


def _fetch_names(directory: str) -> List[str]:
    """Paddle's names of the saved program's outputs, in the order they were returned."""
    config = paddle.inference.Config(os.path.join(directory, MODEL_PREFIX + ".json"),
                                     os.path.join(directory, MODEL_PREFIX + ".pdiparams"))
    config.disable_gpu()
    config.switch_ir_optim(False)  # only the names are wanted: no optimization passes (and their log)
    config.disable_glog_info()
    return list(paddle.inference.create_predictor(config).get_output_names())


def _to_onnx(directory: str) -> List[str]:
    """Convert the Paddle model in ``directory`` to ``model.onnx`` beside it; returns the ONNX
    output names in order. paddle2onnx's ``export`` returns None also when it fails, so the
    written file is what is checked."""
    try:
        import onnx
        import paddle2onnx
    except ImportError as error:
        raise ExportError(f"format='onnx' needs paddle2onnx and onnx ({error}); pip install paddle2onnx") from None
    target = os.path.join(directory, ONNX_FILE)
    model_file = os.path.join(directory, MODEL_PREFIX + ".json")
    params_file = os.path.join(directory, MODEL_PREFIX + ".pdiparams")
    # optimize_tool="None": the default ("polygraphy") pip-installs packages during the export
    with _stdout_to_stderr():  # paddle2onnx prints its progress on standard output, which carries results
        paddle2onnx.export(model_file, params_file, save_file=target, opset_version=13, enable_onnx_checker=True,
                           optimize_tool="None", verbose=False)
    if not os.path.isfile(target) or os.path.getsize(target) == 0:
        raise ExportError("paddle2onnx wrote no model.onnx (an operator without an ONNX conversion? "
                          "its log above names it); export with format='paddle' instead")
    return [output.name for output in onnx.load(target).graph.output]


@contextlib.contextmanager
def _stdout_to_stderr():
    """Standard output (the file descriptor: C++ libraries print there too) sent to standard error."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _quantize_int8(directory: str) -> None:
    """``model.int8.onnx`` beside ``model.onnx``: its weights quantized to int8 by onnxruntime's
    dynamic quantization (``INT8_QUANTIZATION``; activations are quantized per call). paddle2onnx
    writes the weights as ``Constant`` nodes, which ``quantize_dynamic`` takes for computed values
    and leaves in float: they become initializers first."""
    import logging

    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as error:
        raise ExportError(f"the int8 model needs onnxruntime's quantization tools ({error}); "
                          "pip install -e \".[onnx]\" in the paddlepalm checkout") from None
    model = onnx.load(os.path.join(directory, ONNX_FILE))
    graph = model.graph
    kept = []
    for node in graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            tensor = onnx.TensorProto()
            tensor.CopyFrom(node.attribute[0].t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    work = tempfile.mkdtemp(prefix=".quantize.", dir=directory)
    target = os.path.join(directory, ONNX_INT8_FILE)
    previous = logging.root.manager.disable  # put back as it was: a caller may have disabled logging itself
    logging.disable(logging.WARNING)  # quantize_dynamic logs every MatMul it leaves in float (attention)
    try:
        source = os.path.join(work, "weights-as-initializers.onnx")
        onnx.save(model, source)
        quantize_dynamic(source, target, weight_type=getattr(QuantType, INT8_QUANTIZATION["weight_type"]),
                         per_channel=INT8_QUANTIZATION["per_channel"], reduce_range=INT8_QUANTIZATION["reduce_range"])
    except Exception as error:
        raise ExportError(f"onnxruntime's quantize_dynamic failed: {type(error).__name__}: {error}") from None
    finally:
        logging.disable(previous)
        shutil.rmtree(work, ignore_errors=True)
    quantized = [n for n in onnx.load(target).graph.node if n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul")]
    if not quantized:
        os.remove(target)
        raise ExportError("quantize_dynamic quantized no matrix multiplication of this model")


def export_in_child(model: MultiTaskModel, tasks: Sequence[TaskExport], directory: str,
                    weights: Optional[Dict[str, Any]] = None, format: str = "paddle",
                    fixed_length: Optional[int] = None, timeout: int = 1800, runtime: Optional[str] = None,
                    allow_lower_precision: bool = False) -> Dict[str, Any]:
    """:func:`export_model` in a child process (:func:`_child_main`) that rebuilds the model from its
    backbone config, head arguments and weights: an export that aborts the process (tracing ELMo's
    LSTMs with a dynamic length does) becomes an :class:`ExportError` here."""
    import subprocess

    heads = {task: head_spec(head) for task, head in model.heads.items()}
    if None in heads.values():
        raise ExportError(f"heads {[t for t, h in heads.items() if h is None]} cannot be rebuilt in a child process")
    work = tempfile.mkdtemp(prefix=".palm-export.")
    try:
        state = weights if weights is not None else model.state_dict()
        np.savez(os.path.join(work, "state.npz"),
                 **{k: v.numpy() if isinstance(v, paddle.Tensor) else np.asarray(v) for k, v in state.items()})
        entries = []
        for number, task in enumerate(tasks):
            np.savez(os.path.join(work, f"batch{number}.npz"),
                     **{k: np.asarray(v) for k, v in task.sample_batch.items() if not k.startswith("__")})
            reader = None
            if task.reader is not None:
                reader = {"class": type(task.reader).__name__, "settings": task.reader.settings(),
                          "vocab_path": os.path.abspath(task.reader.vocab_path), "registered": task.reader._registered}
            entries.append({"name": task.name, "label_names": task.label_names, "reader": reader})
        write_json(os.path.join(work, "spec.json"), {
            "backbone": {"class": type(model.backbone).__name__, "config": model.backbone.config},
            "heads": heads, "aliases": model.head_aliases, "tasks": entries, "directory": os.path.abspath(directory),
            "format": format, "fixed_length": fixed_length, "runtime": runtime,
            "allow_lower_precision": allow_lower_precision})
        # -c, not -m paddlepalm.export: runpy warns when the package has imported the module already
        child = "import sys; from paddlepalm.export import _child_main; _child_main(sys.argv[1])"
        done = subprocess.run([sys.executable, "-c", child, work], capture_output=True, text=True, timeout=timeout)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if done.returncode != 0:
        how = f"was killed by signal {-done.returncode}" if done.returncode < 0 else f"exited with {done.returncode}"
        lines = [line.strip() for line in (done.stderr or done.stdout).strip().splitlines() if line.strip()]
        where = next((line for line in lines if "Error" in line), lines[-1] if lines else "no output")
        raise ExportError(f"the export process {how} ({where[:300]})")
    from paddlepalm.utils.fileio import read_json
    return read_json(os.path.join(directory, META_FILE))


def _child_main(work: str) -> None:
    """Child side of :func:`export_in_child`."""
    import paddlepalm.backbone as backbones
    import paddlepalm.head as heads
    import paddlepalm.reader as readers
    from paddlepalm.utils.fileio import read_json

    spec = read_json(os.path.join(work, "spec.json"))
    backbone = getattr(backbones, spec["backbone"]["class"])(spec["backbone"]["config"])
    built = {task: getattr(heads, h["class"])(**h["args"]) for task, h in spec["heads"].items()}
    model = MultiTaskModel(backbone, built, spec["aliases"])
    with np.load(os.path.join(work, "state.npz")) as state:
        model.set_state_dict({k: state[k] for k in state.files})
    tasks = []
    for number, entry in enumerate(spec["tasks"]):
        reader = None
        if entry["reader"] is not None:
            r = entry["reader"]
            reader = getattr(readers, r["class"])(r["vocab_path"], **r["settings"])
            reader._registered = r["registered"]
        model.head_of(entry["name"]).set_label_names(entry["label_names"])
        with np.load(os.path.join(work, f"batch{number}.npz")) as batch:
            tasks.append(TaskExport(entry["name"], {k: batch[k] for k in batch.files}, reader, entry["label_names"]))
    export_model(model, tasks, spec["directory"], None, spec["format"], spec["fixed_length"], spec.get("runtime"),
                 spec.get("allow_lower_precision", False))


def check_runtime_option(model: MultiTaskModel, runtime: Optional[str]) -> None:
    """Refuse, before anything is written, a ``runtime`` option that is neither ``None``, ``"auto"``
    nor a setting that runs on this machine and backbone."""
    if runtime is None or runtime == "auto":
        return
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be None, 'auto' or one of {', '.join(RUNTIMES)}, got {runtime!r}")
    setting = RUNTIMES[runtime]
    problem = setting.machine_problem()
    refusal = getattr(model.backbone, "onnx_refusal", None)
    if problem is None and refusal and setting.model != PADDLE_MODEL:
        problem = f"the {type(model.backbone).__name__} backbone has no ONNX export: {refusal}"
    if problem:
        raise ExportError(f"runtime setting {runtime} is unavailable: {problem}")


def check_exportable(model: MultiTaskModel, format: str) -> None:
    """Refuse, before anything is written, a format the backbone cannot be exported to."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    refusal = getattr(model.backbone, "onnx_refusal", None)
    if format == "onnx" and refusal:
        raise ExportError(f"the {type(model.backbone).__name__} backbone cannot be exported to ONNX: {refusal}")


def export_trainers(model: MultiTaskModel, trainers: Sequence[Any], directory: str,
                    weights: Optional[Dict[str, Any]] = None, format: str = "paddle",
                    sample_batches: Optional[Mapping[str, Mapping[str, np.ndarray]]] = None,
                    label_names: Optional[Mapping[str, List[str]]] = None, runtime: Optional[str] = None,
                    allow_lower_precision: bool = False) -> Dict[str, Any]:
    """Export the tasks of ``trainers`` (``Trainer`` objects) on ``model``: their readers and label
    names come from the trainers; ``sample_batches`` (by task) default to each trainer's first
    training batch; ``label_names`` (by task) override the heads' (a ``ClassifyReader`` reads
    class ids only: give the names here for the Predictor to return them). A backbone with an
    ELMo (``fragile_export``: ELMo itself, a recurrent backbone with ELMo features) is
    exported in a child process, with a dynamic length when that works and else at the reader's
    ``max_len`` (logged): tracing its LSTMs with a dynamic length aborts the process (Paddle 3.3.1).
    After one such failure the process's later ELMo exports go straight to the fixed length."""
    tasks = []
    for trainer in trainers:
        batch = (sample_batches or {}).get(trainer.name, trainer._sample_batch)
        reader = trainer.train_reader or trainer.predict_reader or trainer.eval_reader
        if batch is None:
            raise RuntimeError(f"task {trainer.name} has not trained on a batch yet")
        head = trainer.head or trainer.pred_head
        names = (label_names or {}).get(trainer.name, getattr(head, "label_names", None))
        tasks.append(TaskExport(trainer.name, batch, reader, names))
    check_exportable(model, format)
    check_runtime_option(model, runtime)
    kind = getattr(model.backbone, "fragile_export", None)
    if kind is None:
        return export_model(model, tasks, directory, weights, format, runtime=runtime,
                            allow_lower_precision=allow_lower_precision)
    length = max(t.reader.max_len for t in tasks if t.reader is not None)
    options = {"runtime": runtime, "allow_lower_precision": allow_lower_precision}
    if kind in _FIXED_LENGTH_ONLY:
        return export_in_child(model, tasks, directory, weights, format, fixed_length=length, **options)
    try:
        return export_in_child(model, tasks, directory, weights, format, **options)
    except ExportError as error:
        print(f"ELMo export with a dynamic sequence length failed: {error}; exporting with a fixed length "
              f"of {length} (the Predictor pads every batch to it)", file=sys.stderr, flush=True)
        meta = export_in_child(model, tasks, directory, weights, format, fixed_length=length, **options)
        _FIXED_LENGTH_ONLY.add(kind)
        return meta


# backbone kinds whose dynamic-length export failed and whose fixed-length one worked in this
# process: later exports (every pred.step{N} of a run) skip the doomed child process
_FIXED_LENGTH_ONLY: set = set()
