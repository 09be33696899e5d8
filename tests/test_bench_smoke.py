"""bench/smoke.py (issue 24), without running any benchmark (CI runs ``python bench/smoke.py`` after the
tests): every bench script has a ``--smoke`` mode or is excluded with a reason, and the runner reports a
failure, a timeout (its workers killed too) and the rows a script skipped."""
import ast
import glob
import importlib.util
import os
import textwrap
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("bench_smoke", os.path.join(REPO, "bench", "smoke.py"))
smoke = importlib.util.module_from_spec(spec)
spec.loader.exec_module(smoke)


def options(path):
    """The option strings a script passes to ``add_argument``."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    return {arg.value for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, "attr", None) == "add_argument"
            for arg in node.args if isinstance(arg, ast.Constant)}


def test_every_bench_script_has_a_smoke_mode_or_is_excluded_with_a_reason():
    names = {os.path.basename(p) for p in glob.glob(os.path.join(REPO, "bench", "*.py"))}
    assert set(smoke.EXCLUDED) <= names and all(smoke.EXCLUDED.values())
    run = {os.path.basename(p) for p in smoke.scripts()}
    assert run == names - set(smoke.EXCLUDED)
    without = sorted(n for n in run if "--smoke" not in options(os.path.join(REPO, "bench", n)))
    assert not without, f"bench scripts without a --smoke mode: {without}"


def script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return str(path)


def test_runner_reports_status_skipped_rows_and_kills_a_script_past_its_timeout(tmp_path):
    passed = smoke.run(script(tmp_path, "good.py", """
        import sys
        assert sys.argv[1:] == ["--smoke"]
        print("torch-full: skipped (PyTorch not installed)")
        print("torch-full: skipped (PyTorch not installed)")
    """), timeout=30)
    assert passed["status"] == "ok" and passed["skipped"] == ["torch-full"]
    failed = smoke.run(script(tmp_path, "bad.py", "raise SystemExit(3)\n"), timeout=30)
    assert failed["status"] == "FAILED (exit 3)"
    marker = tmp_path / "worker_alive"
    start = time.perf_counter()
    slow = smoke.run(script(tmp_path, "slow.py", f"""
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(2); open({str(marker)!r}, 'w')"])
        time.sleep(30)
    """), timeout=1)
    assert slow["status"].startswith("TIMEOUT") and time.perf_counter() - start < 10
    time.sleep(2.5)
    assert not marker.exists(), "the script's worker outlived the timeout"


def test_runner_runs_a_named_benchmark(capsys):
    assert smoke.main(["--jobs", "1", "report"]) == 0
    out = capsys.readouterr().out
    assert "report.py" in out and " ok" in out and "1 of 1 smoke runs passed" in out
