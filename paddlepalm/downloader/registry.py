"""The registry of downloadable models and the safe download of an entry (``ls``, ``download``,
``register``, ``entry``); :mod:`paddlepalm.downloader` is the public face."""
import contextlib
import copy
import difflib
import os
import pathlib
import sys
from typing import Any, Dict, Iterator, List, Optional
from urllib.parse import urlparse

from paddlepalm.downloader.extract import check_readable, safe_extract
from paddlepalm.downloader.fetch import DownloadError, fetch
from paddlepalm.utils.fileio import read_json, read_text, write_json
from paddlepalm.utils.safe_pickle import check_pickle



REGISTRY_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "registry.json")
MARKER = ".palm_download.json"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")

_registry: Optional[Dict[str, List[Dict[str, Any]]]] = None


class UnknownNameError(KeyError):
    """An item or entry name the registry does not have; the message suggests the closest ones."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


def did_you_mean(name: str, names: List[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``names`` (case-insensitive), else ``""``."""
    by_lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6)
    if not close:
        return ""
    shown = [repr(by_lower[c]) for c in close]
    return "; did you mean " + (f"{', '.join(shown[:-1])} or " if len(shown) > 1 else "") + shown[-1] + "?"


@contextlib.contextmanager
def private_registry() -> Iterator[None]:
    """Entries registered inside the block are forgotten after it (tests; a script's temporary
    entries): the registry is a private copy for the duration."""
    global _registry
    saved = _registry
    _registry = copy.deepcopy(_items())
    try:
        yield
    finally:
        _registry = saved


def _items() -> Dict[str, List[Dict[str, Any]]]:
    global _registry
    if _registry is None:
        _registry = read_json(REGISTRY_FILE)["items"]
    return _registry


def register(item: str, new_entry: Dict[str, Any]) -> None:
    """Add (or replace, by name) an entry: ``name``, ``kind``, ``format``, ``files`` (``url``,
    optional ``save_as``, ``sha256``, ``size``), optional ``config`` + ``config_file``."""
    for key in ("name", "kind", "files"):
        if key not in new_entry:
            raise KeyError(f"registry entry lacks {key!r}: {new_entry}")
    entries = _items().setdefault(item.lower(), [])
    entries[:] = [e for e in entries if e["name"].lower() != new_entry["name"].lower()] + [copy.deepcopy(new_entry)]


def item_entries(item: str) -> List[Dict[str, Any]]:
    items = _items()
    if item.lower() not in items:
        raise UnknownNameError(f"{item!r} is not a download item{did_you_mean(item, list(items))} "
                               f"(items: {', '.join(sorted(items))})")
    return items[item.lower()]


def entry(item: str, name: str) -> Dict[str, Any]:
    """The registry entry ``name`` (case-insensitive) of ``item``; :class:`UnknownNameError` otherwise."""
    entries = item_entries(item)
    for candidate in entries:
        if candidate["name"].lower() == name.lower():
            return candidate
    raise UnknownNameError(f"{name!r} is not in the {item.lower()} registry"
                           f"{did_you_mean(name, [e['name'] for e in entries])} (`palm ls {item.lower()}` lists "
                           f"the names)")


def _size_text(e: Dict[str, Any]) -> str:
    exact = [f.get("size") for f in e["files"]]
    if all(s is not None for s in exact):
        total, mark = sum(exact), ""
    elif e.get("size_bytes_estimate"):
        total, mark = e["size_bytes_estimate"], "~"
    else:
        return "size ?"
    if total >= 1e9:
        return f"{mark}{total / 1e9:.1f} GB"
    if total >= 1e6:
        return f"{mark}{total / 1e6:.0f} MB"
    return f"{mark}{total / 1e3:.0f} KB"


def ls(item: str = "all", scope: str = "all") -> List[Dict[str, Any]]:
    """Print the available entries (name, backbone kind, size, format) and return them."""
    items = _items()
    names = sorted(items) if item == "all" else [item.lower()]
    shown = []
    for name in names:
        entries = item_entries(name) if scope == "all" else [entry(name, scope)]
        print(f"Available {name} items:")
        for e in entries:
            print(f"  => {e['name']:<42} {e['kind']:<8} {_size_text(e):>9}  {e.get('format', '')}")
            shown.append(e)
    return shown


