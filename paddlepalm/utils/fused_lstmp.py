"""The fused LSTMP layer: a Paddle custom C++ operator (``csrc/lstmp_op.cc``) that runs
one layer's whole time loop, both directions, forward and backward, in C++.

Why: stepped in Python, each time step of :class:`paddlepalm.utils.lstmp.BiLSTMP` is
about 30 small kernels (gate slices, activations, cell update, clips and their
gradients) that Paddle 3 on CPU does not fuse; the op does one GEMM for the recurrent
term and one for the projection per step, with the elementwise work in one loop.

The op is compiled on first use with ``paddle.utils.cpp_extension.load`` into
``$PADDLEPALM_OPS_DIR`` (default ``~/.cache/paddlepalm/ops``), in a directory named by a
hash of the source, the Paddle and Python versions and the compiler flags; a later
process finds the library there and only loads it. ``PADDLEPALM_FUSED_LSTM=0`` forces
the pure-Paddle path; so does any failure to build or load (no compiler, no MKL in the
wheel, ...), which logs one line. Only float32 CPU tensors take the op.
"""
import hashlib
import logging
import os
import shutil
import sys
import time
from typing import Optional, Tuple

import paddle

logger = logging.getLogger(__name__)

OP_NAME = "palm_lstmp"
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc", "lstmp_op.cc")
# -ffast-math lets gcc vectorize exp/tanh through glibc's libmvec; -march=native, so the
# cache key includes the CPU flags
CFLAGS = ["-O3", "-march=native", "-ffast-math", "-fopenmp-simd"]

_state = {"module": None, "tried": False, "compile_seconds": None}


def enabled() -> bool:
    """False when ``PADDLEPALM_FUSED_LSTM`` is ``0``/``false``/``off``."""
    return os.environ.get("PADDLEPALM_FUSED_LSTM", "1").strip().lower() not in ("0", "false", "off", "no")


def ops_dir() -> str:
    return os.path.expanduser(os.environ.get("PADDLEPALM_OPS_DIR") or "~/.cache/paddlepalm/ops")


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith("flags")), "")
    except OSError:  # pragma: no cover - non-Linux
        return ""


def build_dir() -> str:
    """The cache directory of this source + Paddle + Python + flags + CPU."""
    with open(SOURCE, "rb") as f:
        key = hashlib.sha256(f.read())
    key.update(" ".join([paddle.__version__, sys.version, *CFLAGS, _cpu_flags()]).encode())
    return os.path.join(ops_dir(), f"{OP_NAME}_{key.hexdigest()[:16]}")


def _library_flags() -> list:
    """Link against the MKL of Paddle's CPU wheel (it has cblas_sgemm)."""
    libs = os.path.join(os.path.dirname(paddle.__file__), "libs")
    if not os.path.isfile(os.path.join(libs, "libmklml_intel.so")):
        raise FileNotFoundError(f"no libmklml_intel.so in {libs}")
    return [f"-L{libs}", "-l:libmklml_intel.so", f"-Wl,-rpath,{libs}"]


def _compile(directory: str):
    from paddle.utils import cpp_extension

    return cpp_extension.load(name=OP_NAME, sources=[SOURCE], extra_cxx_cflags=list(CFLAGS),
                              extra_ldflags=_library_flags(), build_directory=directory, verbose=False)


def _compile_into(directory: str):
    """Compile in a directory of this process, then rename it into place, so that a process
    never loads another's half-written library (the first rename wins; the loaded library
    stays mapped when its files go)."""
    scratch = f"{directory}.tmp{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    try:
        module = _compile(scratch)
        try:
            os.rename(scratch, directory)
        except OSError:  # another process renamed its build first
            pass
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return module


def _load_built(directory: str):
    """Load a library built earlier in ``directory`` (no compiler run), or None."""
    from paddle.utils.cpp_extension import extension_utils

    if not os.path.isfile(os.path.join(directory, OP_NAME, OP_NAME + ".so")):
        return None
    return extension_utils._import_module_from_library(OP_NAME, os.path.join(directory, OP_NAME))


def load_op():
    """The op module (compiled on first use, cached on disk and in this process), or None:
    disabled by ``PADDLEPALM_FUSED_LSTM=0``, or the build/load failed (logged once)."""
    if not enabled():
        return None
    if _state["tried"]:
        return _state["module"]
    _state["tried"] = True
    directory = build_dir()
    try:
        module = _load_built(directory)
        if module is None:
            start = time.perf_counter()
            module = _compile_into(directory)
            _state["compile_seconds"] = time.perf_counter() - start
            logger.info("compiled the fused LSTMP op in %.1fs into %s", _state["compile_seconds"], directory)
        _state["module"] = module
    except Exception as err:  # any build or load failure: the pure-Paddle path still works
        logger.warning("fused LSTMP op unavailable, using the pure-Paddle LSTM (%s: %s)",
                       type(err).__name__, str(err).splitlines()[0] if str(err) else "")
        _state["module"] = None
    return _state["module"]


def fused_layer(gates_x: paddle.Tensor, w_rec: paddle.Tensor, w_proj: paddle.Tensor, h0: paddle.Tensor,
                c0: paddle.Tensor, cell_clip: float, proj_clip: float) -> Optional[paddle.Tensor]:
    """The op's ``hidden [D, B, T, P]`` for ``gates_x [D, B, T, 4H]`` (x W + b), or None
    when the op is unavailable or does not apply (not float32 on CPU)."""
    if gates_x.dtype != paddle.float32 or not gates_x.place.is_cpu_place():
        return None
    module = load_op()
    if module is None:
        return None
    hidden, _act, _cell = getattr(module, OP_NAME)(gates_x, w_rec, w_proj, h0, c0, float(cell_clip), float(proj_clip))
    return hidden


def reset() -> Tuple[object, bool]:
    """Forget this process's load attempt (tests); returns the previous (module, tried)."""
    previous = (_state["module"], _state["tried"])
    _state.update(module=None, tried=False)
    return previous
