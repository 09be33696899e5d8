"""Choosing an export's runtime setting by measurement: ``export(..., runtime="auto")``.

The export's own example inputs (the first task's example batch that holds every model input: a
batch of the task's reader, as traced) are run by every runtime setting of
paddlepalm/inference_runtimes.py that can run here, each through a ``Predictor`` as it will serve:

1. **Agreement** with fp32 Paddle (the ``paddle`` setting) on the example batch and on its first
   row alone: the share of equal decisions (class labels, every tag, MRC start and end positions)
   and the largest probability difference (a pairwise matcher's score: relative to
   ``max(1, |score|)``), against the setting's :class:`Tolerance`. fp32 settings
   must agree on every decision; a setting outside its tolerance is rejected.
2. **Speed**: batch 1 (the first example, cut to its length) and a batch of 32 (the example rows
   repeated), call by call in a rotating order, ``rounds`` rounds of ``SMALL_CALLS`` batch-1 calls
   and ``LARGE_CALLS`` batch-32 calls per setting, after a warm-up; the median milliseconds of ``Predictor.run``
   (the model; tokenization and post-processing are the same for every setting). Batch 1 runs as a
   small batch does (``small_batch_threads``), batch 32 on ``threads``.
3. **Choice**, per batch size: the fastest accepted setting, where it beats fp32 Paddle (the
   reference) by at least ``MARGIN``; else the reference. The margin keeps a choice made on a busy
   machine from following noise: on a loaded 2-core machine single medians moved by more than 10%
   from run to run (docs/benchmarks.md). A lower-precision setting (bf16, int8)
   is accepted only with ``allow_lower_precision``: its accuracy on a test split is measured apart
   (bench/precision_accuracy.py), and the project offers lower precision as a default only where it
   loses at most 0.3 points.

Everything measured goes into the export's metadata, ``palm_meta.json`` ``"runtime"``:
``choice`` (``small_batches``: the batch-1 winner, run for batches of at most
``SMALL_BATCH_TOKENS`` token positions; ``large_batches``: the batch-32 winner), each candidate's
milliseconds, agreement, acceptance and reason (or why it was unavailable), the CPU, its flags,
the thread counts and the library versions. With a named setting instead of ``"auto"``, that
setting is recorded as the choice for every batch (``chosen_by: "given"``), measured beside fp32
Paddle all the same.
"""
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from paddlepalm.inference import Predictor
from paddlepalm.inference_runtimes import REFERENCE, RUNTIMES, cpu_model, model_files, notable_cpu_flags
from paddlepalm.logs import log
from paddlepalm.reader.base_reader import TOKEN_ARRAYS

ROUNDS = 3
SMALL_CALLS = 5  # batch-1 calls per setting in a round
LARGE_CALLS = 3  # batch-32 calls per setting in a round
LARGE_BATCH = 32
SHAPES = {"small_batches": "batch_1", "large_batches": "batch_32"}

Batches = Dict[str, Dict[str, np.ndarray]]


class RuntimeChoiceError(RuntimeError):
    """The settings could not be measured on the export's example inputs."""


MARGIN = 0.15  # how much faster than the reference a setting must be to be chosen instead


def example_batches(samples: Mapping[str, Mapping[str, np.ndarray]], input_names: Sequence[str],
                    fixed_length: Optional[int]) -> Tuple[Batches, Batches, Batches, str]:
    """``(example, batch 1, batch 32, the task whose batch they are)``, each ``{task: batch}`` with
    the same arrays for every task (one backbone pass): the first task's example batch that holds
    every model input; batch 1 is its first row cut to its length, batch 32 its rows repeated."""
    source = next((task for task, batch in samples.items() if all(n in batch for n in input_names)), None)
    if source is None:
        raise RuntimeChoiceError(f"no task's example batch holds every model input {list(input_names)}: "
                                 "the runtime settings cannot be measured (export without runtime=)")
    batch = {k: np.asarray(v) for k, v in samples[source].items() if not k.startswith("__")}
    rows = next(iter(batch.values())).shape[0]
    first = _rows(batch, np.array([0]), rows)
    if fixed_length is None and "seq_lens" in first:
        length = int(first["seq_lens"][0])
        first = {k: (v[:, :length] if k in TOKEN_ARRAYS and v.ndim >= 2 else v) for k, v in first.items()}
    large = _rows(batch, np.arange(LARGE_BATCH) % rows, rows)
    tasks = list(samples)
    return ({t: batch for t in tasks}, {t: first for t in tasks}, {t: large for t in tasks}, source)


