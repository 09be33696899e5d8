"""A local file server for the download tests: HTTP Range, a connection cut once after N
bytes, and a slow mode for timeouts. Binds 127.0.0.1 on a free port."""
import contextlib
import os
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional


class FileServer:
    def __init__(self, root: str):
        self.root = root
        self.cut_once: Dict[str, int] = {}  # URL path -> bytes to send before dropping, first time only
        self.delay_s: float = 0.0
        self.requests: List[Dict[str, Optional[str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append({"path": self.path, "range": self.headers.get("Range")})
                if server.delay_s:
                    time.sleep(server.delay_s)
                file = os.path.join(server.root, self.path.lstrip("/"))
                if not os.path.isfile(file):
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = open(file, "rb").read()
                start = 0
                if self.headers.get("Range", "").startswith("bytes="):
                    start = int(self.headers["Range"][len("bytes="):].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                cut = server.cut_once.pop(self.path, None)
                if cut is not None:
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "FileServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


UPSTREAM = "https://models.example.invalid"  # registry URLs of test entries; the mirror serves them


@contextlib.contextmanager
def model_mirror(root, monkeypatch, retries: int, home=None):
    """A FileServer over ``root`` as ``PALM_DOWNLOAD_MIRROR`` (``server.dir`` is ``root``), a private
    copy of the download registry, ``retries`` download retries, a 5 s timeout, and ``PALM_HOME``
    at ``home`` when given."""
    from paddlepalm import downloader

    root.mkdir()
    if home is not None:
        monkeypatch.setenv("PALM_HOME", str(home))
    monkeypatch.setenv("PALM_DOWNLOAD_RETRIES", str(retries))
    monkeypatch.setenv("PALM_DOWNLOAD_TIMEOUT", "5")
    with downloader.private_registry(), FileServer(str(root)) as server:
        monkeypatch.setenv("PALM_DOWNLOAD_MIRROR", server.url)
        server.dir = root
        yield server


def publish(server, rel_path: str, source: str) -> str:
    """Put ``source`` on the mirror at ``rel_path``; return the upstream URL it mirrors."""
    dest = server.dir / rel_path
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
    return f"{UPSTREAM}/{rel_path}"
