"""Loading pretrained weights into a backbone, with a report of what matched."""
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List

import numpy as np
import paddle

from paddlepalm import checkpoint


@dataclass
class LoadReport:
    source: str
    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"loaded {len(self.loaded)} backbone parameters from {self.source}; "
                f"{len(self.missing)} missing, {len(self.unexpected)} unexpected, "
                f"{len(self.mismatched)} with mismatched shapes")
        if self.missing:
            text += f"; missing e.g. {self.missing[:3]}"
        if self.mismatched:
            text += f"; mismatched e.g. {self.mismatched[:3]}"
        return text


def read_backbone_state(path: str, backbone) -> Dict[str, Any]:
    """Weights keyed by the backbone's own state-dict names, from any supported format."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"pretrained model path does not exist: {path}")
    if os.path.isdir(path) and checkpoint.is_checkpoint(path):
        state = checkpoint.load_model_state(path)
        return {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    file = os.path.join(path, "model_state.pdparams") if os.path.isdir(path) else path
    if os.path.isfile(file) and file.endswith(".pdparams"):
        return _from_paddlenlp(paddle.load(file), backbone)
    raise FileNotFoundError(
        f"no pretrained weights found at {path}: expected a paddlepalm checkpoint "
        f"(model.pdparams + DONE) or a paddlenlp model_state.pdparams")


def _from_paddlenlp(state: Dict[str, Any], backbone) -> Dict[str, Any]:
    """paddlenlp names are ``<prefix>.embeddings...`` or ``embeddings...``; ours are ``model.embeddings...``."""
    ours = set(backbone.state_dict())
    out = {}
    for key, value in state.items():
        candidates = ["model." + key]
        if "." in key:
            candidates.append("model." + key.split(".", 1)[1])
        for candidate in candidates:
            if candidate in ours:
                out[candidate] = value
                break
        else:
            out[key] = value
    return out


def load_pretrained_backbone(backbone, path: str) -> LoadReport:
    """Copy matching weights into ``backbone``; raise if none match."""
    state = read_backbone_state(path, backbone)
    own = backbone.state_dict()
    report = LoadReport(source=path)
    to_set = {}
    for name, target in own.items():
        if name not in state:
            report.missing.append(name)
            continue
        value = np.asarray(state[name].numpy() if isinstance(state[name], paddle.Tensor) else state[name])
        if tuple(value.shape) != tuple(target.shape):
            report.mismatched.append(f"{name}: {tuple(value.shape)} vs {tuple(target.shape)}")
            continue
        to_set[name] = value.astype(str(target.numpy().dtype)) if value.dtype != target.numpy().dtype else value
        report.loaded.append(name)
    report.unexpected = sorted(set(state) - set(own))
    if not report.loaded:
        raise ValueError(
            f"no parameter of {path} matches the {type(backbone).__name__} backbone: it expects names like "
            f"{sorted(own)[:3]}, the file has {sorted(state)[:3]}")
    backbone.set_state_dict(to_set)
    return report