def _rows(batch: Mapping[str, np.ndarray], index: np.ndarray, rows: int) -> Dict[str, np.ndarray]:
    return {k: (v[index] if v.ndim >= 1 and v.shape[0] == rows else v) for k, v in batch.items()}


def compare_results(reference: Mapping[str, List[Dict[str, Any]]],
                    candidate: Mapping[str, List[Dict[str, Any]]]) -> Dict[str, Any]:
    """How far ``candidate``'s per-row results (``Predictor.batch_results``) are from
    ``reference``'s: decisions (``label``, each tag of a tagger's ``label`` list, the argmax of
    ``*_logits`` lists: MRC start and end) counted and compared, the largest difference of a
    probability (``probs``) and of a score (``score``: a pairwise matcher's, relative to
    ``max(1, |score|)``); both are held to the tolerance's ``max_prob_diff``."""
    total = agreeing = 0
    max_prob = max_score = 0.0
    for task, rows in reference.items():
        others = candidate[task]
        if len(others) != len(rows):
            raise RuntimeChoiceError(f"task {task}: {len(others)} results for {len(rows)} rows")
        for ours, theirs in zip(rows, others):
            for key, value in ours.items():
                other = theirs.get(key)
                if key == "label":
                    mine = value if isinstance(value, list) else [value]
                    yours = other if isinstance(other, list) else [other]
                    total += max(len(mine), len(yours))
                    agreeing += sum(a == b for a, b in zip(mine, yours))
                elif key.endswith("_logits"):
                    total += 1
                    agreeing += int(np.argmax(value) == np.argmax(other))
                elif key == "probs":
                    max_prob = max(max_prob, float(np.max(np.abs(np.asarray(value) - np.asarray(other)))))
                elif key == "score":
                    max_score = max(max_score, abs(float(value) - float(other)) / max(1.0, abs(float(value))))
    return {"decisions": total, "agreeing": agreeing,
            "decision_agreement": agreeing / total if total else 1.0,
            "max_prob_diff": max_prob, "max_score_rel_diff": max_score}


def _merge(first: Dict[str, Any], second: Dict[str, Any]) -> Dict[str, Any]:
    total = first["decisions"] + second["decisions"]
    agreeing = first["agreeing"] + second["agreeing"]
    return {"decisions": total, "agreeing": agreeing, "decision_agreement": agreeing / total if total else 1.0,
            "max_prob_diff": max(first["max_prob_diff"], second["max_prob_diff"]),
            "max_score_rel_diff": max(first["max_score_rel_diff"], second["max_score_rel_diff"])}


