"""Run the 2-process test jobs (tests/dist/tiny_job.py under ``paddle.distributed.launch``) many
times, optionally with the CPUs oversubscribed, and count clean runs.

A run is clean when the launcher exits 0, both ranks wrote their parameters and no worker log
shows an abort sign (``terminate called``, ``SIGABRT``, ``Aborted``, ``Error Message Summary``...).
For each failed run the end of every worker log is printed, and its log dir is copied under
``--keep``; with ``--cores`` the workers may dump core and gdb's backtraces are printed.

    python tools/dist_stress.py --runs 50 --oversubscribe 2 --exit_jitter 0.5 --job all

``--oversubscribe K`` starts K busy-loop processes per core for the whole stress; each one
stops by itself after ``--busy_limit`` seconds (and is killed when the tool exits), so an
interrupted stress never leaves them behind. ``--exit_jitter S`` makes each rank sleep up to S
seconds at exit, after paddlepalm's exit handler, so the ranks' teardowns start apart.
"""
import argparse
import glob
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOB = os.path.join(REPO, "tests", "dist", "tiny_job.py")
ABORT_SIGNS = ("terminate called", "SIGABRT", "Aborted", "core dumped", "Error Message Summary",
               "FatalError", "Segmentation fault")
JOBS = {  # the 2-process invocations of tests/test_distributed.py
    "resume": ["--batch_size", "4", "--save_steps", "6"],
    "multi_task": ["--batch_size", "4"],
    "single_task": ["--batch_size", "4", "--single_task"],
    "evaluate": ["--batch_size", "4", "--evaluate"],
}

BUSY_LOOP = "import time,sys\nend=time.time()+float(sys.argv[1])\nwhile time.time()<end:\n    pass\n"
# Runs the job; at exit (after paddlepalm's own exit handler, registered later) each rank sleeps a random
# time up to PALM_STRESS_EXIT_JITTER seconds, so the ranks tear down at different moments.
JITTER_WRAPPER = """import atexit, os, random, runpy, sys, time
jitter = float(os.environ.get("PALM_STRESS_EXIT_JITTER", "0"))
atexit.register(lambda: time.sleep(random.uniform(0, jitter)))
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def make_data(root: str) -> str:
    """The sample of tests/conftest.py::joint_data, with its sizes.json."""
    sys.path.insert(0, os.path.join(REPO, "examples", "multi-task"))
    import prepare_data
    from make_sample import make_sample

    raw = make_sample(os.path.join(root, "raw"), seed=3, sizes=(192, 32, 48))
    data = os.path.join(root, "data")
    sizes = prepare_data.convert(raw, data)
    with open(os.path.join(data, "sizes.json"), "w") as f:
        json.dump({"dir": data, **sizes}, f)
    return data


def start_busy_loops(per_core: int, seconds: float) -> List[subprocess.Popen]:
    count = per_core * (os.cpu_count() or 1)
    return [subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(seconds)]) for _ in range(count)]


def stop(procs: List[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        p.wait()


def worker_logs(log_dir: str) -> Dict[str, str]:
    if not os.path.isdir(log_dir):
        return {}
    return {name: open(os.path.join(log_dir, name), errors="replace").read()
            for name in sorted(os.listdir(log_dir)) if name.startswith("workerlog")}


def allow_cores() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def core_backtraces(out: str) -> str:
    """gdb's backtrace of every thread of each core file a worker left in ``out``."""
    text = ""
    for core in sorted(glob.glob(os.path.join(out, "core*"))):
        gdb = subprocess.run(["gdb", "-batch", "-ex", "thread apply all bt 30", sys.executable, core],
                             capture_output=True, text=True, timeout=300)
        text += f"--- backtraces of {core}:\n{gdb.stdout}\n"
    return text


