"""``palm serve`` under load: concurrent clients against the served joint slot + intent model, then
the same sentences through one-at-a-time ``Predictor.predict([s])`` calls in this process (the
baseline: what a server without batching could do at best on one model thread).

The model is examples/configs/multi-task.yaml (ERNIE 2 layers x 256 on the example's generated
sample) trained briefly by ``palm train`` (speed does not depend on the weights), or the run in
``--run``; ``palm serve RUN`` exports it. Each client is a thread with one keep-alive
``http.client`` connection sending one sentence per request, the sample's test sentences in turn,
for ``--duration`` seconds; an error is a failed connection, a status other than 200 or an answer
without one prediction. The clients run in this process, on the same cores as the server.

    MKL_NUM_THREADS=1 python bench/serve_load.py [--clients 32] [--duration 30] [--write]
    python bench/serve_load.py --smoke      # tiny model, 4 clients, 2 s: that the bench runs

Exit status 1 when a request failed.
"""
import argparse
import contextlib
import http.client
import json
import os
import platform
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from typing import Dict, Iterator, List, Tuple

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "examples", "configs", "multi-task.yaml")
TINY = ["-o", "backbone.config.hidden_size=32", "-o", "backbone.config.num_hidden_layers=1",
        "-o", "backbone.config.num_attention_heads=2", "-o", "backbone.config.intermediate_size=64"]
HEADING = "Serving: palm serve under load"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--duration", type=float, default=30.0, help="seconds of load, and of the baseline")
    p.add_argument("--max-batch", type=int, default=32, help="palm serve --max-batch")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="palm serve --max-wait-ms")
    p.add_argument("--threads", type=int, default=int(os.environ.get("MKL_NUM_THREADS", "1")),
                   help="model threads of the server and of the baseline (default: MKL_NUM_THREADS, else 1)")
    p.add_argument("--run", help="a trained run directory of the multi-task config (default: train one)")
    p.add_argument("--epochs", type=float, default=0.5, help="training length when training (train.epochs)")
    p.add_argument("--smoke", action="store_true", help="a tiny model, 4 clients, 2 s")
    p.add_argument("--write", action="store_true", help=f"write the section '{HEADING}' of docs/benchmarks.md")
    args = p.parse_args(argv)
    if args.smoke:
        args.clients, args.duration, args.epochs = 4, 2.0, 0.1
    return args


# ------------------------------------------------------------------ the machine
def cpu() -> Tuple[str, str]:
    """The CPU model, and which of the flags that matter for inference it has (each named, yes or no)."""
    model, flags = platform.processor() or platform.machine(), set()
    with contextlib.suppress(OSError):
        info = open("/proc/cpuinfo", encoding="utf-8").read().splitlines()
        model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), model)
        flags = set(next((line.split(":", 1)[1] for line in info if line.startswith("flags")), "").split())
    wanted = ["avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8"]
    return model, ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in wanted)


def load_average() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


# ------------------------------------------------------------------ model and server
def palm_command(*args) -> List[str]:
    return [sys.executable, "-m", "paddlepalm.cli", *map(str, args)]


def environment(threads: int) -> Dict[str, str]:
    return dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
                MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")


def train(run: str, args) -> None:
    command = palm_command("train", CONFIG, "-s", run, "-o", f"train.epochs={args.epochs}", "-o",
                           "train.print_steps=0", "--no-progress", *(TINY if args.smoke else []))
    done = subprocess.run(command, capture_output=True, text=True, env=environment(args.threads), cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"palm train failed:\n{done.stderr[-3000:]}")


def test_sentences(run: str) -> List[str]:
    with open(os.path.join(run, "data", "intent", "test.tsv"), encoding="utf-8") as f:
        header, *rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    column = header.index("text_a")
    return [row[column] for row in rows]


@contextlib.contextmanager
def palm_serve(run: str, args, log_path: str) -> Iterator[str]:
    """``palm serve RUN`` in a child process; yields its URL; stopped with SIGINT (killed if it hangs)."""
    command = palm_command("serve", run, "--port", 0, "--max-batch", args.max_batch, "--max-wait-ms",
                           args.max_wait_ms, "--threads", args.threads)
    with open(log_path, "w", encoding="utf-8") as log:
        server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True,
                                  env=environment(args.threads), cwd=REPO)
    try:
        ready, _, _ = select.select([server.stdout], [], [], 600)
        url = server.stdout.readline().strip() if ready else ""
        if not url.startswith("http://"):
            raise SystemExit(f"palm serve did not start:\n{open(log_path, encoding='utf-8').read()[-3000:]}")
        yield url
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def get_json(url: str, path: str):
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        connection.request("GET", path)
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def post_sentence(url: str, sentence: str) -> None:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        connection.request("POST", "/predict", json.dumps({"texts": [sentence]}).encode("utf-8"),
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"warm-up request failed: {response.status}")
    finally:
        connection.close()


# ------------------------------------------------------------------ load
class Client(threading.Thread):
    """Sends one sentence per request on one keep-alive connection until ``end``."""

    def __init__(self, url: str, sentences: List[str], first: int, step: int, start: threading.Barrier):
        super().__init__(daemon=True)
        parts = urllib.parse.urlsplit(url)
        self.address = (parts.hostname, parts.port)
        self.sentences, self.index, self.step, self.start_barrier = sentences, first, step, start
        self.latencies: List[float] = []
        self.errors: List[str] = []
        self.end = 0.0

    def run(self) -> None:
        connection = http.client.HTTPConnection(*self.address, timeout=60)
        self.start_barrier.wait()
        while time.perf_counter() < self.end:
            body = json.dumps({"texts": [self.sentences[self.index % len(self.sentences)]]}).encode("utf-8")
            self.index += self.step
            began = time.perf_counter()
            try:
                connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                answer = response.read()
                took = time.perf_counter() - began
                if response.status != 200 or len(json.loads(answer)["predictions"]) != 1:
                    self.errors.append(f"{response.status}: {answer[:200]!r}")
                else:
                    self.latencies.append(took)
            except (OSError, http.client.HTTPException, ValueError, KeyError) as error:
                self.errors.append(f"{type(error).__name__}: {error}")
                connection.close()
                connection = http.client.HTTPConnection(*self.address, timeout=60)
        connection.close()