def measure_runtimes(path: str, samples: Mapping[str, Mapping[str, np.ndarray]], runtime: str = "auto",
                     allow_lower_precision: bool = False, problems: Optional[Mapping[str, str]] = None,
                     threads: Optional[int] = None, small_batch_threads: Optional[int] = 1,
                     rounds: int = ROUNDS) -> Dict[str, Any]:
    """The ``"runtime"`` record of the export in ``path`` (its metadata written, without the
    record): see the module docstring. ``samples``: the example batch of each task.
    ``problems``: why a kind of model file is missing from the export (``{"onnx": "..."}``), said
    for the settings that need it. ``runtime``: ``"auto"`` or the name of the setting to record."""
    if runtime != "auto" and runtime not in RUNTIMES:
        raise ValueError(f"runtime must be 'auto' or one of {', '.join(RUNTIMES)}, got {runtime!r}")
    reference = Predictor(path, threads=threads, use_gpu=False, small_batch_threads=small_batch_threads,
                          runtime=REFERENCE)
    inputs = [i["name"] for i in reference.meta["inputs"]]
    example, single, large, source = example_batches(samples, inputs, reference.meta.get("fixed_length"))
    names = list(RUNTIMES) if runtime == "auto" else list(dict.fromkeys([REFERENCE, runtime]))
    files = model_files(reference.meta)
    candidates: Dict[str, Dict[str, Any]] = {}
    loaded: Dict[str, Predictor] = {}
    expected = {"example": _results(reference, example), "batch_1": _results(reference, single)}
    for name in names:
        setting = RUNTIMES[name]
        problem = setting.machine_problem()
        if problem is None and setting.model not in files:
            problem = (problems or {}).get(setting.model) or setting.export_problem(files)
        if problem is None:
            try:
                loaded[name] = reference if name == REFERENCE else Predictor(
                    path, threads=threads, use_gpu=False, small_batch_threads=small_batch_threads, runtime=name)
                agreement = _merge(compare_results(expected["example"], _results(loaded[name], example)),
                                   compare_results(expected["batch_1"], _results(loaded[name], single)))
            except RuntimeChoiceError:
                raise
            except Exception as error:  # an engine that fails on this model: said, and left out
                loaded.pop(name, None)
                problem = f"failed on the example inputs: {type(error).__name__}: {str(error)[:300]}"
        if problem is not None:
            candidates[name] = {"available": False, "reason": problem, "precision": setting.precision}
            continue
        tolerance = setting.tolerance
        within = (agreement["decision_agreement"] >= tolerance.min_decision_agreement
                  and max(agreement["max_prob_diff"], agreement["max_score_rel_diff"]) <= tolerance.max_prob_diff)
        if not within:
            accepted, reason = False, (f"outside its tolerance against fp32 paddle ({_agreement_text(agreement)}; "
                                       f"tolerance {tolerance.as_dict()})")
        elif setting.lower_precision and runtime == "auto" and not allow_lower_precision:
            accepted, reason = False, (f"lower precision ({setting.precision}): chosen by auto only with "
                                       "allow_lower_precision (its test-split accuracy: bench/precision_accuracy.py)")
        else:
            accepted, reason = True, "within its tolerance against fp32 paddle"
        candidates[name] = {"available": True, "precision": setting.precision, "agreement": agreement,
                            "tolerance": tolerance.as_dict(), "accepted": accepted, "reason": reason}
    if runtime != "auto" and not candidates[runtime]["available"]:
        raise RuntimeChoiceError(f"runtime setting {runtime} does not run this export: {candidates[runtime]['reason']}")
    feeds = {"batch_1": reference.feed(single), "batch_32": reference.feed(large)}
    timings = _time(loaded, feeds, rounds)
    for name, ms in timings.items():
        candidates[name]["ms"] = ms
        candidates[name]["threads"] = {shape: loaded[name].threads_for(feed) for shape, feed in feeds.items()}
    if runtime == "auto":
        choice = {key: _fastest(timings, [n for n in loaded if candidates[n]["accepted"]], shape)
                  for key, shape in SHAPES.items()}
    else:
        choice = {key: runtime for key in SHAPES}
        if not candidates[runtime].get("accepted", True) and candidates[runtime].get("available"):
            log(f"runtime {runtime}: {candidates[runtime]['reason']}; recorded as given")
    record = {
        "choice": choice, "chosen_by": runtime if runtime == "auto" else "given",
        "allow_lower_precision": bool(allow_lower_precision), "measured_as": dict(SHAPES),
        "inputs": {"task": source, "batch_1": _shape(feeds["batch_1"]), "batch_32": _shape(feeds["batch_32"]),
                   "example_rows": int(next(iter(example[source].values())).shape[0])},
        "threads": {"threads": reference.threads, "small_batch_threads": small_batch_threads},
        "rounds": rounds, "calls_per_round": {"batch_1": SMALL_CALLS, "batch_32": LARGE_CALLS},
        "candidates": candidates, "cpu": cpu_model(), "cpu_flags": notable_cpu_flags(), "versions": _versions(),
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    log(summary(record))
    return record


def _fastest(timings: Mapping[str, Mapping[str, float]], accepted: Sequence[str], shape: str) -> str:
    """The fastest of ``accepted`` at ``shape`` if it is at least ``MARGIN`` faster than the
    reference (fp32 Paddle), else the reference."""
    best = min(accepted, key=lambda n: timings[n][shape])
    if REFERENCE in accepted and timings[best][shape] > (1 - MARGIN) * timings[REFERENCE][shape]:
        return REFERENCE
    return best


def _results(predictor: Predictor, batches: Batches) -> Dict[str, List[Dict[str, Any]]]:
    try:
        return predictor.batch_results(batches)
    except KeyError as missing:
        raise RuntimeChoiceError(f"the example batch lacks the array {missing} that a head's post-processing reads: "
                                 "the runtime settings cannot be compared on it (export without runtime=)") from None


def _agreement_text(agreement: Mapping[str, Any]) -> str:
    text = (f"{agreement['agreeing']}/{agreement['decisions']} decisions equal, probabilities within "
            f"{agreement['max_prob_diff']:.2g}")
    return text + (f", scores within {agreement['max_score_rel_diff']:.2g} (relative)"
                   if agreement["max_score_rel_diff"] else "")


def _shape(feed: Mapping[str, np.ndarray]) -> List[int]:
    array = next((feed[n] for n in TOKEN_ARRAYS if n in feed), next(iter(feed.values())))
    return [int(d) for d in array.shape[:2]]


def _time(loaded: Mapping[str, Predictor], feeds: Mapping[str, Dict[str, np.ndarray]], rounds: int) -> Dict[str, Dict[str, float]]:
    """Median milliseconds of ``Predictor.run`` per setting and feed, the settings taking turns call
    by call in a rotating order (a burst of load from other processes falls on all alike)."""
    names = list(loaded)
    for name in names:  # warm-up: oneDNN builds its kernels and caches on the first calls of a shape
        for feed in (feeds["batch_1"], feeds["batch_1"], feeds["batch_32"]):
            loaded[name].run(feed)
    calls: Dict[str, Dict[str, List[float]]] = {n: {"batch_1": [], "batch_32": []} for n in names}
    turn = 0
    for _ in range(max(1, rounds)):
        for shape, count in (("batch_1", SMALL_CALLS), ("batch_32", LARGE_CALLS)):
            for _ in range(count):
                turn += 1
                for name in names[turn % len(names):] + names[:turn % len(names)]:
                    start = time.perf_counter()
                    loaded[name].run(feeds[shape])
                    calls[name][shape].append(1000 * (time.perf_counter() - start))
    return {n: {shape: round(float(np.median(times)), 3) for shape, times in shapes.items()}
            for n, shapes in calls.items()}


def _versions() -> Dict[str, Optional[str]]:
    import paddle

    versions: Dict[str, Optional[str]] = {"paddle": paddle.__version__}
    for module in ("onnxruntime", "paddle2onnx", "onnx"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            versions[module] = None
    return versions


def summary(record: Mapping[str, Any]) -> str:
    """The record in a few lines: each setting's milliseconds or why it was left out, and the choice."""
    lines = [f"runtime {record['chosen_by']}: batch 1 and batch 32, median ms of {record['rounds']} rounds "
             f"(CPU flags: {', '.join(record['cpu_flags']) or 'unknown'})"]
    for name, entry in record["candidates"].items():
        if not entry["available"]:
            lines.append(f"  {name}: unavailable ({entry['reason']})")
            continue
        ms = entry.get("ms", {})
        lines.append(f"  {name}: {ms.get('batch_1', float('nan')):.2f} / {ms.get('batch_32', float('nan')):.2f} ms, "
                     f"{_agreement_text(entry['agreement'])}; "
                     f"{'accepted' if entry['accepted'] else 'rejected: ' + entry['reason']}")
    choice = record["choice"]
    lines.append(f"  chosen: {choice['small_batches']} for small batches, {choice['large_batches']} for the others")
    return "\n".join(lines)
