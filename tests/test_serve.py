"""``palm serve`` (paddlepalm/serve.py): the batching queue on its own; the HTTP service in a
background thread on a tiny joint slot + intent model (answers equal to ``Predictor.predict``,
concurrent requests batched, every refusal, a failing model); ``palm serve`` as a user runs it;
bench/serve_load.py --smoke. Servers listen on 127.0.0.1, port 0."""
import contextlib
import http.client
import inspect
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
from concurrent.futures import Future
from typing import Any, List, Optional

import pytest

import paddlepalm
from paddlepalm.serve import BatchingQueue, Limits, Service, ServerThread

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=REPO, MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
TINY_JOINT = [os.path.join(REPO, "examples", "configs", "multi-task.yaml"),
              "-o", "backbone.config.hidden_size=32", "-o", "backbone.config.num_hidden_layers=1",
              "-o", "backbone.config.num_attention_heads=2", "-o", "backbone.config.intermediate_size=64",
              "-o", "train.epochs=0.1", "-o", "train.print_steps=0"]
HAS_PRETOKENIZED = "pretokenized" in inspect.signature(paddlepalm.Predictor.predict).parameters
WAIT = 60  # seconds: the bound on any one wait of these tests


def palm(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "paddlepalm.cli", *map(str, args)], capture_output=True,
                          text=True, env=ENV, cwd=REPO, timeout=timeout)


