"""``palm serve``: an exported model (``paddlepalm.Predictor``) behind an HTTP JSON service that
batches concurrent requests together.

::

    palm serve runs/joint --port 8000
    curl -s 127.0.0.1:8000/predict -d '{"texts": ["show me flights from boston to denver"]}'
    # {"predictions": [{"slot": {"tags": [...], "spans": [...], ...}, "intent": {"label_name": ...}}]}

Endpoints:

* ``POST /predict`` with ``{"texts": [input, ...]}``: an input is a string, or a
  ``[text_a, text_b]`` pair for models that read pairs (matching, ``[question, context]`` for
  MRC); or ``{"tokens": [["pre", "tokenized"], ...]}`` (a pair: ``[["a", ...], ["b", ...]]``), run
  by ``Predictor.predict(..., pretokenized=True)``. The answer is ``{"predictions": [record, ...]}``,
  one record per input in order, each what ``Predictor.predict`` returns for it.
* ``GET /health``: ``{"status": "ok", "tasks": [...], "model": export folder}``.
* ``GET /stats``: counters of requests, inputs and model calls (``batches``).

Errors are ``{"error": "message"}``: 400 for a body that is not JSON (or not UTF-8); 422 for JSON
of the wrong shape or types, an empty list, an empty or blank text, or a pair given to a model
of single texts (and the reverse); 413 for any limit passed (``Limits``: inputs per request,
characters per input, body bytes, the last checked from ``Content-Length`` and while reading,
before parsing); 404/405 for other paths and methods; 501 for ``tokens`` when the Predictor has
no ``pretokenized`` mode; 500 with the error's message when the model fails (the server goes on
serving).

Dynamic batching (``BatchingQueue``): each request's inputs are queued; one worker thread (the
Predictor is not thread-safe) takes the oldest request and every request queued behind it, up to
``max_batch`` inputs, waiting at most ``max_wait_ms`` after the oldest one arrived for more to come,
runs them as one ``predict`` call and hands each request its slice of the results. If a combined
call fails, its requests are run again one by one, so that one bad request fails alone.

Why FastAPI on uvicorn: both are installed with paddlenlp already (no new dependency), and an
asyncio server holds many keep-alive connections waiting on the one model thread without a thread
per connection, which ``http.server`` would need; uvicorn brings graceful shutdown on SIGINT and
SIGTERM and access logs. The body is read and checked by hand (not by a pydantic model) so that
the size limit is applied before parsing and every error has the same ``{"error"}`` form.
"""
import asyncio
import contextlib
import copy
import json
import logging
import signal
import socket
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, FrozenSet, List, Optional, Sequence, Tuple

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_BATCH = 32
DEFAULT_MAX_WAIT_MS = 5.0
DEFAULT_MAX_INPUTS = 256
DEFAULT_MAX_CHARS = 10_000
DEFAULT_MAX_BODY_BYTES = 1 << 20

_log = logging.getLogger("uvicorn.error")


# ------------------------------------------------------------------ batching
@dataclass
class _Request:
    kind: str
    inputs: List[Any]
    future: Future
    arrived: float