def run_once(data: str, out: str, job_args: List[str], timeout: float, env: Dict[str, str],
             wrapper: str = "", cores: bool = False) -> Tuple[bool, str]:
    """One launch (through ``wrapper`` if given; with core dumps in ``out`` if ``cores``); (clean, reason)."""
    log_dir = os.path.join(out, "logs")
    os.makedirs(out, exist_ok=True)
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir", log_dir] + \
        ([wrapper] if wrapper else []) + [JOB, "--data", data, "--out", out] + job_args
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, cwd=out, preexec_fn=allow_cores if cores else None)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return False, f"timeout after {timeout:.0f} s"
    logs = worker_logs(log_dir)
    signs = sorted({s for text in logs.values() for s in ABORT_SIGNS if s in text})
    if proc.returncode != 0:
        return False, f"launcher exit {proc.returncode}" + (f", log signs {signs}" if signs else "") + \
            "\n" + output[-1500:]
    if signs:
        return False, f"launcher exit 0 but log signs {signs}"
    missing = [r for r in (0, 1) if not os.path.exists(os.path.join(out, f"params.rank{r}.npz"))]
    if missing:
        return False, f"no params from rank(s) {missing}"
    return True, ""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--job", choices=sorted(JOBS) + ["all"], default="resume",
                   help="which 2-process test job; 'all' cycles through them")
    p.add_argument("--oversubscribe", type=int, default=0, metavar="K", help="busy-loop processes per core")
    p.add_argument("--busy_limit", type=float, default=1800, help="seconds after which busy loops end by themselves")
    p.add_argument("--timeout", type=float, default=180, help="seconds per run")
    p.add_argument("--exit_jitter", type=float, default=0,
                   help="each rank sleeps up to this many seconds at exit, after paddlepalm's exit handler")
    p.add_argument("--cores", action="store_true",
                   help="let workers dump core (in the run dir, the system's core_pattern permitting); "
                        "a failed run shows gdb's backtraces of each core")
    p.add_argument("--keep", default=None, help="copy the log dirs of failed runs here")
    p.add_argument("--tail", type=int, default=2000, help="characters of each worker log shown for a failure")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="extra environment for the job")
    args = p.parse_args()

    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), MKL_NUM_THREADS="1")
    for key in [k for k in env if k.startswith("PADDLE_")]:
        env.pop(key)
    env.update(kv.split("=", 1) for kv in args.env)
    root = tempfile.mkdtemp(prefix="dist_stress_")
    busy: List[subprocess.Popen] = []
    clean, failures = 0, []
    names = sorted(JOBS) if args.job == "all" else [args.job]
    try:
        data = make_data(root)
        wrapper = ""
        if args.exit_jitter:
            wrapper = os.path.join(root, "jitter_wrapper.py")
            with open(wrapper, "w") as f:
                f.write(JITTER_WRAPPER)
            env["PALM_STRESS_EXIT_JITTER"] = str(args.exit_jitter)
        if args.oversubscribe:
            busy = start_busy_loops(args.oversubscribe, args.busy_limit)
        for i in range(args.runs):
            name = names[i % len(names)]
            out = os.path.join(root, f"run{i}")
            start = time.time()
            ok, reason = run_once(data, out, JOBS[name], args.timeout, env, wrapper, args.cores)
            took = time.time() - start
            if ok:
                clean += 1
                print(f"run {i + 1}/{args.runs} [{name}] clean ({took:.1f} s)", flush=True)
            else:
                failures.append((i, name, reason))
                print(f"run {i + 1}/{args.runs} [{name}] FAILED ({took:.1f} s): {reason}", flush=True)
                for log, text in worker_logs(os.path.join(out, "logs")).items():
                    print(f"--- {log} (last {args.tail} chars):\n{text[-args.tail:]}", flush=True)
                if args.cores:
                    print(core_backtraces(out), flush=True)
                if args.keep:
                    dest = os.path.join(args.keep, f"run{i}_{name}")
                    shutil.copytree(os.path.join(out, "logs"), dest, dirs_exist_ok=True)
            shutil.rmtree(out, ignore_errors=True)
    finally:
        stop(busy)
        shutil.rmtree(root, ignore_errors=True)
    load = f"{args.oversubscribe} busy loop(s) per core" if args.oversubscribe else "no extra load"
    print(f"clean {clean} of {args.runs} runs ({load}); failed runs: {[(i + 1, n) for i, n, _ in failures]}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
