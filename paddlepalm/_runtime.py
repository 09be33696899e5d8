"""Process-wide settings that must be in place before ``paddle`` is imported.

* Paddle runs its CPU math on one thread unless ``MKL_NUM_THREADS`` or
  ``OMP_NUM_THREADS`` is set; we default ``MKL_NUM_THREADS`` to the number of
  usable cores (``OMP_NUM_THREADS`` > 1 makes paddle print a warning).
* Paddle's bundled MKL takes a slow code path on AMD CPUs unless
  ``MKL_DEBUG_CPU_TYPE=5`` (measured 2.2x faster matmul; see docs/benchmarks.md). It is set
  on AMD CPUs only: on an Intel Xeon (avx512, amx) the same setting makes a
  ``[1024, 512] @ [512, 20000]`` matmul 1.6-1.8x slower (one thread, ``python bench/mkl_cpu_type.py``).
* With Paddle 3.3's stride kernels, ``transpose`` returns a view and the next
  ``reshape`` copies it with a slow generic strided-copy kernel (multi-head
  attention does this on every layer); ``FLAGS_use_stride_kernel=0`` makes
  ``transpose`` copy with its own kernel: a small-BERT training step 1.33x faster
  (bench/cpu_speedups.py).
* numpy's OpenBLAS (used for the small GEMVs of paddlepalm's CPU layers) starts a
  thread per core whose spin-waiting takes the core MKL computes on: a training step
  1.09x slower (bench/cpu_speedups.py). ``OPENBLAS_NUM_THREADS`` defaults to 1 (set through the library when
  numpy was imported first).
* Known third-party warnings that tell the user nothing (import-time notices, Paddle's
  export tracing) are silenced narrowly, by message.

A variable the user already set is never overridden.
"""
import ctypes
import logging
import os
import sys
import warnings

_QUIET_WARNINGS = (
    r".*No ccache found.*",
    r".*Setuptools is replacing distutils.*",
    r".*pkg_resources is deprecated.*",
    r".*distutils Version classes are deprecated.*",
    r".*`pydantic.config.Extra` is deprecated.*",
    # Paddle's own dy2static tracing reads Tensor.place while exporting (paddle/pir/math_op_patch.py)
    r".*do not have 'place' interface for pir graph mode.*",
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


def _cpu_vendor() -> str:
    """``vendor_id`` of /proc/cpuinfo (``GenuineIntel``, ``AuthenticAMD``); empty elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _one_openblas_thread() -> None:
    if "OPENBLAS_NUM_THREADS" in os.environ:
        return
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    if "numpy" in sys.modules:  # loaded before us: the variable came too late
        set_openblas_threads(1)


def configure() -> None:
    for pattern in _QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    # `datasets` (imported by paddlenlp) logs "PyTorch version ... available" at INFO
    # when torch is installed; paddlenlp's handler would print it.
    logging.getLogger("datasets").setLevel(logging.WARNING)
    if "OMP_NUM_THREADS" not in os.environ:
        os.environ.setdefault("MKL_NUM_THREADS", str(_usable_cores()))
    if _cpu_vendor() == "AuthenticAMD":
        os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")
    _one_openblas_thread()
    os.environ.setdefault("FLAGS_use_stride_kernel", "0")
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("FLAGS_print_extra_info", "0")


configure()