class BatchingQueue:
    """Runs ``run(kind, inputs) -> results`` (one result per input) on one worker thread, for the
    requests of any number of threads, several requests per call.

    ``submit(inputs, kind)`` returns a ``concurrent.futures.Future`` of that request's results.
    Only requests of the same ``kind`` share a call; requests are taken in arrival order. A request
    larger than ``max_batch`` runs alone, whole.
    """

    def __init__(self, run: Callable[[str, List[Any]], Sequence[Any]], max_batch: int = DEFAULT_MAX_BATCH,
                 max_wait_ms: float = DEFAULT_MAX_WAIT_MS):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must not be negative, got {max_wait_ms}")
        self._run = run
        self.max_batch, self.max_wait = int(max_batch), max_wait_ms / 1000.0
        self._pending: Deque[_Request] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._stats = {"requests": 0, "inputs": 0, "batches": 0, "largest_batch": 0, "failed_requests": 0}
        self._thread = threading.Thread(target=self._work, name="palm-serve-batches", daemon=True)
        self._thread.start()

    def submit(self, inputs: Sequence[Any], kind: str = "texts") -> Future:
        future: Future = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the batching queue is closed")
            self._pending.append(_Request(kind, list(inputs), future, time.monotonic()))
            self._stats["requests"] += 1
            self._stats["inputs"] += len(inputs)
            self._cond.notify()
        return future

    def stats(self) -> Dict[str, int]:
        """``requests`` and ``inputs`` submitted, ``batches`` (calls of ``run``) and the largest one,
        ``failed_requests`` answered with an error."""
        with self._cond:
            return dict(self._stats, queued=len(self._pending))

    def close(self, timeout: Optional[float] = None) -> None:
        """Refuse new requests, run the queued ones, stop the worker."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # ------------------------------------------------------------------ the worker
    def _work(self) -> None:
        while True:
            group = self._next_group()
            if group is None:
                return
            running = [r for r in group if r.future.set_running_or_notify_cancel()]
            if running:
                self._execute(running)

    def _next_group(self) -> Optional[List[_Request]]:
        with self._cond:
            while not self._pending:
                if self._closed:
                    return None
                self._cond.wait()
            first = self._pending[0]
            deadline = first.arrived + self.max_wait
            while not self._closed and self._queued(first.kind) < self.max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return self._take(first.kind)

    def _queued(self, kind: str) -> int:
        return sum(len(r.inputs) for r in self._pending if r.kind == kind)

    def _take(self, kind: str) -> List[_Request]:
        """The oldest request of ``kind`` and those after it while they fit in ``max_batch``."""
        group: List[_Request] = []
        rest: Deque[_Request] = deque()
        size, full = 0, False
        for request in self._pending:
            if not full and request.kind == kind and (not group or size + len(request.inputs) <= self.max_batch):
                group.append(request)
                size += len(request.inputs)
            else:
                full = full or request.kind == kind
                rest.append(request)
        self._pending = rest
        return group

    def _execute(self, group: List[_Request]) -> None:
        try:
            results = self._call(group[0].kind, [item for r in group for item in r.inputs])
        except Exception as error:  # noqa: BLE001 (handed to the request; the worker goes on)
            if len(group) > 1:
                for request in group:  # find the request that fails, answer the others
                    self._execute([request])
                return
            with self._cond:
                self._stats["failed_requests"] += 1
            group[0].future.set_exception(error)
            return
        start = 0
        for request in group:
            request.future.set_result(results[start:start + len(request.inputs)])
            start += len(request.inputs)

    def _call(self, kind: str, inputs: List[Any]) -> List[Any]:
        with self._cond:
            self._stats["batches"] += 1
            self._stats["largest_batch"] = max(self._stats["largest_batch"], len(inputs))
        results = list(self._run(kind, inputs))
        if len(results) != len(inputs):
            raise RuntimeError(f"the model gave {len(results)} results for {len(inputs)} inputs")
        return results


# ------------------------------------------------------------------ requests
@dataclass(frozen=True)
class Limits:
    """What one request may hold: ``max_inputs`` inputs, ``max_chars`` characters per input (both
    texts of a pair, all tokens of a token list), ``max_body_bytes`` bytes of body."""
    max_inputs: int = DEFAULT_MAX_INPUTS
    max_chars: int = DEFAULT_MAX_CHARS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


class RequestError(Exception):
    """A request refused with an HTTP status (4xx) and a message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class NotSupported(Exception):
    """The model cannot do what the request asks (answered 501)."""


_SHAPE = 'the body must be {"texts": [text or [text_a, text_b], ...]} or {"tokens": [[token, ...], ...]}'


