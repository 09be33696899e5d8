"""The runtime settings an exported model runs with: one table, :data:`RUNTIMES`.

A setting is an engine (Paddle Inference or onnxruntime), a precision, the engine options that make
it, and the model file of the export it runs:

==================  =========================================================  =========  ===================
name                engine and options                                         precision  model file
==================  =========================================================  =========  ===================
paddle              Paddle Inference, oneDNN (``enable_mkldnn``)               fp32       inference.json
paddle-bf16         Paddle Inference, oneDNN, ``enable_mkldnn_bfloat16()``     bf16       inference.json
paddle-no-onednn    Paddle Inference, oneDNN off (``disable_mkldnn``)          fp32       inference.json
onnxruntime         onnxruntime, CPU execution provider                        fp32       model.onnx
onnxruntime-int8    onnxruntime, weights quantized to int8 at export           int8       model.int8.onnx
                    (``quantize_dynamic``; activations quantized per call)
==================  =========================================================  =========  ===================

``paddle-bf16`` is offered only where the CPU flags (``/proc/cpuinfo``) include ``avx512_bf16`` or
``amx_bf16``; the onnxruntime settings need onnxruntime (``pip install -e ".[onnx]"``) and an export
that holds their model file (``format="onnx"``, or ``runtime=`` at export: paddlepalm/export.py).
A lower-precision setting (bf16, int8) comes with its :class:`Tolerance` against fp32 Paddle.

:func:`plan_runtime` decides which settings a ``Predictor`` runs: the one it is given, else the
choice recorded in the export's metadata (``palm_meta.json`` ``"runtime"``, written by
``export(..., runtime="auto")``: paddlepalm/runtime_choice.py), else the default of the export's
format (``paddle`` or ``onnxruntime``), as before the table existed. Small batches (at most
``SMALL_BATCH_TOKENS`` token positions, paddlepalm/inference.py) and the other batches may run
different settings.
"""
import os
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Sequence, Union

import numpy as np

# the export's model files, by kind (a setting names the kind it runs)
PADDLE_MODEL = "paddle"
ONNX_MODEL = "onnx"
ONNX_INT8_MODEL = "onnx-int8"
PADDLE_PROGRAM_FILE = "inference.json"
PADDLE_PARAMS_FILE = "inference.pdiparams"
ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model.int8.onnx"
# onnxruntime.quantization.quantize_dynamic's arguments for the int8 model: signed int8 weights, one
# scale per output channel, full 8-bit range (the settings for AVX-512 VNNI CPUs)
INT8_QUANTIZATION = {"weight_type": "QInt8", "per_channel": True, "reduce_range": False}

BF16_FLAGS = ("avx512_bf16", "amx_bf16")
DEFAULT_FOR_FORMAT = {"paddle": "paddle", "onnx": "onnxruntime"}


class RuntimeUnavailable(ValueError):
    """A runtime setting that cannot run here or on this export; the message says why."""


@dataclass(frozen=True)
class Tolerance:
    """How far a setting's results may be from fp32 Paddle's on the same inputs: the share of
    decisions (class labels, tags, answer start and end positions) that must be equal, and the
    largest difference of a probability."""

    min_decision_agreement: float
    max_prob_diff: float

    def as_dict(self) -> Dict[str, float]:
        return {"min_decision_agreement": self.min_decision_agreement, "max_prob_diff": self.max_prob_diff}


# fp32 settings compute the same function in another order: every decision equal, probabilities
# within float32 rounding (measured differences are below 1e-6; tests/test_export.py holds 1e-5)
FP32_TOLERANCE = Tolerance(min_decision_agreement=1.0, max_prob_diff=1e-4)
# bf16 keeps 8 significant bits (a relative rounding error of up to 2^-9 per value); int8 weights
# one of 255 levels per output channel: a logit moves by a percent or two, a probability by at most a
# quarter of its logit's change, and a decision flips only where its fp32 margin is that small. The
# bounds are those tests/test_inference_runtimes.py checks, with the reasons and measurements there.
BF16_TOLERANCE = Tolerance(min_decision_agreement=0.97, max_prob_diff=0.05)
INT8_TOLERANCE = Tolerance(min_decision_agreement=0.97, max_prob_diff=0.05)


