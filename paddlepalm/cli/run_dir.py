"""The run directory, the unit of work of ``palm train``::

    RUN_DIR/config.yaml          the resolved config (defaults merged, paths absolute, derived sizes)
    RUN_DIR/env.json             versions, command line and device of each launch
    RUN_DIR/metrics.jsonl        one record per log line and per evaluation (paddlepalm/sinks.py)
    RUN_DIR/checkpoints/         ckpt.step{N}/ (pred.step{N}/ with save_type 'predict')
    RUN_DIR/best/                the best evaluated weights
    RUN_DIR/export/              palm export's inference models
    RUN_DIR/plots/               palm plot's PNGs
    RUN_DIR/data/                the data a config's `prepare` script wrote
    RUN_DIR/visualdl/            VisualDL scalars (train.report_to: visualdl)
"""
import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import sys
import time
from importlib import metadata
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

from paddlepalm.utils.fileio import read_json, read_lines, write_json, write_json_lines, write_text

ENTRIES = ("config.yaml", "env.json", "metrics.jsonl", "checkpoints", "best", "export", "plots", "data", "data.tmp",
           "visualdl", "predictions.jsonl")


class RunDirError(RuntimeError):
    pass


def open_for_training(run_dir: str, resume: bool, force: bool) -> bool:
    """Check (and with ``force`` clear) ``run_dir``; True when a run is there to resume."""
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise RunDirError(f"{run_dir} is a file, not a run directory")
    entries = sorted(os.listdir(run_dir)) if os.path.isdir(run_dir) else []
    started = os.path.isfile(os.path.join(run_dir, "config.yaml"))
    if entries and not (resume or force):
        raise RunDirError(f"{run_dir} is not empty ({', '.join(entries[:5])}{', ...' if len(entries) > 5 else ''}): "
                          "--resume continues the run in it, --force starts it over")
    if force and entries:
        unknown = [e for e in entries if e not in ENTRIES and not _leftover(e)]
        if unknown:
            raise RunDirError(f"{run_dir} holds files palm train did not write ({', '.join(unknown[:5])}): "
                              "--force clears only a run directory; choose another directory")
        _clear(run_dir)
        return False
    if resume and entries and not started:
        raise RunDirError(f"{run_dir} has no config.yaml: no run started there to resume (--force starts over)")
    os.makedirs(run_dir, exist_ok=True)
    return resume and started


def _clear(run_dir: str) -> None:
    for entry in os.listdir(run_dir):
        path = os.path.join(run_dir, entry)
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


@contextlib.contextmanager
def cleared_on_failure(run_dir: str, made: bool, trained: Callable[[], bool]) -> Iterator[None]:
    """Around a new run's preparation and training: when it fails while ``trained()`` is false
    (not one step done), what it wrote is removed (``run_dir`` too when this launch ``made`` it),
    so that the same command can run again without ``--force``."""
    try:
        yield
    except BaseException:
        if not trained() and os.path.isdir(run_dir):
            _clear(run_dir)
            if made:
                os.rmdir(run_dir)
            print(f"palm train: no step was trained: {run_dir} {'removed' if made else 'emptied'}", file=sys.stderr)
        raise


def _leftover(name: str) -> bool:
    """A temporary or aside copy an interrupted atomic write left (``.best.tmp-*``)."""
    return name.startswith(".") and (".tmp-" in name or ".old-" in name)


def checkpoints_dir(run_dir: str) -> str:
    return os.path.join(run_dir, "checkpoints")


def newest_checkpoint(run_dir: str) -> Optional[str]:
    """``RUN_DIR/checkpoints/ckpt.step{N}`` with the largest N (after repairing an interrupted save)."""
    from paddlepalm import checkpoint

    directory = checkpoints_dir(run_dir)
    checkpoint.recover(run_dir)  # best/
    if not os.path.isdir(directory):
        return None
    checkpoint.recover(directory)
    steps = [(int(m.group(1)), name) for name in os.listdir(directory)
             if (m := re.fullmatch(r"ckpt\.step(\d+)", name)) and os.path.isdir(os.path.join(directory, name))]
    return os.path.join(directory, max(steps)[1]) if steps else None