def ok(result):
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A joint slot + intent run of the multi-task example, tiny and two updates long."""
    run = tmp_path_factory.mktemp("serve") / "run"
    ok(palm("train", *TINY_JOINT, "-s", run, "--no-progress"))
    return run


@pytest.fixture(scope="module")
def export_dir(run_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("serve") / "joint"
    ok(palm("export", run_dir, "--output", path))  # outside the run: `palm serve RUN` exports it itself
    return str(path)


@pytest.fixture(scope="module")
def sentences(run_dir):
    with open(run_dir / "data" / "intent" / "test.tsv", encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t")[1] for line in f][1:41]


@pytest.fixture(scope="module")
def reference(export_dir):
    """A Predictor of its own, for the expected answers (the served one runs in the server's thread)."""
    return paddlepalm.Predictor(export_dir, threads=1)


@contextlib.contextmanager
def serving(predictor, limits=Limits(), **options):
    with ServerThread(Service(predictor, limits, **options)) as server:
        yield server


def request(url: str, method: str, path: str, body: Any = None, headers: Optional[dict] = None):
    """``(status, JSON answer)``; a ``body`` that is not bytes is sent as JSON."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=WAIT)
    try:
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode("utf-8")
        connection.request(method, path, body, {"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def plain(records):
    return json.loads(json.dumps(records))


def assert_close(got, expected, where="record"):
    """Equal, numbers within 1e-5 (a batch of other lengths pads differently)."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(expected), where
        for key in expected:
            assert_close(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), where
        for i, (a, b) in enumerate(zip(got, expected)):
            assert_close(a, b, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert got == pytest.approx(expected, abs=1e-5), where
    else:
        assert got == expected, where


# -------------------------------------------------------------------- the batching queue alone
class Model:
    """``run(kind, inputs)`` for a BatchingQueue: records each call; the first call waits for
    ``release`` (the worker is busy while a test queues requests); an input "bad" fails the call."""

    def __init__(self):
        self.calls: List[tuple] = []
        self.started, self.release = threading.Event(), threading.Event()

    def __call__(self, kind, inputs):
        self.calls.append((kind, list(inputs)))
        self.started.set()
        assert self.release.wait(WAIT)
        if "bad" in inputs:
            raise ValueError("bad input")
        return [f"{kind}:{x}" for x in inputs]


@contextlib.contextmanager
def busy_queue(max_batch, max_wait_ms=0.0):
    """A queue whose worker is inside its first call (of one input, "first") until the block ends."""
    model = Model()
    queue = BatchingQueue(model, max_batch=max_batch, max_wait_ms=max_wait_ms)
    try:
        first = queue.submit(["first"])
        assert model.started.wait(WAIT)
        yield queue, model
        model.release.set()
        assert first.result(WAIT) == ["texts:first"]
    finally:
        model.release.set()
        queue.close(WAIT)


def results(futures: List[Future]):
    return [f.result(WAIT) for f in futures]


def test_requests_queued_while_the_model_runs_share_one_call_and_get_their_own_results():
    with busy_queue(max_batch=8) as (queue, model):
        futures = [queue.submit([f"{r}a", f"{r}b"]) for r in range(3)]
    assert results(futures) == [[f"texts:{r}a", f"texts:{r}b"] for r in range(3)]
    assert model.calls == [("texts", ["first"]), ("texts", ["0a", "0b", "1a", "1b", "2a", "2b"])]
    stats = queue.stats()
    assert (stats["requests"], stats["inputs"], stats["batches"], stats["largest_batch"]) == (4, 7, 2, 6)


def test_a_call_holds_at_most_max_batch_inputs_in_arrival_order():
    with busy_queue(max_batch=7) as (queue, model):
        futures = [queue.submit([f"{r}{i}" for i in range(3)]) for r in range(5)]
        big = queue.submit([f"big{i}" for i in range(9)])  # more than max_batch: alone, whole
    assert results(futures) == [[f"texts:{r}{i}" for i in range(3)] for r in range(5)]
    assert big.result(WAIT) == [f"texts:big{i}" for i in range(9)]
    assert [len(inputs) for _, inputs in model.calls] == [1, 6, 6, 3, 9]
    assert [x for _, inputs in model.calls[1:4] for x in inputs] == [f"{r}{i}" for r in range(5) for i in range(3)]


def test_requests_of_different_kinds_never_share_a_call():
    with busy_queue(max_batch=8) as (queue, model):
        a, t, b = queue.submit(["a"]), queue.submit(["t"], kind="tokens"), queue.submit(["b"])
    assert (a.result(WAIT), t.result(WAIT), b.result(WAIT)) == (["texts:a"], ["tokens:t"], ["texts:b"])
    assert model.calls[1:] == [("texts", ["a", "b"]), ("tokens", ["t"])]


def test_a_failing_request_fails_alone():
    with busy_queue(max_batch=8) as (queue, model):
        good, bad, other = queue.submit(["g1", "g2"]), queue.submit(["bad"]), queue.submit(["g3"])
    assert good.result(WAIT) == ["texts:g1", "texts:g2"] and other.result(WAIT) == ["texts:g3"]
    with pytest.raises(ValueError, match="bad input"):
        bad.result(WAIT)
    # the shared call failed; each request ran again alone
    assert model.calls[1:] == [("texts", ["g1", "g2", "bad", "g3"]), ("texts", ["g1", "g2"]), ("texts", ["bad"]),
                               ("texts", ["g3"])]
    assert queue.stats()["failed_requests"] == 1


def test_a_full_batch_runs_without_waiting_and_a_lone_request_after_max_wait():
    calls = []
    queue = BatchingQueue(lambda kind, inputs: calls.append(list(inputs)) or list(inputs), max_batch=4,
                          max_wait_ms=600_000)  # longer than any test: only a full batch can start
    try:
        futures = [queue.submit([i]) for i in range(4)]
        assert results(futures) == [[0], [1], [2], [3]]
        assert calls == [[0, 1, 2, 3]]
    finally:
        queue.close(WAIT)
    queue = BatchingQueue(lambda kind, inputs: list(inputs), max_batch=4, max_wait_ms=20)
    try:
        assert queue.submit(["alone"]).result(WAIT) == ["alone"]
    finally:
        queue.close(WAIT)


def test_close_runs_what_is_queued_then_refuses_requests():
    with busy_queue(max_batch=2) as (queue, model):
        queued = [queue.submit([i]) for i in range(3)]
        closer = threading.Thread(target=queue.close, args=(WAIT,))
        closer.start()
        model.release.set()
        closer.join(WAIT)
    assert results(queued) == [["texts:0"], ["texts:1"], ["texts:2"]]
    with pytest.raises(RuntimeError, match="closed"):
        queue.submit(["late"])


def test_a_model_giving_the_wrong_number_of_results_is_an_error():
    queue = BatchingQueue(lambda kind, inputs: ["one"], max_batch=4, max_wait_ms=0)
    try:
        with pytest.raises(RuntimeError, match="1 results for 2 inputs"):
            queue.submit(["a", "b"]).result(WAIT)
    finally:
        queue.close(WAIT)


# -------------------------------------------------------------------- the service on a tiny joint model
def test_health_names_the_model_and_its_tasks(export_dir):
    with serving(paddlepalm.Predictor(export_dir, threads=1)) as server:
        assert request(server.url, "GET", "/health") == (200, {"status": "ok", "tasks": ["slot", "intent"],
                                                               "model": export_dir})
    with serving(paddlepalm.Predictor(export_dir, threads=1), task="intent") as server:
        assert request(server.url, "GET", "/health")[1]["tasks"] == ["intent"]
        status, answer = request(server.url, "POST", "/predict", {"texts": ["show me flights to denver"]})
        assert status == 200 and [set(r) for r in answer["predictions"]] == [{"intent"}]


def test_predict_answers_what_the_predictor_answers(export_dir, reference, sentences):
    texts = sentences[:12]
    expected = plain(reference.predict(texts))
    with serving(paddlepalm.Predictor(export_dir, threads=1)) as server:
        assert request(server.url, "POST", "/predict", {"texts": texts}) == (200, {"predictions": expected})
        assert request(server.url, "GET", "/stats")[1]["batches"] == 1
    assert expected[0]["slot"]["tags"] and expected[0]["intent"]["label_name"]


def test_concurrent_requests_are_batched_and_answered_each_its_own(export_dir, reference, sentences):
    clients = 16
    texts = [sentences[2 * c:2 * c + 2] for c in range(clients)]
    expected = [plain(reference.predict(t)) for t in texts]
    answers: List[Any] = [None] * clients
    barrier = threading.Barrier(clients, timeout=WAIT)

    def client(c):
        barrier.wait()  # every request sent at once
        answers[c] = request(server.url, "POST", "/predict", {"texts": texts[c]})

    # a call closes when it holds 2 x 16 inputs, or 10 s after its first request came
    with serving(paddlepalm.Predictor(export_dir, threads=1), max_batch=2 * clients, max_wait_ms=10_000) as server:
        threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        stats = request(server.url, "GET", "/stats")[1]
    for c in range(clients):
        assert answers[c][0] == 200, answers[c]
        assert_close(answers[c][1]["predictions"], expected[c], f"client {c}")
    assert stats["requests"] == clients and stats["inputs"] == 2 * clients
    assert stats["batches"] < clients and stats["largest_batch"] > 2, stats


@pytest.mark.skipif(not HAS_PRETOKENIZED, reason="Predictor.predict has no pretokenized keyword yet")
def test_tokens_are_predicted_pretokenized(export_dir, reference, sentences):
    tokens = [s.split() for s in sentences[:4]]
    expected = plain(reference.predict(tokens, pretokenized=True))
    with serving(paddlepalm.Predictor(export_dir, threads=1)) as server:
        status, answer = request(server.url, "POST", "/predict", {"tokens": tokens})
    assert status == 200
    assert_close(answer["predictions"], expected)


class OldPredictor:
    """A Predictor whose ``predict`` has no ``pretokenized`` keyword."""

    def __init__(self, predictor):
        self.inner, self.tasks, self.path = predictor, predictor.tasks, predictor.path

    def predict(self, inputs):
        return self.inner.predict(inputs)


class FailingPredictor(OldPredictor):
    """Fails on the input "explode", as a model may fail inside."""

    def predict(self, inputs, **options):
        if "explode" in inputs:
            raise RuntimeError("the model failed\non this input")
        return self.inner.predict(inputs, **options)


def test_tokens_without_a_pretokenized_mode_answer_501(export_dir):
    with serving(OldPredictor(paddlepalm.Predictor(export_dir, threads=1))) as server:
        status, answer = request(server.url, "POST", "/predict", {"tokens": [["show", "me", "flights"]]})
        assert status == 501 and "pretokenized" in answer["error"]
        assert request(server.url, "POST", "/predict", {"texts": ["show me flights"]})[0] == 200


def test_a_failure_in_the_model_is_a_500_and_the_server_goes_on(export_dir, reference, sentences):
    with serving(FailingPredictor(paddlepalm.Predictor(export_dir, threads=1))) as server:
        assert request(server.url, "POST", "/predict", {"texts": ["explode"]}) == (
            500, {"error": "RuntimeError: the model failed on this input"})
        status, answer = request(server.url, "POST", "/predict", {"texts": sentences[:3]})
        assert status == 200 and answer["predictions"] == plain(reference.predict(sentences[:3]))
        assert request(server.url, "GET", "/health")[0] == 200


LIMITS = Limits(max_inputs=4, max_chars=50, max_body_bytes=2000)
REFUSED = [  # (body, status, a part of the message)
    (b'{"texts": ["show me"', 400, "not JSON"),
    (b'{"texts": ["\xff\xfe flights"]}', 400, "not JSON"),
    (["show me flights"], 422, "must be"),
    ({"text": ["show me flights"]}, 422, "got the keys ['text']"),
    ({"texts": ["show me"], "tokens": [["show"]]}, 422, "got the keys"),
    ({"texts": "show me flights"}, 422, "'texts' must be an array, got a string"),
    ({"texts": []}, 422, "'texts' is empty"),
    ({"texts": ["show me", ""]}, 422, "texts[1] has an empty"),
    ({"texts": ["  \t "]}, 422, "texts[0] has an empty or blank text"),
    ({"texts": [3]}, 422, "texts[0] must be a string or a [text_a, text_b] pair of strings, got a number"),
    ({"texts": [None]}, 422, "got null"),
    ({"texts": [["a", "b", "c"]]}, 422, "got an array of 3 items"),
    ({"texts": [["a", 2]]}, 422, "not both strings"),
    ({"texts": [["show me flights", "to denver"]]}, 422, "this model reads single strings, not pairs"),
    ({"tokens": [[]]}, 422, "tokens[0] has no tokens"),
    ({"tokens": [[["show"], []]]}, 422, "tokens[0] has no tokens"),
    ({"tokens": ["show me"]}, 422, "tokens[0] must be an array of token strings, or a pair of them, got a string"),
    ({"tokens": [["show", ["me"]]]}, 422, "tokens[0] must be an array of token strings"),
    ({"tokens": [[["show"], ["me"]]]}, 422, "tokens[0]: this model reads single token lists, not pairs"),
    ({"tokens": [["show", ""]]}, 422, "tokens[0] has an empty"),
    ({"texts": ["a", "b", "c", "d", "e"]}, 413, "5 inputs in one request; the limit is 4 (--max-inputs)"),
    ({"texts": ["a", "x" * 51]}, 413, "texts[1] has 51 characters; the limit is 50 (--max-chars)"),
    ({"tokens": [["x" * 30, "y" * 30]]}, 413, "tokens[0] has 60 characters"),
    (b'{"texts": ["a"]}' + b" " * 2000, 413, "the body has 2016 bytes; the limit is 2000 (--max-body-bytes)"),
]


@pytest.fixture(scope="module")
def limited_server(export_dir):
    with serving(paddlepalm.Predictor(export_dir, threads=1), LIMITS) as server:
        yield server


@pytest.mark.parametrize("body,status,message", REFUSED, ids=[f"{s}-{m[:30]}" for _, s, m in REFUSED])
def test_bad_requests_are_refused_with_a_clear_message(limited_server, body, status, message):
    got_status, answer = request(limited_server.url, "POST", "/predict", body)
    assert (got_status, list(answer)) == (status, ["error"])
    assert message in answer["error"]


def test_other_paths_and_methods_answer_json_errors_and_the_server_stays_up(limited_server):
    assert request(limited_server.url, "GET", "/nowhere") == (404, {"error": "Not Found"})
    assert request(limited_server.url, "GET", "/predict") == (405, {"error": "Method Not Allowed"})
    assert request(limited_server.url, "POST", "/predict", {"texts": ["show me flights"] * 4})[0] == 200


def test_the_body_size_is_refused_before_the_body_is_read(limited_server):
    parts = urllib.parse.urlsplit(limited_server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=WAIT) as sock:
        # a body announced at 1 GB, of which 10 bytes come: only the headers can be read
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000000000\r\n\r\n{\"texts\": ")
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert "1000000000 bytes" in json.loads(body)["error"]
    # chunked, without Content-Length: refused while reading
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=WAIT)
    try:
        connection.request("POST", "/predict", iter([b'{"texts": ["a"]}', b" " * 1500, b" " * 1500]),
                           {"Content-Type": "application/json"}, encode_chunked=True)
        response = connection.getresponse()
        assert response.status == 413
        assert "more than 2000 bytes" in json.loads(response.read())["error"]
    finally:
        connection.close()


# -------------------------------------------------------------------- palm serve, as a user runs it
def read_line(stream, seconds: float) -> str:
    ready, _, _ = select.select([stream], [], [], seconds)
    return stream.readline() if ready else ""


def test_palm_serve_a_run_directory(run_dir, tmp_path, sentences):
    stderr = open(tmp_path / "stderr.txt", "w+", encoding="utf-8")
    server = subprocess.Popen([sys.executable, "-m", "paddlepalm.cli", "serve", str(run_dir), "--port", "0",
                               "--max-batch", "8"], stdout=subprocess.PIPE, stderr=stderr, text=True, env=ENV,
                              cwd=REPO)
    try:
        url = read_line(server.stdout, 240).strip()
        assert url.startswith("http://127.0.0.1:"), open(tmp_path / "stderr.txt").read()[-3000:]
        status, health = request(url, "GET", "/health")
        assert status == 200 and health["model"] == str(run_dir / "export" / "joint")  # exported first
        status, answer = request(url, "POST", "/predict", {"texts": sentences[:2]})
        assert status == 200 and len(answer["predictions"]) == 2
    finally:
        server.send_signal(signal.SIGINT)  # a graceful stop
        try:
            rest, _ = server.communicate(timeout=WAIT)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    log = open(tmp_path / "stderr.txt", encoding="utf-8").read()
    assert server.returncode == 130, log[-3000:]  # palm's exit status when interrupted
    assert rest == ""  # nothing on standard output but the URL
    assert f"serving {run_dir} on {url}" in log and '"POST /predict HTTP/1.1" 200' in log


def test_palm_serve_usage_errors_exit_2_with_one_line(run_dir, export_dir, tmp_path):
    cases = [(["serve", tmp_path], "is neither an export folder"),
             (["serve", export_dir, "--max-batch", "0"], "--max-batch: must be at least 1, got 0"),
             (["serve", export_dir, "--task", "nope"], "has no task 'nope'")]
    for args, message in cases:
        result = palm(*args)
        error = result.stderr.strip().splitlines()[-1]  # after argparse's usage, if any
        assert result.returncode == 2 and error.startswith("palm serve: error: ") and message in error, result.stderr
        assert result.stdout == "" and "Traceback" not in result.stderr


def test_the_load_bench_smoke_mode_runs(run_dir):
    result = subprocess.run([sys.executable, os.path.join(REPO, "bench", "serve_load.py"), "--smoke", "--run",
                             str(run_dir)], capture_output=True, text=True, env=ENV, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "| palm serve" in result.stdout and "errors: 0" in result.stdout, result.stdout


def test_a_server_stopped_by_sigint_ends_in_keyboard_interrupt_even_if_uvicorn_returns(reference, monkeypatch):
    """palm serve's status 130 on SIGINT rests on KeyboardInterrupt leaving ``serve.run``. uvicorn
    raises the signal again after its graceful shutdown; once, under load, it returned normally
    instead and palm ended with 0 (test_palm_serve_a_run_directory). Here uvicorn's run is made to
    do just that: take the signal as its handler does, then return."""
    import uvicorn

    from paddlepalm import serve

    def stopped_by_sigint(self, sockets=None):
        self.handle_exit(signal.SIGINT, None)  # what uvicorn's signal handler calls

    monkeypatch.setattr(uvicorn.Server, "run", stopped_by_sigint)
    with pytest.raises(KeyboardInterrupt):
        serve.run(Service(reference), "a test", port=0)