@dataclass(frozen=True)
class RuntimeSetting:
    """One row of :data:`RUNTIMES`."""

    name: str
    engine: str  # "paddle" (Paddle Inference) or "onnxruntime"
    precision: str  # "fp32", "bf16" or "int8"
    model: str  # the kind of model file it runs: PADDLE_MODEL, ONNX_MODEL or ONNX_INT8_MODEL
    description: str
    tolerance: Tolerance
    onednn: bool = False
    bfloat16: bool = False
    # small batches run on a second session with ``small_batch_threads`` threads (Paddle Inference:
    # every oneDNN op of a short batch is a parallel region of microseconds; onnxruntime has no such cost)
    splits_small_batches: bool = False
    cpu_only: bool = False

    @property
    def lower_precision(self) -> bool:
        return self.precision != "fp32"

    def machine_problem(self, use_gpu: bool = False) -> Optional[str]:
        """Why this machine cannot run the setting (None: it can)."""
        if use_gpu and self.cpu_only:
            return f"{self.name} is a CPU setting and this Predictor runs on the GPU (use_gpu=False runs it)"
        if self.bfloat16:
            flags = cpu_features()
            if not flags:
                return "the CPU flags are unknown (no /proc/cpuinfo), so bf16 support cannot be confirmed"
            if not flags & set(BF16_FLAGS):
                return (f"this CPU has no bf16 instructions (its flags include neither {' nor '.join(BF16_FLAGS)}): "
                        "oneDNN would emulate bf16, slower than fp32")
        if self.engine == "onnxruntime":
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                return ("onnxruntime is not installed: pip install -e \".[onnx]\" in the paddlepalm checkout "
                        "(or pip install onnxruntime)")
        return None

    def export_problem(self, files: Mapping[str, Any]) -> Optional[str]:
        """Why an export with these model files (:func:`model_files`) cannot run the setting."""
        if self.model in files:
            return None
        how = {ONNX_MODEL: "export with format='onnx' (palm export --format onnx) or with a runtime option "
                           "(palm export --runtime auto)",
               ONNX_INT8_MODEL: "export with runtime='auto' or runtime='onnxruntime-int8' (palm export --runtime ...)",
               PADDLE_MODEL: "export with format='paddle' or with a runtime option (palm export --runtime auto)"}
        return f"the export has no {self.model} model file ({', '.join(sorted(files)) or 'none'} only): {how[self.model]}"


RUNTIMES: Dict[str, RuntimeSetting] = {s.name: s for s in (
    RuntimeSetting("paddle", "paddle", "fp32", PADDLE_MODEL, "Paddle Inference with oneDNN, fp32",
                   FP32_TOLERANCE, onednn=True, splits_small_batches=True),
    RuntimeSetting("paddle-bf16", "paddle", "bf16", PADDLE_MODEL,
                   "Paddle Inference with oneDNN, bfloat16 (enable_mkldnn_bfloat16)",
                   BF16_TOLERANCE, onednn=True, bfloat16=True, splits_small_batches=True, cpu_only=True),
    RuntimeSetting("paddle-no-onednn", "paddle", "fp32", PADDLE_MODEL, "Paddle Inference without oneDNN, fp32",
                   FP32_TOLERANCE, splits_small_batches=True, cpu_only=True),
    RuntimeSetting("onnxruntime", "onnxruntime", "fp32", ONNX_MODEL, "onnxruntime, fp32", FP32_TOLERANCE),
    RuntimeSetting("onnxruntime-int8", "onnxruntime", "int8", ONNX_INT8_MODEL,
                   "onnxruntime, int8 weights (dynamic quantization)", INT8_TOLERANCE, cpu_only=True),
)}
REFERENCE = "paddle"  # every other setting is checked against its results


