"""``backbone.pretrained: ernie-3.0-medium-zh``: a pretrained model's registry name in a config.

A value that is no existing path but a registry name (``palm ls pretrain``) is resolved while
the config is: the model is downloaded into the cache once (:mod:`paddlepalm.downloader.names`)
and completes the config, so that one line is enough:

* ``backbone.pretrained``: the cache folder;
* ``backbone.kind``: the model's backbone class, unless the config names one (another is an error);
* ``backbone.config_file``: the release's config JSON unless given (``backbone.config`` keys
  still apply over it); an ELMo release without one gets the registry's architecture as
  ``backbone.config``;
* each task's ``vocab``: the release's ``vocab.txt`` unless given.

The run directory's ``config.yaml`` records these paths, so ``palm eval``, ``palm export`` and
``palm train --resume`` rebuild the model from the cache without the network.
"""
from typing import Any, Dict

from paddlepalm import downloader
from paddlepalm.cli.backbone_keys import BACKBONE_KEYS, Path
from paddlepalm.downloader import names

PRETRAINED: Path = ("backbone", "pretrained")


def supply_from_name(data: Dict[str, Any], origins: Dict[Path, str], checker) -> None:
    """Resolve a name in ``backbone.pretrained`` and fill what the config leaves out (see above)."""
    spec = data["backbone"]
    name = spec["pretrained"]
    if name is None or not names.is_name(name):  # no name: a path, absolute by now
        return
    try:
        entry = downloader.entry(names.ITEM, name)
    except downloader.UnknownNameError:
        raise checker.fail(PRETRAINED, names.unknown_message(name)) from None
    spec["kind"] = _backbone_kind(spec, entry, origins, checker)
    spec["pretrained"] = names.fetch_entry(entry)
    files = names.release_files(spec["pretrained"], entry["kind"])
    supplied = []
    if spec["config_file"] is None and files.config_file is not None:
        spec["config_file"] = files.config_file
        supplied.append(("backbone", "config_file"))
    elif spec["config_file"] is None and not spec["config"] and entry.get("architecture"):
        spec["config"] = {k: v for k, v in entry["architecture"].items() if k in BACKBONE_KEYS[spec["kind"]]}
        supplied.append(("backbone", "config"))
    for task_name, task in data["tasks"].items():
        if task["vocab"] is None and files.vocab is not None:
            task["vocab"] = files.vocab
            supplied.append(("tasks", task_name, "vocab"))
    for path in supplied:  # a problem with a supplied value points at the name
        origins[path] = origins.get(PRETRAINED, "backbone.pretrained")


def _backbone_kind(spec: Dict[str, Any], entry: Dict[str, Any], origins: Dict[Path, str], checker) -> str:
    wanted = names.BACKBONE_OF_KIND.get(entry["kind"])
    if wanted is None:
        raise checker.fail(PRETRAINED, f"{entry['name']!r} is a {entry['kind']} model; this version of paddlepalm "
                                       f"has no {entry['kind']} backbone")
    if ("backbone", "kind") in origins and spec["kind"] != wanted:
        raise checker.fail(("backbone", "kind"), f"{spec['kind']}, but backbone.pretrained {entry['name']!r} is a "
                                                 f"{wanted} model: set kind: {wanted}, or leave kind out")
    return wanted