def weights_for(run_dir: str, chosen: Optional[str] = None) -> str:
    """The checkpoint eval/export/predict use: ``chosen``, else ``best/``, else the newest."""
    if chosen:
        if not os.path.isdir(chosen):
            raise RunDirError(f"--checkpoint {chosen}: no such checkpoint directory")
        return chosen
    best = os.path.join(run_dir, "best")
    if os.path.isdir(best):
        return best
    newest = newest_checkpoint(run_dir)
    if newest is None:
        raise RunDirError(f"{run_dir} has no checkpoint yet (no best/, nothing in checkpoints/)")
    return newest


def config_path(run_dir: str) -> str:
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        raise RunDirError(f"{run_dir} is not a run directory of palm train (no config.yaml)")
    return path


def write_config(run_dir: str, text: str) -> None:
    header = ("# written by palm train: the resolved config of this run (defaults merged, paths absolute,\n"
              "# sizes derived from the data filled in). palm eval / export / predict read it.\n")
    write_text(os.path.join(run_dir, "config.yaml"), header + text)


def differences(new: Any, stored: Any, path: str = "") -> List[str]:
    """Key paths where ``new`` differs from ``stored``; keys only ``stored`` has are the ones
    the run derived from its data (a head's num_classes...) and do not count."""
    if isinstance(new, dict) and isinstance(stored, dict):
        out = []
        for key, value in new.items():
            sub = f"{path}.{key}" if path else str(key)
            out += [sub] if key not in stored else differences(value, stored[key], sub)
        return out
    return [] if new == stored else [path or "(top level)"]


def launch_info(argv: Sequence[str], resumed_from: Optional[str]) -> Dict[str, Any]:
    import paddle

    import paddlepalm

    def version(package: str) -> Optional[str]:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": "palm " + shlex.join(list(argv)),
            "cwd": os.getcwd(), "python": platform.python_version(), "paddle": paddle.__version__,
            "paddlenlp": version("paddlenlp"), "paddlepalm": paddlepalm.__version__,
            "device": paddle.get_device(), "cuda": paddle.is_compiled_with_cuda(),
            "cpu_count": os.cpu_count(), "platform": platform.platform(), "executable": sys.executable,
            "resumed_from": resumed_from, "runtime_settings": paddlepalm.runtime.applied(),
            "denormals": paddlepalm.runtime.denormals_status()}


def write_env(run_dir: str, argv: Sequence[str], resumed_from: Optional[str],
              extra: Optional[Dict[str, Any]] = None) -> None:
    """``env.json``: the first launch's fields; later launches (resumes) under ``launches``.
    ``extra``: more fields of this launch (the speed layers the model was built with)."""
    path = os.path.join(run_dir, "env.json")
    info = dict(launch_info(argv, resumed_from), **(extra or {}))
    env = read_json(path) if os.path.isfile(path) else None
    if env is None:
        env = dict(info, launches=[])
    else:
        env.setdefault("launches", []).append(info)
    write_json(path, env)


def metrics_path(run_dir: str) -> str:
    return os.path.join(run_dir, "metrics.jsonl")


def read_metrics(run_dir: str) -> List[Dict[str, Any]]:
    """The records of ``metrics.jsonl`` (a line cut short by a kill is left out)."""
    path = metrics_path(run_dir)
    if not os.path.isfile(path):
        return []
    records = []
    for line in read_lines(path):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def truncate_metrics(run_dir: str, checkpoint_dir: Optional[str]) -> None:
    """Before resuming from ``checkpoint_dir`` (None: from the start): keep the records the
    checkpoint covers, the train records up to its step and the evaluations its state holds;
    the resumed launch logs the rest again."""
    from paddlepalm.checkpoint import STATE_FILE

    if not os.path.isfile(metrics_path(run_dir)):
        return
    state = read_json(os.path.join(checkpoint_dir, STATE_FILE)) if checkpoint_dir else {}
    step = int(state.get("global_step", 0))
    evaluated = {r["step"] for r in (state.get("evaluation") or {}).get("history", [])}
    kept = [r for r in read_metrics(run_dir)
            if (r.get("event") in ("train", "affinity") and r["step"] <= step)
            or (r.get("event") == "eval" and r["step"] in evaluated)]
    write_json_lines(metrics_path(run_dir), kept)