def setting(name: str) -> RuntimeSetting:
    """The setting called ``name``; a ``ValueError`` naming the settings for another name."""
    if name not in RUNTIMES:
        raise ValueError(f"unknown runtime setting {name!r}; the settings are {', '.join(RUNTIMES)}")
    return RUNTIMES[name]


def cpu_features() -> FrozenSet[str]:
    """The CPU flags of ``/proc/cpuinfo`` (empty where there is none)."""
    from paddlepalm.utils.fileio import read_text

    try:
        text = read_text("/proc/cpuinfo")
    except OSError:
        return frozenset()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or ``"unknown"``."""
    from paddlepalm.utils.fileio import read_text

    try:
        text = read_text("/proc/cpuinfo")
    except OSError:
        return "unknown"
    line = next((line for line in text.splitlines() if line.startswith("model name")), "")
    return line.partition(":")[2].strip() or "unknown"


def notable_cpu_flags() -> List[str]:
    """The CPU flags that matter for these settings, as recorded with a measurement."""
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
    flags = cpu_features()
    return [f for f in wanted if f in flags]


def model_files(meta: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    """The export's model files by kind: ``{kind: {"model_file", "params_file"?, "fetch_names"?}}``.
    Exports written before runtime settings hold the one model of their format."""
    if meta.get("model_files"):
        return {kind: dict(entry) for kind, entry in meta["model_files"].items()}
    if meta.get("format") == "onnx":
        return {ONNX_MODEL: {"model_file": meta["model_file"]}}
    return {PADDLE_MODEL: {"model_file": meta["model_file"], "params_file": meta["params_file"]}}


def check_runnable(name: str, meta: Mapping[str, Any], use_gpu: bool = False) -> RuntimeSetting:
    """The setting ``name`` if it runs here on this export, else :class:`RuntimeUnavailable` saying why."""
    chosen = setting(name)
    problem = chosen.machine_problem(use_gpu) or chosen.export_problem(model_files(meta))
    if problem:
        raise RuntimeUnavailable(f"runtime setting {name} is unavailable: {problem}")
    return chosen


@dataclass(frozen=True)
class RuntimePlan:
    """Which settings a Predictor runs and why: ``small_batches`` for batches of at most
    ``SMALL_BATCH_TOKENS`` token positions, ``large_batches`` for the others; ``source`` is
    ``"given"`` (the Predictor's ``runtime`` argument), ``"recorded"`` (the export's measured
    choice) or ``"format default"`` (no record: the export's format decides, as before)."""

    small_batches: str
    large_batches: str
    source: str
    reason: str

    def describe(self) -> str:
        which = (self.large_batches if self.small_batches == self.large_batches else
                 f"{self.small_batches} for small batches, {self.large_batches} for the others")
        return f"runtime {which} ({self.source}: {self.reason})"


def plan_runtime(meta: Mapping[str, Any], runtime: Optional[str] = None, use_gpu: bool = False) -> RuntimePlan:
    """The settings to run the export of ``meta`` with (see :class:`RuntimePlan`); every one checked
    runnable (:class:`RuntimeUnavailable` otherwise)."""
    if runtime == "auto":
        raise ValueError("runtime='auto' is an export option (it measures the settings and records its choice); "
                         f"a Predictor takes one of {', '.join(RUNTIMES)}, or None for the recorded choice")
    if runtime is not None:
        check_runnable(runtime, meta, use_gpu)
        return RuntimePlan(runtime, runtime, "given", "the runtime argument overrides the export's default")
    record = meta.get("runtime")
    default = DEFAULT_FOR_FORMAT[meta.get("format", "paddle")]
    reason = f"the export's format is {meta.get('format', 'paddle')}"
    if not record:
        return RuntimePlan(default, default, "format default", reason + " and it records no runtime choice")
    if use_gpu:
        return RuntimePlan(default, default, "format default", reason + "; its recorded choice was measured on "
                           "CPU and this Predictor runs on the GPU")
    choice = record["choice"]
    try:
        for name in (choice["small_batches"], choice["large_batches"]):
            check_runnable(name, meta)
    except (RuntimeUnavailable, ValueError) as problem:  # measured on another machine, or a newer paddlepalm
        return RuntimePlan(default, default, "format default", f"{reason}; the recorded choice does not run here "
                           f"({problem})")
    return RuntimePlan(choice["small_batches"], choice["large_batches"], "recorded", recorded_reason(record))


def recorded_reason(record: Mapping[str, Any]) -> str:
    """One line on how an export's runtime choice was made."""
    chosen_by = record.get("chosen_by")
    if chosen_by == "given":
        return f"given at export ({record.get('measured_at', 'unknown time')})"
    parts = []
    for shape, key in (("small batches", "small_batches"), ("large batches", "large_batches")):
        name = record["choice"][key]
        ms = record.get("candidates", {}).get(name, {}).get("ms", {}).get(record.get("measured_as", {}).get(key, ""))
        parts.append(f"{shape}: {name}" + (f" {ms:.2f} ms" if isinstance(ms, (int, float)) else ""))
    return (f"measured at export on {record.get('measured_at', 'unknown time')}, fastest of the accepted settings, "
            + "; ".join(parts))


# ------------------------------------------------------------------ sessions: one setting, one thread count
class PaddleSession:
    """A Paddle Inference predictor of the export's Paddle program in one setting."""

    def __init__(self, path: str, files: Mapping[str, Any], chosen: RuntimeSetting, threads: int, use_gpu: bool):
        import paddle.inference as inference

        config = inference.Config(os.path.join(path, files["model_file"]), os.path.join(path, files["params_file"]))
        if use_gpu:
            config.enable_use_gpu(256, 0)
        else:
            config.disable_gpu()
            if chosen.onednn:
                config.enable_mkldnn()
                if chosen.bfloat16:
                    config.enable_mkldnn_bfloat16()
            else:
                config.disable_mkldnn()
            config.set_cpu_math_library_num_threads(threads)
        config.disable_glog_info()  # never enable_memory_optim(): it breaks PIR predictors
        self.predictor = inference.create_predictor(config)
        self.threads = threads
        self.input_names = list(self.predictor.get_input_names())
        self.output_names = list(self.predictor.get_output_names())

    def run(self, feed: Mapping[str, np.ndarray], fetch: Sequence[str]) -> List[np.ndarray]:
        for name, array in feed.items():
            handle = self.predictor.get_input_handle(name)
            handle.reshape(list(array.shape))
            handle.copy_from_cpu(np.ascontiguousarray(array))
        self.predictor.run()
        return [self.predictor.get_output_handle(name).copy_to_cpu() for name in fetch]


class OnnxSession:
    """An onnxruntime session of one of the export's ONNX models."""

    def __init__(self, path: str, files: Mapping[str, Any], chosen: RuntimeSetting, threads: int, use_gpu: bool):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads = threads
        options.log_severity_level = 3  # errors only: paddle2onnx leaves unused initializers that ORT warns about
        providers = ["CPUExecutionProvider"]
        if use_gpu and not chosen.cpu_only and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = onnxruntime.InferenceSession(os.path.join(path, files["model_file"]), options,
                                                    providers=providers)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, feed: Mapping[str, np.ndarray], fetch: Sequence[str]) -> List[np.ndarray]:
        return self.session.run(list(fetch), dict(feed))


def open_session(path: str, meta: Mapping[str, Any], name: str, threads: int,
                 use_gpu: bool) -> Union[PaddleSession, OnnxSession]:
    """A session (``input_names``, ``output_names``, ``threads``, ``run(feed, fetch)``) of the export
    in ``path`` in the setting ``name``."""
    chosen = check_runnable(name, meta, use_gpu)
    files = model_files(meta)[chosen.model]
    kind = PaddleSession if chosen.engine == "paddle" else OnnxSession
    return kind(path, files, chosen, threads, use_gpu)


def fetch_names(meta: Mapping[str, Any], name: str) -> List[str]:
    """The output names of setting ``name``'s model file, in ``meta["outputs"]`` order."""
    files = model_files(meta)[setting(name).model]
    return list(files.get("fetch_names") or [o["fetch_name"] for o in meta["outputs"]])
