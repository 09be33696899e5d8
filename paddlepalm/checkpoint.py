"""Checkpoints: written whole or not at all, verified when read.

Layout of ``ckpt.step{N}/`` (also ``best/`` and ``predict.step{N}/``)::

    model.pdparams     state dict of the model: ``backbone.*`` and ``heads.<task>.*``
    optimizer.pdopt    the complete optimizer state (every parameter's moments, stepped
                       or not) and the learning-rate scheduler, keyed by structured names
    ema.pdparams       EMA shadow weights, when ``use_ema``
    trainer.json       global step, per-task counters and reader positions, sampler seed, sampling
                       schedule (and a dynamic one's decisions and observations)
    rng.json           every random generator's state (``utils/rng.py``)
    manifest.json      size and sha256 of every file above
    DONE               written last

Writing: everything goes into a private temporary sibling (``.<name>.tmp-*``), is
flushed to disk, and the directory is then renamed into place. A directory that
already exists (``best/``, a re-written step) is swapped with the new one in one
``renameat2(RENAME_EXCHANGE)`` call, so its name never points at nothing; where that
call is missing the old one is renamed aside (``.<name>.old-*``) first, and
:func:`recover` puts a complete aside copy back if a kill fell between the renames.

Reading: the manifest is checked file by file (a damaged or truncated file is named
in the error) and every pickle is read with the restricted unpickler, which never
runs code from the file.
"""
import ctypes
import errno
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import paddle
from paddle import nn

from paddlepalm.utils import fileio
from paddlepalm.utils.safe_pickle import load_state_dict

MODEL_FILE = "model.pdparams"
OPTIMIZER_FILE = "optimizer.pdopt"
STATE_FILE = "trainer.json"
RNG_FILE = "rng.json"
MANIFEST_FILE = "manifest.json"
DONE_FILE = "DONE"
_STEP_DIR = re.compile(r"^ckpt\.step(\d+)$")


class CheckpointError(ValueError):
    """A checkpoint is incomplete, damaged or inconsistent; the message names the file."""


