"""Pretrained models: ``ls()`` what the registry offers, ``download()`` it safely, and
``resolve_pretrained()`` a registry name wherever a path to a pretrained model goes.

PALM's API and layout: ``download('pretrain', name, path)`` unpacks into
``{path}/pretrain/{name}/`` and returns that directory, ready for
``trainer.load_pretrain``. The registry is the data file ``registry.json`` beside
this module (regenerate with ``tools/build_registry.py``); :func:`register` adds
entries at run time (an internal model, a test). A name given where a path goes
(``load_pretrain``, ``ERNIE.from_pretrained``, ``backbone.pretrained`` in a palm config)
is downloaded once into the cache ``$PALM_HOME/pretrain/{name}/`` (:mod:`.names`).

Environment:
* ``PALM_HOME``: default download root when ``path`` is not given (else ``.``), and the
  cache of models named by their registry name (else ``~/.paddlepalm``).
* ``PALM_DOWNLOAD_MIRROR``: base URL replacing scheme and host of every upstream
  URL, the path kept (``https://bj.bcebos.com/paddlenlp/x/vocab.txt`` ->
  ``$PALM_DOWNLOAD_MIRROR/paddlenlp/x/vocab.txt``), so a team can mirror files
  with the same names and folders.
* ``PALM_DOWNLOAD_TIMEOUT`` (seconds, default 30), ``PALM_DOWNLOAD_RETRIES`` (default 4).
"""
from paddlepalm.downloader.fetch import ChecksumError, DownloadError
from paddlepalm.downloader.extract import UnsafeArchiveError
from paddlepalm.downloader.names import PretrainedNotFoundError, cache_root, resolve_pretrained
from paddlepalm.downloader.registry import MARKER, UnknownNameError, download, entry, ls, private_registry, register

__all__ = ["ls", "download", "register", "entry", "private_registry", "resolve_pretrained", "cache_root", "DownloadError",
           "ChecksumError", "UnsafeArchiveError", "UnknownNameError", "PretrainedNotFoundError"]
