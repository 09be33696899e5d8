"""Process-wide settings made when paddlepalm is imported, before ``paddle`` is: each is a
variable the user did not set, and :func:`applied` lists what was set (a run's ``env.json``
records it). Why each helps, measured, is in docs/benchmarks.md ("CPU speed").

* ``MKL_NUM_THREADS``: the usable cores (Paddle runs its CPU math on one thread without it;
  ``OMP_NUM_THREADS`` > 1 makes paddle print a warning, so it is left alone);
* ``MKL_DEBUG_CPU_TYPE=5`` on AMD CPUs only (Paddle's bundled MKL takes a slow code path there;
  on Intel the same setting is slower: ``python bench/mkl_cpu_type.py``);
* ``FLAGS_use_stride_kernel=0``: ``transpose`` copies with its own kernel instead of a view that
  the next ``reshape`` copies slowly (``python bench/cpu_speedups.py``);
* ``OPENBLAS_NUM_THREADS=1`` (through the library when numpy was imported first): numpy's
  OpenBLAS threads spin on the cores MKL computes on;
* denormal floats flushed to zero (FTZ and DAZ) in the importing thread, which Paddle's threads
  inherit: a denormal takes the CPU a slow path, and training makes them (paddlepalm/utils/denormals.py;
  ``PALM_FLUSH_DENORMALS=0`` to keep them);
* ``GLOG_minloglevel=2``, ``FLAGS_print_extra_info=0``, and known third-party warnings that tell
  the user nothing, silenced narrowly by message.
"""
import ctypes
import logging
import os
import sys
import warnings
from typing import Dict

_QUIET_WARNINGS = (
    r".*No ccache found.*",
    r".*Setuptools is replacing distutils.*",
    r".*pkg_resources is deprecated.*",
    r".*distutils Version classes are deprecated.*",
    r".*`pydantic.config.Extra` is deprecated.*",
    # Paddle's own dy2static tracing reads Tensor.place while exporting (paddle/pir/math_op_patch.py)
    r".*do not have 'place' interface for pir graph mode.*",
    # numpy's finfo, first computed after denormals are flushed (utils/denormals.py), says so
    r".*The value of the smallest subnormal for .* type is zero.*",
)


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def set_openblas_threads(count: int) -> bool:
    """Set the thread count of the OpenBLAS libraries loaded in this process (numpy's).

    Returns whether one was found. (``OPENBLAS_NUM_THREADS`` only acts before numpy loads.)"""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in os.path.basename(line.split()[-1])}
    except OSError:  # pragma: no cover - non-Linux
        return False
    found = False
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("openblas_set_num_threads64_", "openblas_set_num_threads"):
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(int(count))
                found = True
                break
    return found


def cpu_vendor() -> str:
    """``vendor_id`` of /proc/cpuinfo (``GenuineIntel``, ``AuthenticAMD``); empty elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


_APPLIED: Dict[str, str] = {}  # what configure() set in this process (the variables the user had not)


def applied() -> Dict[str, str]:
    """The environment variables paddlepalm set in this process, with their values."""
    return dict(_APPLIED)


def _default(name: str, value: str) -> None:
    if name not in os.environ:
        os.environ[name] = value
        _APPLIED[name] = value


def denormals_status() -> Dict[str, str]:
    """Whether denormals are flushed to zero in this process, and if not, why."""
    from paddlepalm.utils import denormals

    return denormals.status()


def configure() -> None:
    for pattern in _QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    # `datasets` (imported by paddlenlp) logs "PyTorch version ... available" at INFO
    # when torch is installed; paddlenlp's handler would print it.
    logging.getLogger("datasets").setLevel(logging.WARNING)
    if "OMP_NUM_THREADS" not in os.environ:
        _default("MKL_NUM_THREADS", str(_usable_cores()))
    if cpu_vendor() == "AuthenticAMD":
        _default("MKL_DEBUG_CPU_TYPE", "5")
    numpy_first = "numpy" in sys.modules and "OPENBLAS_NUM_THREADS" not in os.environ
    _default("OPENBLAS_NUM_THREADS", "1")
    if numpy_first:  # numpy loaded before us: the variable came too late for its OpenBLAS
        set_openblas_threads(1)
    for name, value in (("FLAGS_use_stride_kernel", "0"), ("GLOG_minloglevel", "2"), ("FLAGS_print_extra_info", "0")):
        _default(name, value)
    from paddlepalm.utils import denormals  # no paddle import: this runs before paddle's threads exist

    denormals.configure()


configure()
