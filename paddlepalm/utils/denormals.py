"""Flushing denormal floats to zero on the CPU (``PALM_FLUSH_DENORMALS``, on by default).

Numbers below 1.2e-38 in magnitude (denormals) take the x86 CPU a slow microcode path, many times
slower than a normal multiply. Training produces them (attention probabilities of peaked softmaxes,
Adam moments of rows that stop receiving gradient), and a step slows down as they accumulate
(docs/benchmarks.md, "Denormal floats", measured by bench/denormals.py). TensorFlow
flushes by default; PyTorch offers ``torch.set_flush_denormal(True)``; Paddle exposes nothing, so
paddlepalm sets the FTZ and DAZ bits of the SSE control register itself, through a five-line C
function compiled once with the system's C compiler (cached beside the custom operators).

The register is per thread, and a thread inherits it from the thread that creates it: paddlepalm
sets it when imported, in the importing thread, before Paddle starts its thread pools.
``PALM_FLUSH_DENORMALS=0`` leaves the register alone. Anything that stops it (not x86, no
compiler) logs one warning and the run goes on without; :func:`status` says which happened and is
recorded with a run's environment.
"""
import ctypes
import hashlib
import logging
import os
import platform
import subprocess
import tempfile
from typing import Dict, Optional

logger = logging.getLogger(__name__)

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc", "denormals.c")
SWITCH = "PALM_FLUSH_DENORMALS"
_state: Dict[str, str] = {}
_library: Optional[ctypes.CDLL] = None


def _cache_dir() -> str:
    return os.path.expanduser(os.environ.get("PADDLEPALM_OPS_DIR") or "~/.cache/paddlepalm/ops")


def _load() -> ctypes.CDLL:
    global _library
    if _library is None:
        with open(SOURCE, "rb") as f:
            digest = hashlib.sha256(f.read() + platform.machine().encode()).hexdigest()[:16]
        path = os.path.join(_cache_dir(), f"denormals-{digest}.so")
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(path))
            os.close(fd)
            try:
                subprocess.run([os.environ.get("CC", "gcc"), "-O2", "-shared", "-fPIC", "-o", tmp, SOURCE],
                               check=True, capture_output=True, text=True, timeout=120)
                os.replace(tmp, path)  # whole or not at all: two processes may build it at once
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
        _library = ctypes.CDLL(path)
    return _library


def set_flush_denormals(on: bool = True) -> bool:
    """Set (or clear) FTZ and DAZ in this thread; returns whether the register could be set."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "i386"):
        _state.update(flush_denormals="unavailable", reason=f"not an x86 CPU ({platform.machine()})")
        return False
    try:
        library = _load()
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", None) or str(err)
        _state.update(flush_denormals="unavailable", reason=f"could not build {SOURCE}: {detail.strip()[:300]}")
        logger.warning("paddlepalm: denormals are not flushed to zero (training may be slower): %s",
                       _state["reason"])
        return False
    library.palm_set_flush_denormals(int(bool(on)))
    _state.update(flush_denormals="on" if on else "off", reason="")
    return True


def flushing() -> bool:
    """Whether FTZ and DAZ are set in this thread."""
    try:
        return bool(_load().palm_flushing_denormals())
    except (OSError, subprocess.SubprocessError):
        return False


def configure() -> None:
    """What paddlepalm's import does: flush unless ``PALM_FLUSH_DENORMALS=0``."""
    if os.environ.get(SWITCH, "1").strip() in ("0", "false", "no", "off"):
        _state.update(flush_denormals="off", reason=f"{SWITCH}=0")
        return
    set_flush_denormals(True)


def status() -> Dict[str, str]:
    """``{"flush_denormals": "on" | "off" | "unavailable", "reason": ...}`` of this process."""
    return dict(_state)
