"""``palm train`` (``paddlepalm.cli.main``) on several configs in one process, for
tests/test_cli.py: one interpreter start (paddle's import is most of a tiny run's time) instead of
one per config. Argument: a JSON file ``{name: [palm train arguments]}``; each run's output goes to
``<name>.log`` beside it and its exit status into ``results.json``."""
import contextlib
import json
import os
import sys

from paddlepalm.cli import main

plan_path = sys.argv[1]
folder = os.path.dirname(os.path.abspath(plan_path))
with open(plan_path, encoding="utf-8") as f:
    plan = json.load(f)
results = {}
for name, argv in plan.items():
    with open(os.path.join(folder, f"{name}.log"), "w", encoding="utf-8") as log, \
            contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        results[name] = main(argv)
with open(os.path.join(folder, "results.json"), "w", encoding="utf-8") as f:
    json.dump(results, f)
