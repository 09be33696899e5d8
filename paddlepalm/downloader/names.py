"""Pretrained models by registry name, wherever a path to one goes.

``resolve_pretrained('ernie-3.0-medium-zh')`` is what ``Trainer.load_pretrain``,
``<Backbone>.from_pretrained`` and ``palm train`` (``backbone.pretrained``) call:

* a string that is an existing path is that path: a path wins over a name;
* otherwise a registry name (case-insensitive, ``palm ls pretrain``) is downloaded once into
  the cache ``cache_root()/pretrain/<name>/`` with ``download()``'s layout and checks (a
  ``.part`` file resumed with HTTP Range, the sha256 when the registry has it, safe
  extraction, ``.palm_download.json`` written last), and that folder is used; a later use
  finds it complete and makes no request;
* any other string that could be a name (no folder part) is refused with the closest
  registry names; one with a folder part is left to the loader, which reports the missing path.
"""
import contextlib
import os
from dataclasses import dataclass
from typing import Any, Dict, Iterator, Optional

from paddlepalm.downloader import registry as downloader  # the registry and its downloads
from paddlepalm.downloader.fetch import DownloadError

ITEM = "pretrain"
DEFAULT_CACHE = os.path.join("~", ".paddlepalm")
# the backbone class of each registry kind (the ``kind`` of paddlepalm.backbone's classes)
BACKBONE_OF_KIND = {"ernie": "ERNIE", "bert": "BERT", "albert": "ALBERT", "electra": "ELECTRA", "elmo": "ELMo"}
VOCAB = "vocab.txt"


class PretrainedNotFoundError(FileNotFoundError):
    """Neither an existing path nor a registry name (the message suggests the closest names)."""


@dataclass
class ReleaseFiles:
    """What a release folder holds besides its weights (None: not there)."""

    config_file: Optional[str]
    vocab: Optional[str]


def cache_root() -> str:
    """Where named models are downloaded: ``$PALM_HOME``, else ``~/.paddlepalm`` (paddlenlp's
    convention: ``$PPNLP_HOME``, else ``~/.paddlenlp``)."""
    return os.path.abspath(os.path.expanduser(os.environ.get("PALM_HOME") or DEFAULT_CACHE))


def cache_dir(name: str) -> str:
    """The folder of the model ``name`` (its registry spelling) in the cache."""
    return os.path.join(cache_root(), ITEM, name)


def is_name(text: str) -> bool:
    """Could ``text`` be a registry name? Only such strings are looked up, so that a missing
    ``runs/a/best`` stays a missing path rather than an unknown model."""
    return bool(text) and "/" not in text and os.sep not in text and not text.startswith((".", "~", "$"))


def unknown_message(name: str) -> str:
    names = [e["name"] for e in downloader.item_entries(ITEM)]
    return (f"{name!r} is neither an existing path nor a pretrained model name"
            f"{downloader.did_you_mean(name, names)} (`palm ls pretrain` lists the names)")


def named_entry(name_or_path: str) -> Optional[Dict[str, Any]]:
    """The registry entry ``name_or_path`` names; None for an existing path or a path-like
    string. Raises :class:`PretrainedNotFoundError` for a name the registry lacks."""
    if os.path.exists(name_or_path) or not is_name(name_or_path):
        return None
    try:
        return downloader.entry(ITEM, name_or_path)
    except downloader.UnknownNameError:
        raise PretrainedNotFoundError(unknown_message(name_or_path)) from None


def check_kind(entry: Dict[str, Any], kind: str) -> None:
    """Refuse to build a backbone of ``kind`` from a model of another kind (a BERT release
    read as ERNIE would load, wrongly, by name)."""
    if entry["kind"] != kind:
        cls = BACKBONE_OF_KIND.get(entry["kind"])
        use = f"use palm.backbone.{cls}" if cls else f"this version has no {entry['kind']} backbone"
        raise ValueError(f"{entry['name']!r} is a {entry['kind']} model, not {kind}: {use}")


def fetch_entry(entry: Dict[str, Any]) -> str:
    """The cache folder of ``entry``, downloaded first unless it is complete."""
    target = cache_dir(entry["name"])
    if downloader.is_complete(target, entry):
        return target
    with _one_at_a_time(target):
        try:
            return downloader.download(ITEM, entry["name"], cache_root())
        except DownloadError as error:
            raise type(error)(f"pretrained model {entry['name']!r}: {error}. Or, where the network is, run "
                              f"`palm download pretrain {entry['name']} --path DIR` and copy DIR/pretrain/"
                              f"{entry['name']}/ to {target}/") from None


def resolve_pretrained(name_or_path: str, kind: Optional[str] = None) -> str:
    """``name_or_path`` itself when it exists (or has a folder part), else the cache folder of
    the registry model it names, downloaded when needed. ``kind``: the backbone kind the
    caller builds (a named model of another kind is refused)."""
    entry = named_entry(name_or_path)
    if entry is None:
        return name_or_path
    if kind is not None:
        check_kind(entry, kind)
    return fetch_entry(entry)


def release_files(directory: str, kind: str = "") -> ReleaseFiles:
    """The config JSON and vocabulary of a release folder: ``model_config.json`` (paddlenlp
    entries), ``<kind>_config.json`` (PALM / ERNIE / BERT archives), ``config.json``
    (paddlepalm's own checkpoints), ``elmo_config.json`` (an ELMo package); ``vocab.txt``."""
    folder = directory if os.path.isdir(directory) else os.path.dirname(directory)
    names = ["model_config.json", f"{kind}_config.json", "config.json", "elmo_config.json"]
    config = next((os.path.join(folder, n) for n in names if os.path.isfile(os.path.join(folder, n))), None)
    vocab = os.path.join(folder, VOCAB)
    return ReleaseFiles(config, vocab if os.path.isfile(vocab) else None)


@contextlib.contextmanager
def _one_at_a_time(target: str) -> Iterator[None]:
    """Hold an exclusive lock beside ``target`` while it downloads: the processes of a
    distributed job resolve the same name together, and a ``.part`` file takes one writer.
    The ones that waited find the download complete."""
    try:
        import fcntl
    except ImportError:  # no POSIX locks (Windows): one process at a time is up to the user
        yield
        return
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target + ".lock", "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