# ----------------------------------------------------------------------- writing
def save_checkpoint(directory: str, model: nn.Layer, optimizer: Optional[paddle.optimizer.Optimizer] = None,
                    state: Optional[Dict[str, Any]] = None, extra: Optional[Dict[str, Any]] = None,
                    weights: Optional[Dict[str, Any]] = None, rng_state: Optional[Dict[str, Any]] = None) -> str:
    """Write ``directory`` atomically. ``weights`` replaces ``model.state_dict()`` (EMA
    weights); ``extra`` maps more file names to objects to save (EMA state);
    ``rng_state`` is :func:`paddlepalm.utils.rng.capture`'s result."""
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(directory)}.tmp-", dir=parent)
    try:
        paddle.save(model.state_dict() if weights is None else weights, os.path.join(tmp, MODEL_FILE))
        for name, obj in (extra or {}).items():
            paddle.save(obj, os.path.join(tmp, name))
        if optimizer is not None:
            paddle.save(portable_optimizer_state(model, optimizer), os.path.join(tmp, OPTIMIZER_FILE))
        fileio.write_json(os.path.join(tmp, STATE_FILE), state or {})
        if rng_state is not None:
            fileio.write_json(os.path.join(tmp, RNG_FILE), rng_state, indent=None)
        fileio.write_json(os.path.join(tmp, MANIFEST_FILE), manifest_of(tmp))
        fileio.write_text(os.path.join(tmp, DONE_FILE), "")
        _fsync_files(tmp)
        replace_directory(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def manifest_of(directory: str) -> Dict[str, Dict[str, Any]]:
    return {name: {"size": os.path.getsize(os.path.join(directory, name)),
                   "sha256": fileio.sha256_of(os.path.join(directory, name))}
            for name in sorted(os.listdir(directory)) if name not in (MANIFEST_FILE, DONE_FILE)}


def _fsync_files(directory: str) -> None:
    for name in os.listdir(directory):
        with open(os.path.join(directory, name), "rb") as f:
            os.fsync(f.fileno())


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: str, b: str) -> bool:
    """Swap two paths in one step (Linux ``renameat2``); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, f"renameat2({a}, {b}, RENAME_EXCHANGE): {os.strerror(code)}")


def replace_directory(new: str, target: str) -> None:
    """Put directory ``new`` at ``target``; an existing ``target`` is never missing meanwhile
    (exchange), or, without ``renameat2``, missing only between two renames (recoverable)."""
    if not os.path.lexists(target):
        os.rename(new, target)
    elif _exchange(new, target):
        shutil.rmtree(new)  # now holds the old contents
    else:
        parent, base = os.path.split(os.path.abspath(target))
        aside = tempfile.mkdtemp(prefix=f".{base}.old-", dir=parent)
        os.rmdir(aside)
        os.rename(target, aside)
        os.rename(new, target)
        shutil.rmtree(aside)
    fileio._fsync_dir(os.path.dirname(os.path.abspath(target)))


def older_steps(parent: str, kind: str, step: int, keep: int) -> List[str]:
    """The ``{kind}.step{N}`` folders of ``parent`` with N < ``step``, but the newest ``keep``:
    what rotation deletes after saving ``step``."""
    pattern = re.compile(rf"^{re.escape(kind)}\.step(\d+)$")
    steps = sorted((int(m.group(1)), name) for name in os.listdir(parent) if (m := pattern.match(name))
                   and int(m.group(1)) < step and os.path.isdir(os.path.join(parent, name)))
    return [os.path.join(parent, name) for _, name in steps[:max(len(steps) - keep, 0)]]


def remove_directory(directory: str) -> None:
    """Delete ``directory``: renamed to a temporary name first, so that a kill during the
    deletion leaves no half-deleted checkpoint under its name (:func:`recover` removes the rest)."""
    parent, base = os.path.split(os.path.abspath(directory))
    doomed = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
    os.rmdir(doomed)
    os.rename(directory, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def recover(parent: str) -> List[str]:
    """Clean what kills leave in ``parent``: temporary ``.<name>.tmp-*`` directories are
    removed, and an ``.<name>.old-*`` aside copy is renamed back where ``<name>`` is
    missing (a kill between the two renames of :func:`replace_directory`). Returns the
    names restored."""
    if not os.path.isdir(parent):
        return []
    restored = []
    leftovers = sorted(n for n in os.listdir(parent) if n.startswith(".") and (".tmp-" in n or ".old-" in n))
    for name in leftovers:
        path = os.path.join(parent, name)
        base = name[1:name.rfind(".tmp-" if ".tmp-" in name else ".old-")]
        target = os.path.join(parent, base)
        if ".old-" in name and not os.path.lexists(target) and _verifies(path):
            os.rename(path, target)
            restored.append(base)
        elif os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
    return restored


# ----------------------------------------------------------------------- reading
def is_checkpoint(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, DONE_FILE)) and os.path.isfile(os.path.join(directory, MODEL_FILE))


def verify(directory: str) -> None:
    """Raise :class:`CheckpointError` naming the first missing, truncated or damaged file.
    A directory missing after an interrupted swap is first restored (:func:`recover`)."""
    if not os.path.lexists(directory):
        recover(os.path.dirname(os.path.abspath(directory)))
    if not is_checkpoint(directory):
        raise CheckpointError(f"{directory} is not a complete paddlepalm checkpoint "
                              f"(expected {MODEL_FILE} and {DONE_FILE} in it)")
    manifest_path = os.path.join(directory, MANIFEST_FILE)
    if not os.path.isfile(manifest_path):
        raise CheckpointError(f"{manifest_path} missing: the checkpoint cannot be verified "
                              "(damaged, or written by paddlepalm before 0.2)")
    manifest = fileio.read_json(manifest_path)
    for name in (MODEL_FILE, STATE_FILE):
        if name not in manifest:
            raise CheckpointError(f"{manifest_path} does not list {name}")
    for name, entry in manifest.items():
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            raise CheckpointError(f"{path} missing (listed in {MANIFEST_FILE})")
        size = os.path.getsize(path)
        if size != entry["size"]:
            raise CheckpointError(f"{path} is damaged: {size} bytes, the manifest says {entry['size']} (truncated?)")
        if fileio.sha256_of(path) != entry["sha256"]:
            raise CheckpointError(f"{path} is damaged: its sha256 differs from the manifest's")


def _verifies(directory: str) -> bool:
    try:
        verify(directory)
        return True
    except (CheckpointError, OSError, ValueError):
        return False


def latest_checkpoint(save_path: str) -> Optional[str]:
    """The newest ``ckpt.step{N}`` under ``save_path`` that verifies, or None."""
    recover(save_path)
    if not os.path.isdir(save_path):
        return None
    steps = sorted(((int(m.group(1)), n) for n in os.listdir(save_path) if (m := _STEP_DIR.match(n))), reverse=True)
    for _, name in steps:
        path = os.path.join(save_path, name)
        if _verifies(path):
            return path
    return None


@dataclass
class Checkpoint:
    """A verified checkpoint read into memory (the optimizer state is read on demand)."""

    path: str
    model_state: Dict[str, Any]
    trainer_state: Dict[str, Any]
    rng_state: Optional[Dict[str, Any]]

    @property
    def global_step(self) -> int:
        return int(self.trainer_state["global_step"])


def read_checkpoint(directory: str) -> Checkpoint:
    """Verify ``directory`` and read its model, trainer and random state."""
    verify(directory)
    state = load_trainer_state(directory)
    rng_path = os.path.join(directory, RNG_FILE)
    rng_state = fileio.read_json(rng_path) if os.path.isfile(rng_path) else None
    return Checkpoint(directory, read_pickle(os.path.join(directory, MODEL_FILE)), state, rng_state)


def read_pickle(path: str) -> Dict[str, Any]:
    try:
        return load_state_dict(path)
    except (EOFError, ValueError, IndexError, KeyError, TypeError, AttributeError) as err:
        raise CheckpointError(f"{path} cannot be read ({type(err).__name__}: {err}); the file is damaged") from None


def load_model_state(directory: str) -> Dict[str, Any]:
    verify(directory)
    return read_pickle(os.path.join(directory, MODEL_FILE))


def load_trainer_state(directory: str) -> Dict[str, Any]:
    """``trainer.json``, checked for the fields a resume needs."""
    path = os.path.join(directory, STATE_FILE)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path} missing: without it the run's position is unknown")
    state = fileio.read_json(path)
    step = state.get("global_step") if isinstance(state, dict) else None
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointError(f"{path}: 'global_step' must be a non-negative integer, got {step!r}")
    for task, progress in state.get("tasks", {}).items():
        for key in ("steps_done", "epoch", "batch_in_epoch"):
            value = progress.get(key) if isinstance(progress, dict) else None
            if not isinstance(value, int) or value < 0:
                raise CheckpointError(f"{path}: tasks.{task}.{key} must be a non-negative integer, got {value!r}")
    return state


def _param_name_map(model: nn.Layer) -> Dict[str, str]:
    """paddle's unique parameter name -> structured name (``backbone.model...``)."""
    return {param.name: name for name, param in model.named_parameters()}


