"""Denormal floats are flushed to zero once paddlepalm is imported (paddlepalm/utils/denormals.py):
in the importing thread and the threads it starts; PALM_FLUSH_DENORMALS=0 keeps them; without a
compiler the import still works and says why nothing was flushed."""
import os
import subprocess
import sys
import threading

import numpy as np

import paddlepalm  # noqa: F401  (the import sets the register)
from paddlepalm.utils import denormals

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = ("import paddlepalm, numpy as np, json; from paddlepalm.utils import denormals; "
         "print(json.dumps([denormals.status(), float(np.array([1e-39], dtype=np.float32)[0] * np.float32(1))]))")


def probe(**env):
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=REPO, **env))
    assert done.returncode == 0, done.stderr[-2000:]
    import json
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_the_import_flushes_denormals_here_and_in_new_threads():
    assert denormals.status()["flush_denormals"] == "on" and denormals.flushing()
    assert np.array([1e-39], dtype=np.float32)[0] * np.float32(1) == 0.0
    seen = []
    thread = threading.Thread(target=lambda: seen.append(denormals.flushing()))
    thread.start()
    thread.join()
    assert seen == [True]


def test_the_switch_keeps_denormals():
    (status, product), _ = probe(PALM_FLUSH_DENORMALS="0")
    assert status == {"flush_denormals": "off", "reason": "PALM_FLUSH_DENORMALS=0"}
    assert product > 0


def test_without_a_compiler_the_import_goes_on_and_says_why(tmp_path):
    (status, product), stderr = probe(CC=str(tmp_path / "no-such-compiler"), PADDLEPALM_OPS_DIR=str(tmp_path))
    assert status["flush_denormals"] == "unavailable" and "could not build" in status["reason"]
    assert product > 0 and "denormals are not flushed" in stderr
