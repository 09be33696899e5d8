"""Paddle custom C++ operators of paddlepalm (``csrc/*.cc``): compiled on first use, cached on
disk, with a pure-Paddle fallback that is taken, and recorded, whenever an op is switched off or
cannot be built.

Each op is a :class:`CustomOp`. It is compiled with ``paddle.utils.cpp_extension.load`` into
``$PADDLEPALM_OPS_DIR`` (default ``~/.cache/paddlepalm/ops``), in a directory named by a hash of
the source, the Paddle and Python versions, the compiler flags and the CPU's flags; a later process
finds the library there and only loads it. Its environment switch (``PADDLEPALM_FUSED_LSTM=0``,
``PADDLEPALM_FUSED_CRF=0``) forces the fallback; so does any failure to build or load (no compiler,
no MKL in the wheel, ...), which logs one warning and is kept in :meth:`CustomOp.status` (what a
run's ``env.json`` records). Ops take float32 CPU tensors only.
"""
import hashlib
import logging
import os
import shutil
import sys
import time
from typing import Any, Dict, List, Optional

import paddle

logger = logging.getLogger(__name__)

CSRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc")
# -ffast-math lets gcc vectorize exp/tanh through glibc's libmvec; -march=native, so the
# cache key includes the CPU flags
CFLAGS = ["-O3", "-march=native", "-ffast-math", "-fopenmp-simd"]


def ops_dir() -> str:
    return os.path.expanduser(os.environ.get("PADDLEPALM_OPS_DIR") or "~/.cache/paddlepalm/ops")


def cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith("flags")), "")
    except OSError:  # pragma: no cover - non-Linux
        return ""


def mkl_link_flags() -> List[str]:
    """Link against the MKL of Paddle's CPU wheel (it has cblas_sgemm)."""
    libs = os.path.join(os.path.dirname(paddle.__file__), "libs")
    if not os.path.isfile(os.path.join(libs, "libmklml_intel.so")):
        raise FileNotFoundError(f"no libmklml_intel.so in {libs}")
    return [f"-L{libs}", "-l:libmklml_intel.so", f"-Wl,-rpath,{libs}"]


class CustomOp:
    """One operator: ``name`` (the ``PD_BUILD_OP`` name), its source file in ``csrc/``, the
    environment variable that switches it off, and whether it links Paddle's MKL. :meth:`load`
    gives the compiled module or None (and why, in :meth:`status`)."""

    def __init__(self, name: str, source: str, switch: str, cflags: Optional[List[str]] = None,
                 needs_mkl: bool = False, fallback: str = "the pure-Paddle path"):
        self.name, self.source, self.switch = name, os.path.join(CSRC, source), switch
        self.cflags = list(CFLAGS if cflags is None else cflags)
        self.needs_mkl, self.fallback = needs_mkl, fallback
        self._module = None
        self._tried = False
        self._error: Optional[str] = None
        self._compile_seconds: Optional[float] = None

    def enabled(self) -> bool:
        """False when the switch is ``0``/``false``/``off``/``no``."""
        return os.environ.get(self.switch, "1").strip().lower() not in ("0", "false", "off", "no")

    def build_dir(self) -> str:
        """The cache directory of this source + Paddle + Python + flags + CPU."""
        with open(self.source, "rb") as f:
            key = hashlib.sha256(f.read())
        key.update(" ".join([paddle.__version__, sys.version, *self.cflags, cpu_flags()]).encode())
        return os.path.join(ops_dir(), f"{self.name}_{key.hexdigest()[:16]}")

    def load(self):
        """The op module (compiled on first use, cached on disk and in this object), or None:
        switched off, or the build/load failed (logged once)."""
        if not self.enabled():
            return None
        if self._tried:
            return self._module
        self._tried = True
        directory = self.build_dir()
        try:
            module = self._load_built(directory)
            if module is None:
                start = time.perf_counter()
                module = self._compile_into(directory)
                self._compile_seconds = time.perf_counter() - start
                logger.info("compiled the %s op in %.1fs into %s", self.name, self._compile_seconds, directory)
            self._module = module
        except Exception as err:  # any build or load failure: the fallback still works
            self._error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            logger.warning("%s op unavailable, using %s (%s)", self.name, self.fallback, self._error)
            self._module = None
        return self._module

    def status(self) -> Dict[str, Any]:
        """What this process uses: ``{"op", "enabled", "loaded", "error", "compile_seconds"}``."""
        return {"op": self.name, "enabled": self.enabled(), "loaded": self._module is not None,
                "error": self._error, "compile_seconds": self._compile_seconds}

    def reset(self) -> None:
        """Forget this process's load attempt (the next :meth:`load` looks again)."""
        self._module, self._tried, self._error, self._compile_seconds = None, False, None, None

    def _compile(self, directory: str):
        from paddle.utils import cpp_extension

        return cpp_extension.load(name=self.name, sources=[self.source], extra_cxx_cflags=list(self.cflags),
                                  extra_ldflags=mkl_link_flags() if self.needs_mkl else [],
                                  build_directory=directory, verbose=False)

    def _compile_into(self, directory: str):
        """Compile in a directory of this process, then rename it into place, so that a process
        never loads another's half-written library (the first rename wins; the loaded library
        stays mapped when its files go)."""
        scratch = f"{directory}.tmp{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        os.makedirs(scratch)
        try:
            module = _IMPORTED.setdefault(self.name, self._compile(scratch))
            try:
                os.rename(scratch, directory)
            except OSError:  # another process renamed its build first
                pass
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return module

    def _load_built(self, directory: str):
        """Load a library built earlier in ``directory`` (no compiler run), or None. Paddle
        registers an op once per process: a library imported before is reused, not imported again
        (a second import gives a module without the op)."""
        from paddle.utils.cpp_extension import extension_utils

        if not os.path.isfile(os.path.join(directory, self.name, self.name + ".so")):
            return None
        if self.name not in _IMPORTED:
            _IMPORTED[self.name] = extension_utils._import_module_from_library(self.name,
                                                                               os.path.join(directory, self.name))
        return _IMPORTED[self.name]


_IMPORTED: Dict[str, Any] = {}  # op name -> its imported module (Paddle registers an op once per process)