def load(url: str, sentences: List[str], clients: int, duration: float) -> Dict[str, object]:
    barrier = threading.Barrier(clients + 1)
    workers = [Client(url, sentences, c, clients, barrier) for c in range(clients)]
    for worker in workers:
        worker.start()
    began = time.perf_counter()
    for worker in workers:
        worker.end = began + duration
    barrier.wait()
    for worker in workers:
        worker.join(duration + 120)
    seconds = time.perf_counter() - began
    latencies = [x for w in workers for x in w.latencies]
    errors = [e for w in workers for e in w.errors]
    return {"seconds": seconds, "latencies": latencies, "errors": errors, "sentences": len(latencies)}


def baseline(export_dir: str, sentences: List[str], threads: int, duration: float) -> Dict[str, object]:
    """One sentence per ``Predictor.predict`` call, one call after another, for ``duration`` s."""
    import paddlepalm

    predictor = paddlepalm.Predictor(export_dir, threads=threads)
    for sentence in sentences[:20]:
        predictor.predict([sentence])
    latencies, index = [], 0
    began = time.perf_counter()
    while time.perf_counter() - began < duration:
        start = time.perf_counter()
        predictor.predict([sentences[index % len(sentences)]])
        latencies.append(time.perf_counter() - start)
        index += 1
    return {"seconds": time.perf_counter() - began, "latencies": latencies, "errors": [],
            "sentences": len(latencies)}


# ------------------------------------------------------------------ report
def row(name: str, result: Dict[str, object]) -> Dict[str, object]:
    latencies = np.array(result["latencies"]) * 1000 if result["latencies"] else np.array([np.nan])
    requests = len(result["latencies"]) + len(result["errors"])
    return {"path": name, "requests": requests, "errors": len(result["errors"]),
            "rps": requests / result["seconds"], "sps": result["sentences"] / result["seconds"],
            "p50": float(np.percentile(latencies, 50)), "p99": float(np.percentile(latencies, 99))}


def table(rows: List[Dict[str, object]]) -> str:
    lines = ["| path | requests | errors | requests/s | sentences/s | p50 ms | p99 ms |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['path']} | {r['requests']} | {r['errors']} | {r['rps']:.1f} | {r['sps']:.1f} | "
                     f"{r['p50']:.1f} | {r['p99']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    model, flags = cpu()
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="serve-load-") as work:
        run = os.path.abspath(args.run) if args.run else os.path.join(work, "run")
        if not args.run:
            print(f"training {run} (palm train {os.path.relpath(CONFIG, REPO)}, train.epochs={args.epochs})",
                  file=sys.stderr, flush=True)
            train(run, args)
        sentences = test_sentences(run)
        log_path = os.path.join(work, "serve.log")
        with palm_serve(run, args, log_path) as url:
            health = get_json(url, "/health")
            for sentence in sentences[:20]:  # warm-up, one at a time
                post_sentence(url, sentence)
            before = get_json(url, "/stats")
            served = load(url, sentences, args.clients, args.duration)
            after = get_json(url, "/stats")
        load_during = load_average()
        calls = after["batches"] - before["batches"]
        mean_batch = (after["inputs"] - before["inputs"]) / max(calls, 1)
        alone = baseline(health["model"], sentences, args.threads, args.duration)
        load_after = load_average()
    rows = [row(f"palm serve, {args.clients} clients (--max-batch {args.max_batch} --max-wait-ms "
                f"{args.max_wait_ms:g}; {calls} model calls, {mean_batch:.1f} sentences per call)", served),
            row("Predictor.predict([s]) one at a time, in-process", alone)]
    served_row, alone_row = rows
    paragraphs = [
        f"CPU: {model} ({os.cpu_count()} cores); flags: {flags}; "
        f"Python {platform.python_version()}; model threads {args.threads} (server and baseline), "
        f"the {args.clients} client threads in the bench's process on the same cores",
        f"Load average (1, 5, 15 min): {load_before} before, {load_during} after the load, {load_after} at the end "
        "(other jobs share the machine).",
        f"Model: {'tiny ERNIE 1 x 32 (--smoke)' if args.smoke else 'ERNIE 2 x 256'}, joint slot (CRF) + intent; "
        f"{len(sentences)} test sentences of the generated sample, one per request; {args.duration:g} s for each path.",
        table(rows),
        f"palm serve vs one at a time: {served_row['sps'] / alone_row['sps']:.2f}x the sentences/s, "
        f"p50 latency {served_row['p50'] / alone_row['p50']:.2f}x, p99 {served_row['p99'] / alone_row['p99']:.2f}x; "
        f"errors: {served_row['errors']}"]
    print("\n\n".join(paragraphs))
    for error in served["errors"][:5]:
        print(f"  {error}", file=sys.stderr)
    if args.write:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from report import update_marked

        given = " ".join(argv if argv is not None else sys.argv[1:])
        command = f"MKL_NUM_THREADS={args.threads} python bench/serve_load.py {given}".strip()
        update_marked(HEADING, "serve_load", "\n\n".join([f"Command: `{command}`", *paragraphs]))
    return 1 if served_row["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