def _json_type(value: Any) -> str:
    names = {str: "a string", bool: "a boolean", int: "a number", float: "a number", list: "an array",
             dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def parse_request(body: bytes, limits: Limits, forms: FrozenSet[str]) -> Tuple[str, List[Any]]:
    """``("texts", inputs)`` or ``("tokens", token lists)`` of a ``/predict`` body, as the Predictor
    takes them (pairs as tuples); ``RequestError`` for anything else. ``forms``: what the model
    reads, ``"text"`` and/or ``"pair"`` (:func:`input_forms`)."""
    try:
        payload = json.loads(body)
    except ValueError as error:  # json.JSONDecodeError, UnicodeDecodeError
        raise RequestError(400, f"the body is not JSON: {error}") from None
    if not isinstance(payload, dict):
        raise RequestError(422, f"{_SHAPE}; got {_json_type(payload)}")
    if set(payload) not in ({"texts"}, {"tokens"}):
        raise RequestError(422, f"{_SHAPE}; got the keys {sorted(payload)}")
    kind, items = next(iter(payload.items()))
    if not isinstance(items, list):
        raise RequestError(422, f"{kind!r} must be an array, got {_json_type(items)}")
    if not items:
        raise RequestError(422, f"{kind!r} is empty: give at least one input")
    if len(items) > limits.max_inputs:
        raise RequestError(413, f"{len(items)} inputs in one request; the limit is {limits.max_inputs} (--max-inputs)")
    read = _text_input if kind == "texts" else _token_input
    return kind, [read(f"{kind}[{i}]", item, limits, forms) for i, item in enumerate(items)]


def _text_input(where: str, item: Any, limits: Limits, forms: FrozenSet[str]) -> Any:
    if isinstance(item, str):
        texts = [item]
    elif isinstance(item, list) and len(item) == 2 and all(isinstance(t, str) for t in item):
        texts = item
    else:
        got = _json_type(item)
        if isinstance(item, list):
            got = f"an array of {len(item)} items" if len(item) != 2 else "an array of 2 items, not both strings"
        raise RequestError(422, f"{where} must be a string or a [text_a, text_b] pair of strings, got {got}")
    _check_texts(where, texts, limits)
    form = "text" if len(texts) == 1 else "pair"
    if form not in forms:
        wanted = "[text_a, text_b] pairs" if "pair" in forms else "single strings, not pairs"
        raise RequestError(422, f"{where}: this model reads {wanted}")
    return item if form == "text" else tuple(item)


def _token_input(where: str, item: Any, limits: Limits, forms: FrozenSet[str]) -> Any:
    """A token list, or a pair of token lists (``[[tokens a], [tokens b]]``, a tuple for the Predictor)."""
    def is_tokens(value):
        return isinstance(value, list) and all(isinstance(t, str) for t in value)

    pair = isinstance(item, list) and len(item) == 2 and all(isinstance(part, list) for part in item)
    if not (is_tokens(item) or pair and all(is_tokens(part) for part in item)):
        raise RequestError(422, f"{where} must be an array of token strings, or a pair of them, "
                                f"got {_json_type(item)}")
    for part in item if pair else [item]:
        if not part:
            raise RequestError(422, f"{where} has no tokens: give at least one")
    tokens = [t for part in item for t in part] if pair else item
    _check_texts(where, tokens, limits)
    if ("pair" if pair else "text") not in forms:
        wanted = "pairs of token lists" if "pair" in forms else "single token lists, not pairs"
        raise RequestError(422, f"{where}: this model reads {wanted}")
    return tuple(item) if pair else item


def _check_texts(where: str, texts: Sequence[str], limits: Limits) -> None:
    for text in texts:
        if not text.strip():
            raise RequestError(422, f"{where} has an empty or blank text")
    chars = sum(len(t) for t in texts)
    if chars > limits.max_chars:
        raise RequestError(413, f"{where} has {chars} characters; the limit is {limits.max_chars} (--max-chars)")


async def read_body(request: Any, limit: int) -> bytes:
    """The body of a Starlette request, refused (413) as soon as it is known to exceed ``limit``
    bytes: from ``Content-Length`` before reading, else while reading a chunked body."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the body has {declared} bytes; the limit is {limit} (--max-body-bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"the body has more than {limit} bytes, the limit (--max-body-bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def _json_value(value: Any) -> Any:
    """``json.dumps``' fallback for numpy values in records."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, default=_json_value).encode("utf-8")


# ------------------------------------------------------------------ the service
def input_forms(predictor: Any) -> FrozenSet[str]:
    """What ``predictor`` reads: ``"text"`` (a string) and/or ``"pair"`` (two strings), found by
    predicting one of each; this also runs the model once before the first request."""
    forms, refusals = set(), []
    for form, probe in (("text", "hello"), ("pair", ("hello", "world"))):
        try:
            predictor.predict([probe])
        except TypeError as error:  # the readers' answer to an input of the wrong form
            refusals.append(str(error))
        else:
            forms.add(form)
    if not forms:
        raise ValueError(f"the model reads neither a string nor a pair of strings: {'; '.join(refusals)}")
    return frozenset(forms)


class Service:
    """A Predictor behind a :class:`BatchingQueue`, with the request limits; ``task`` keeps that
    task's results only. :func:`create_app` puts it on HTTP."""

    def __init__(self, predictor: Any, limits: Limits = Limits(), max_batch: int = DEFAULT_MAX_BATCH,
                 max_wait_ms: float = DEFAULT_MAX_WAIT_MS, task: Optional[str] = None):
        if task is not None and task not in predictor.tasks:
            raise ValueError(f"the model has no task {task!r}; it has {list(predictor.tasks)}")
        self.predictor, self.limits, self.task = predictor, limits, task
        self.forms = input_forms(predictor)
        self.queue = BatchingQueue(self._run, max_batch, max_wait_ms)

    def health(self) -> Dict[str, Any]:
        return {"status": "ok", "tasks": [self.task] if self.task else list(self.predictor.tasks),
                "model": self.predictor.path}

    def stats(self) -> Dict[str, Any]:
        return {**self.queue.stats(), "max_batch": self.queue.max_batch, "max_wait_ms": self.queue.max_wait * 1000}

    async def predict(self, body: bytes) -> List[Dict[str, Any]]:
        kind, inputs = parse_request(body, self.limits, self.forms)
        return await asyncio.wrap_future(self.queue.submit(inputs, kind))

    def close(self) -> None:
        self.queue.close()

    def _run(self, kind: str, inputs: List[Any]) -> List[Dict[str, Any]]:
        if kind == "tokens":
            try:
                records = self.predictor.predict(inputs, pretokenized=True)
            except TypeError as error:
                if "pretokenized" in str(error) and "keyword" in str(error):
                    raise NotSupported("this paddlepalm's Predictor.predict has no pretokenized mode: "
                                       "send {\"texts\": [...]}") from None
                raise
        else:
            records = self.predictor.predict(inputs)
        if self.task is not None:
            records = [{self.task: record[self.task]} for record in records]
        return records


def create_app(service: Service) -> Any:
    """The FastAPI application of ``service``; closing the application (uvicorn's shutdown)
    closes the service."""
    from fastapi import FastAPI, Request
    from fastapi.responses import Response
    from starlette.exceptions import HTTPException

    def answer(status: int, payload: Any, headers: Optional[Dict[str, str]] = None) -> Response:
        return Response(to_json(payload), status, headers, media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await asyncio.get_running_loop().run_in_executor(None, service.close)

    app = FastAPI(title="paddlepalm serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def framework_error(request: Request, error: HTTPException) -> Response:
        return answer(error.status_code, {"error": str(error.detail)}, error.headers)

    @app.get("/health")
    async def health() -> Response:
        return answer(200, service.health())

    @app.get("/stats")
    async def stats() -> Response:
        return answer(200, service.stats())

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        try:
            body = await read_body(request, service.limits.max_body_bytes)
            return answer(200, {"predictions": await service.predict(body)})
        except RequestError as error:
            return answer(error.status, {"error": error.message})
        except NotSupported as error:
            return answer(501, {"error": str(error)})
        except Exception as error:  # noqa: BLE001 (the model failed on this request; go on serving)
            _log.exception("predict failed")
            return answer(500, {"error": f"{type(error).__name__}: {' '.join(str(error).split())}"})

    return app


# ------------------------------------------------------------------ running
def bind(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> socket.socket:
    """A listening socket (``port`` 0: a free one); connections wait in its backlog until the
    server runs, so clients may connect as soon as this returns."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say so (with proto 0, Nagle's
    # algorithm held each answer's body back until the client's delayed ACK of its headers)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if sock.family == socket.AF_INET6 else f"http://{host}:{port}"


def _log_config() -> Dict[str, Any]:
    """uvicorn's logging with the access log on stderr too (its default is stdout)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    return config


def _server(service: Service, access_log: bool, log_config: Optional[Dict[str, Any]]):
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, remembering the first signal that stopped it (``stop_signal``)."""

        stop_signal: Optional[int] = None

        def handle_exit(self, sig: int, frame: Any) -> None:
            self.stop_signal = self.stop_signal or sig
            super().handle_exit(sig, frame)

    config = uvicorn.Config(create_app(service), log_config=log_config, access_log=access_log, lifespan="on",
                            timeout_graceful_shutdown=30)
    return Server(config)


def run(service: Service, name: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
        access_log: bool = True) -> None:
    """Serve until SIGINT or SIGTERM (then finish the requests in flight). Prints the URL alone on
    standard output and ``serving NAME on URL`` on standard error once connections are accepted."""
    try:
        sock = bind(host, port)
    except BaseException:
        service.close()
        raise
    try:
        url = url_of(sock)
        print(url, flush=True)
        print(f"serving {name} on {url}", file=sys.stderr, flush=True)
        server = _server(service, access_log, _log_config())
        server.run(sockets=[sock])
        if server.stop_signal == signal.SIGINT:
            # uvicorn raises a captured SIGINT again after its graceful shutdown, which ends palm with
            # status 130; once, under load, it returned normally instead (status 0; the cause was not
            # found), so the interrupt is raised here whatever uvicorn did
            raise KeyboardInterrupt
    finally:
        sock.close()
        service.close()


class ServerThread:
    """``service`` served from a background thread (tests, notebooks): ``with ServerThread(service)
    as server: ... server.url ...``; leaving the block shuts the server and the service down."""

    def __init__(self, service: Service, host: str = DEFAULT_HOST, port: int = 0, access_log: bool = False):
        self.service = service
        self._sock = bind(host, port)
        self.url = url_of(self._sock)
        self._server = _server(service, access_log, None)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="palm-serve", daemon=True)

    def __enter__(self) -> "ServerThread":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self, timeout: float = 30.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._sock.close()
        self.service.close()
