"""One file over HTTP(S), safely: temporary ``.part`` file, Range resume, retries with
backoff, size/sha256 check, a readability check, then an atomic rename."""

import os
import socket
import time
import urllib.error
import urllib.request
from http.client import HTTPException
from typing import Callable, Optional
from urllib.parse import urlparse

from tqdm import tqdm

from paddlepalm.utils.fileio import sha256_of

CHUNK = 1 << 16
PROGRESS_MIN_BYTES = 1 << 20  # smaller transfers get no progress bar


class DownloadError(RuntimeError):
    pass


class ChecksumError(DownloadError):
    pass


def _retryable_http(code: int) -> bool:
    return code in (408, 425, 429) or code >= 500


def _offline_hint(url: str, dest: str, upstream: Optional[str]) -> str:
    source = upstream or url
    return (f"could not reach {urlparse(url).netloc}; this machine seems offline or the host is blocked. "
            f"Set PALM_DOWNLOAD_MIRROR to the base URL of a reachable mirror serving the same path "
            f"({urlparse(source).path}), or place the file by hand: fetch {source} elsewhere and copy it to "
            f"{dest}, then run again (a file already there is verified and used); see docs/downloader.md")


def _verify(part: str, sha256: Optional[str], size: Optional[int], check: Optional[Callable[[str], None]],
            url: str) -> None:
    try:
        if size is not None and os.path.getsize(part) != size:
            raise ChecksumError(f"{url}: got {os.path.getsize(part)} bytes, the registry says {size}")
        if sha256:
            actual = sha256_of(part)
            if actual != sha256.lower():
                raise ChecksumError(f"{url}: sha256 {actual} does not match the registry's {sha256}; "
                                    f"the file was deleted (corrupt transfer, or the upstream file changed)")
        if check is not None:
            try:
                check(part)
            except Exception as err:  # noqa: BLE001 - any failure to read means a bad file
                raise DownloadError(f"{url}: the downloaded file does not read as expected: {err}") from err
    except DownloadError:
        os.remove(part)
        raise


def _transfer(url: str, part: str, timeout: float, desc: str) -> bool:
    """One attempt; appends to ``part``. True when the server says the file is complete."""
    have = os.path.getsize(part) if os.path.exists(part) else 0
    headers = {"User-Agent": "paddlepalm-downloader"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to send: what we have is the whole file
            return True
        raise
    with response:
        status = response.status
        if have and status != 206:  # the server ignored Range: start over
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        mode = "ab" if have else "wb"
        with open(part, mode) as f, tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=desc,
                                         disable=total is None or total < PROGRESS_MIN_BYTES,
                                         leave=False) as bar:
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                f.write(block)
                bar.update(len(block))
    got = os.path.getsize(part)
    if total is not None and got < total:
        raise HTTPException(f"connection closed after {got} of {total} bytes")
    return True


def fetch(url: str, dest: str, *, sha256: Optional[str] = None, size: Optional[int] = None,
          check: Optional[Callable[[str], None]] = None, timeout: float = 30.0, retries: int = 4,
          backoff: float = 1.0, log: Callable[[str], None] = print, upstream: Optional[str] = None) -> str:
    """Download ``url`` to ``dest`` unless a verified ``dest`` is already there.

    The transfer goes to ``dest + '.part'`` (kept across attempts and runs, so an
    interrupted download resumes with an HTTP Range request) and is renamed to
    ``dest`` only after the size, the sha256 (when given) and ``check`` pass; a
    file that fails them is deleted. ``upstream``: the URL the file is published at,
    when ``url`` is a mirror's copy (named in the offline hint).
    """
    if os.path.exists(dest):
        if sha256 and sha256_of(dest) != sha256.lower():
            log(f"{dest} exists but its sha256 differs from the registry's: downloading it again")
            os.remove(dest)
        else:
            return dest
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    part = dest + ".part"
    desc = os.path.basename(dest)
    last_error: Optional[BaseException] = None
    for attempt in range(retries + 1):
        if attempt:
            delay = backoff * 2 ** (attempt - 1)
            log(f"retrying {url} in {delay:.1f}s (attempt {attempt + 1} of {retries + 1}): {last_error}")
            time.sleep(delay)
        try:
            _transfer(url, part, timeout, desc)
            break
        except urllib.error.HTTPError as err:
            if not _retryable_http(err.code):
                raise DownloadError(f"HTTP {err.code} {err.reason} for {url}: the file is not there "
                                    f"(wrong name or mirror?)") from None
            last_error = err
        except (socket.timeout, TimeoutError) as err:
            last_error = TimeoutError(f"no data for {timeout:g}s")
        except urllib.error.URLError as err:
            if isinstance(err.reason, (socket.timeout, TimeoutError)):
                last_error = TimeoutError(f"no answer within {timeout:g}s")
            else:
                last_error = err
        except (HTTPException, ConnectionError, OSError) as err:
            last_error = err
    else:
        if isinstance(last_error, TimeoutError):
            raise DownloadError(f"timed out fetching {url} ({last_error}) after {retries + 1} attempts; "
                                f"{os.path.getsize(part) if os.path.exists(part) else 0} bytes kept in {part} "
                                f"for the next try; {_offline_hint(url, dest, upstream)}") from None
        if isinstance(last_error, urllib.error.URLError):
            raise DownloadError(f"{url}: {last_error.reason}; {_offline_hint(url, dest, upstream)}") from None
        raise DownloadError(f"failed to fetch {url} after {retries + 1} attempts: {last_error}") from None
    _verify(part, sha256, size, check, url)
    os.replace(part, dest)
    return dest