def _accumulator_keys(model: nn.Layer, optimizer: paddle.optimizer.Optimizer) -> Dict[str, str]:
    """Each accumulator's unique name (``linear_3.w_0_moment1_0``: parameter, kind, and a counter
    that depends on how many optimizers the process made) -> a portable key
    (``heads.slot.fc.weight@moment1``)."""
    structured = _param_name_map(model)
    return {var.name: f"{structured.get(param_name, param_name)}@{kind}"
            for kind, per_param in optimizer._accumulators.items() for param_name, var in per_param.items()}


def portable_optimizer_state(model: nn.Layer, optimizer: paddle.optimizer.Optimizer) -> Dict[str, Any]:
    """Optimizer state keyed by structured names instead of process-specific unique names."""
    keys = _accumulator_keys(model, optimizer)
    return {keys.get(key, key): value for key, value in optimizer.state_dict().items()}


def restore_optimizer_state(model: nn.Layer, optimizer: paddle.optimizer.Optimizer, directory: str) -> None:
    """Set the optimizer to the saved state; every accumulator must be in the file."""
    path = os.path.join(directory, OPTIMIZER_FILE)
    if not os.path.exists(path):
        raise CheckpointError(f"{path} missing: the checkpoint holds no optimizer state to resume from")
    saved = read_pickle(path)
    unique_of = {portable: unique for unique, portable in _accumulator_keys(model, optimizer).items()}
    missing = [key for key in unique_of if key not in saved]
    if missing:
        raise CheckpointError(f"{path} lacks the state of {len(missing)} optimizer accumulators, e.g. "
                              f"{missing[:3]}; the model or optimizer differs from the one that wrote it")
    optimizer.set_state_dict({unique_of.get(key, key): value for key, value in saved.items()})
