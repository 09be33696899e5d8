"""``palm train ...`` (``paddlepalm.cli.main``) that SIGKILLs itself right after its N-th training
update of this launch (``--die_after_step N`` before the palm arguments): an interrupted run for
tests/test_cli.py's resume test. Counting updates in the process keeps the moment independent of
the machine's load."""
import os
import signal
import sys

from paddlepalm import update as engine  # the update the session calls
from paddlepalm.cli import main

args = sys.argv[1:]
if args[:1] == ["--die_after_step"]:
    limit, args = int(args[1]), args[2:]
    real_update, done = engine.train_update, {"n": 0}

    def update_then_die(*a, **k):
        out = real_update(*a, **k)
        done["n"] += 1
        if done["n"] == limit:
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    engine.train_update = update_then_die
sys.exit(main(args))
