"""Checkpoints: written whole or not at all.

Layout of ``ckpt.step{N}/``::

    model.pdparams     state dict of the model: ``backbone.*`` and ``heads.<task>.*``
    optimizer.pdopt    optimizer and learning-rate scheduler state, keyed by
                       structured parameter names (portable across processes)
    trainer.json       step counters, per-task reader positions, sampler seed
    DONE               written last; a directory without it is not a checkpoint

Everything is written into a temporary sibling directory, then renamed.
"""
import json
import os
import shutil
import tempfile
from typing import Any, Dict, Optional

import paddle
from paddle import nn

from paddlepalm.utils.safe_pickle import load_state_dict

MODEL_FILE = "model.pdparams"
OPTIMIZER_FILE = "optimizer.pdopt"
STATE_FILE = "trainer.json"
DONE_FILE = "DONE"


def save_checkpoint(directory: str, model: nn.Layer, optimizer: Optional[paddle.optimizer.Optimizer] = None,
                    state: Optional[Dict[str, Any]] = None, extra: Optional[Dict[str, Any]] = None,
                    weights: Optional[Dict[str, Any]] = None) -> str:
    """Write ``directory`` atomically. ``weights`` replaces ``model.state_dict()`` (EMA
    weights); ``extra`` maps more file names to objects to save (EMA state)."""
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(directory)}.", dir=parent)
    try:
        paddle.save(model.state_dict() if weights is None else weights, os.path.join(tmp, MODEL_FILE))
        for name, obj in (extra or {}).items():
            paddle.save(obj, os.path.join(tmp, name))
        if optimizer is not None:
            paddle.save(portable_optimizer_state(model, optimizer), os.path.join(tmp, OPTIMIZER_FILE))
        with open(os.path.join(tmp, STATE_FILE), "w", encoding="utf-8") as f:
            json.dump(state or {}, f, indent=1)
        open(os.path.join(tmp, DONE_FILE), "w").close()
        if os.path.exists(directory):
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def is_checkpoint(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, DONE_FILE)) and os.path.isfile(os.path.join(directory, MODEL_FILE))


def load_model_state(directory: str) -> Dict[str, Any]:
    if not is_checkpoint(directory):
        raise FileNotFoundError(f"{directory} is not a complete paddlepalm checkpoint "
                                f"(expected {MODEL_FILE} and {DONE_FILE} in it)")
    # arrays only: a checkpoint from someone else must not be able to run code here
    return load_state_dict(os.path.join(directory, MODEL_FILE))


def load_trainer_state(directory: str) -> Dict[str, Any]:
    path = os.path.join(directory, STATE_FILE)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _param_name_map(model: nn.Layer) -> Dict[str, str]:
    """paddle's unique parameter name -> structured name (``backbone.model...``)."""
    return {param.name: name for name, param in model.named_parameters()}


def portable_optimizer_state(model: nn.Layer, optimizer: paddle.optimizer.Optimizer) -> Dict[str, Any]:
    """Optimizer state keyed by structured names instead of process-specific unique names."""
    by_unique = _param_name_map(model)
    state = {}
    for key, value in optimizer.state_dict().items():
        state[_rename(key, by_unique)] = value
    return state


def restore_optimizer_state(model: nn.Layer, optimizer: paddle.optimizer.Optimizer, directory: str) -> None:
    path = os.path.join(directory, OPTIMIZER_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} missing: the checkpoint holds no optimizer state to resume from")
    by_structured = {v: k for k, v in _param_name_map(model).items()}
    state = {_rename(key, by_structured): value for key, value in paddle.load(path).items()}
    optimizer.set_state_dict(state)


def _rename(key: str, mapping: Dict[str, str]) -> str:
    """Accumulator keys are ``<param name>_<suffix>``; swap the parameter-name prefix."""
    if key in mapping:
        return mapping[key]
    best = None
    for old in mapping:
        if key.startswith(old + "_") and (best is None or len(old) > len(best)):
            best = old
    return key if best is None else mapping[best] + key[len(best):]