# where a repository-relative URL (a model shipped in paddlepalm's repository) is found without a mirror
REPOSITORY_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def in_repository(url: str) -> bool:
    """A registry URL with no scheme names a file of paddlepalm's own repository
    (``pretrain_models/<name>/model.pdparams``): the models pretrained by this project,
    which have no other host."""
    return not urlparse(url).scheme


def mirrored(url: str) -> str:
    """The URL to fetch: ``PALM_DOWNLOAD_MIRROR``'s copy when set (same path); else the upstream
    URL, or for a repository-relative URL the file in the checkout this package runs from."""
    mirror = os.environ.get("PALM_DOWNLOAD_MIRROR", "").strip()
    if in_repository(url):
        if mirror:
            return mirror.rstrip("/") + "/" + url.lstrip("/")
        local = os.path.join(REPOSITORY_ROOT, *url.split("/"))
        if not os.path.isfile(local):
            raise DownloadError(f"{url} ships in paddlepalm's repository, and this installation is not a "
                                f"checkout of it ({local} is missing): install from a clone of the repository, "
                                f"or serve a clone's root over HTTP and set PALM_DOWNLOAD_MIRROR to its URL")
        return pathlib.Path(local).as_uri()
    if not mirror:
        return url
    return mirror.rstrip("/") + urlparse(url).path


def _is_archive(filename: str) -> bool:
    return filename.endswith(ARCHIVE_SUFFIXES)


def _check_for(filename: str):
    """How to tell that a downloaded file reads."""
    if _is_archive(filename):
        return check_readable
    if filename.endswith((".pdparams", ".pdopt")):
        return check_pickle
    if filename.endswith(".json"):
        return read_json
    if filename.endswith(".txt"):
        return read_text
    return None


def is_complete(target: str, e: Dict[str, Any]) -> bool:
    try:
        done = read_json(os.path.join(target, MARKER))
    except (OSError, ValueError):
        return False
    return done.get("name") == e["name"] and done.get("files") == e["files"]


def _download_entry(item: str, e: Dict[str, Any], root: str, timeout: float, retries: int,
                    backoff: float) -> str:
    target = os.path.join(root, item, e["name"])
    if is_complete(target, e):
        print(f"{item} {e['name']} already downloaded in {target}", file=sys.stderr)
        return target
    os.makedirs(target, exist_ok=True)
    print(f"Downloading {item}: {e['name']} into {target}", file=sys.stderr)
    for spec in e["files"]:
        url = mirrored(spec["url"])
        upstream_name = os.path.basename(urlparse(spec["url"]).path)
        local_name = upstream_name if _is_archive(upstream_name) else spec.get("save_as", upstream_name)
        dest = os.path.join(target, local_name)
        fetch(url, dest, sha256=spec.get("sha256"), size=spec.get("size"), check=_check_for(local_name),
              timeout=timeout, retries=retries, backoff=backoff, upstream=spec["url"])
        if _is_archive(local_name):
            print(f"Extracting {local_name}", file=sys.stderr)
            try:
                safe_extract(dest, target)
            finally:
                os.remove(dest)  # extracted, or refused as unsafe: either way not kept
    if e.get("config"):
        write_json(os.path.join(target, e.get("config_file", "model_config.json")), e["config"])
    write_json(os.path.join(target, MARKER), {"name": e["name"], "files": e["files"]})
    return target


def download(item: str, scope: str = "all", path: Optional[str] = None, *, timeout: Optional[float] = None,
             retries: Optional[int] = None, backoff: float = 1.0) -> str:
    """Fetch ``scope`` (an entry name, or ``'all'``) of ``item`` into ``{path}/{item}/{name}/``.

    Returns the entry's directory (``{path}/{item}`` for ``'all'``). A complete
    earlier download is skipped; an interrupted one resumes.
    """
    root = path if path is not None else os.environ.get("PALM_HOME", ".")
    timeout = float(os.environ.get("PALM_DOWNLOAD_TIMEOUT", 30)) if timeout is None else timeout
    retries = int(os.environ.get("PALM_DOWNLOAD_RETRIES", 4)) if retries is None else retries
    item = item.lower()
    entries = item_entries(item)
    if scope != "all":
        return _download_entry(item, entry(item, scope), root, timeout, retries, backoff)
    for e in entries:
        _download_entry(item, e, root, timeout, retries, backoff)
    return os.path.join(root, item)
