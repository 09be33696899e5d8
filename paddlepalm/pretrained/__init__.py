"""Loading pretrained weights into a backbone, with a report of what matched.

Formats recognised at ``path`` (a directory or a file):

1. our checkpoints: ``ckpt.step{N}/`` (``model.pdparams`` + ``DONE``), names ``backbone.*``;
2. paddlenlp releases: ``model_state.pdparams`` (or any ``.pdparams`` file);
3. released fluid checkpoints (PALM / ERNIE 1.x / BERT / RoBERTa-zh): ``params/``, a
   directory of one file per variable in the old Paddle tensor format
   (:mod:`.lod_tensor`), renamed by :mod:`.fluid_names`; PALM's own converted
   ``params/__palmmodel__`` archive too;
4. the released Paddle ELMo checkpoint: the same per-variable format with ELMo's
   names, renamed by :mod:`.elmo_names` for a backbone whose ``kind`` is ``'elmo'``.

``.pdparams`` files are unpickled by :mod:`paddlepalm.utils.safe_pickle`, which
refuses anything but arrays and containers.

``path`` may also be a registry name (``'ernie-3.0-medium-zh'``, ``palm ls pretrain``) when
no such path exists: it is downloaded once into the cache (:mod:`paddlepalm.downloader.names`).
"""
import os
import tarfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

import numpy as np
import paddle

from paddlepalm import checkpoint
from paddlepalm.downloader.names import resolve_pretrained
from paddlepalm.pretrained import elmo_names, fluid_names
from paddlepalm.pretrained.lod_tensor import looks_like_tensor_file, read_params_dir, tensor_from_bytes
from paddlepalm.utils.safe_pickle import load_state_dict

PALM_ARCHIVE = "__palmmodel__"
PALM_PREFIX = "__paddlepalm_"

EXPECTED_LAYOUTS = (
    "a paddlepalm checkpoint directory (model.pdparams + DONE), "
    "a paddlenlp model directory (model_state.pdparams) or a .pdparams file, "
    "a released PALM/ERNIE/BERT directory with params/ (one file per variable, old Paddle format), "
    "or a params directory itself (e.g. the Paddle ELMo checkpoint)")


@dataclass
class LoadReport:
    source: str
    format: str = ""
    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[str] = field(default_factory=list)
    scope: str = "backbone"
    zeroed: List[str] = field(default_factory=list)  # absent from the source, set to zeros
    verified: int = 0  # loaded parameters read back after loading and found equal to the source's

    def summary(self) -> str:
        text = (f"loaded {len(self.loaded)} {self.scope} parameters from {self.source} ({self.format}); "
                f"{len(self.missing)} missing, {len(self.unexpected)} unexpected, "
                f"{len(self.mismatched)} with mismatched shapes")
        if self.verified:
            text += f"; all {self.verified} read back equal to the source's values"
        if self.missing:
            text += f"; missing e.g. {self.missing[:3]}"
        if self.zeroed:
            text += f"; not in the source, set to zeros: {self.zeroed}"
        if self.mismatched:
            text += f"; mismatched e.g. {self.mismatched[:3]}"
        return text


@dataclass
class SourceState:
    """Weights renamed to the backbone's names, plus what the source held that maps to nothing."""
    format: str
    state: Dict[str, Any]
    unused: List[str]
    source_names: List[str]


def _listing(path: str) -> str:
    try:
        names = sorted(os.listdir(path))
    except OSError:
        return "nothing readable"
    shown = ", ".join(names[:8]) + (f", ... ({len(names)} entries)" if len(names) > 8 else "")
    return f"[{shown}]" if names else "an empty directory"


def _params_dir_of(path: str):
    """The per-variable directory at ``path`` (``path/params`` or ``path`` itself), if any."""
    for candidate in (os.path.join(path, "params"), path):
        if not os.path.isdir(candidate):
            continue
        if os.path.isfile(os.path.join(candidate, PALM_ARCHIVE)):
            return candidate
        files = [os.path.join(candidate, n) for n in os.listdir(candidate)]
        if any(os.path.isfile(f) and looks_like_tensor_file(f) for f in files):
            return candidate
    return None


def _read_palm_archive(path: str) -> Dict[str, np.ndarray]:
    """PALM's downloader re-packed ``params/`` into a tar of ``__paddlepalm_<name>`` files."""
    out = {}
    with tarfile.open(path, "r") as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = os.path.basename(member.name)
            name = name[len(PALM_PREFIX):] if name.startswith(PALM_PREFIX) else name
            out[name] = tensor_from_bytes(tar.extractfile(member).read())
    return out


def _read_released_params(directory: str) -> Dict[str, np.ndarray]:
    archive = os.path.join(directory, PALM_ARCHIVE)
    return _read_palm_archive(archive) if os.path.isfile(archive) else read_params_dir(directory)


def _strip_backbone_prefix(state: Dict[str, Any]) -> Tuple[Dict[str, Any], List[str]]:
    ours = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    return ours, sorted(k for k in state if not k.startswith("backbone."))


def _from_paddlenlp(state: Dict[str, Any], backbone) -> Dict[str, Any]:
    """paddlenlp names are ``<prefix>.embeddings...`` or ``embeddings...``; ours are ``model.embeddings...``."""
    ours = set(backbone.state_dict())
    out = {}
    for key, value in state.items():
        candidates = [key, "model." + key]
        if "." in key:
            candidates.append("model." + key.split(".", 1)[1])
        for candidate in candidates:
            if candidate in ours:
                out[candidate] = value
                break
        else:
            out[key] = value
    return out


def _from_pdparams(file: str, backbone) -> SourceState:
    raw = load_state_dict(file)
    if any(k.startswith("backbone.") for k in raw):  # our model.pdparams given directly
        state, unused = _strip_backbone_prefix(raw)
        return SourceState("paddlepalm model.pdparams", state, unused, sorted(raw))
    return SourceState("paddlenlp model_state.pdparams", _from_paddlenlp(raw, backbone), [], sorted(raw))


def _from_released(directory: str, backbone) -> SourceState:
    released = _read_released_params(directory)
    if getattr(backbone, "kind", "") == "elmo" or elmo_names.ANCHOR in released:
        names = getattr(backbone, "released_elmo_names", None)
        state, unused = elmo_names.map_elmo_state(released, names)
        return SourceState("Paddle ELMo checkpoint", state, unused, sorted(released))
    state, unused = fluid_names.map_fluid_state(released)
    return SourceState("fluid params/ directory", state, unused, sorted(released))


def read_source_state(path: str, backbone) -> SourceState:
    """Weights at ``path`` keyed by the backbone's own state-dict names, from any supported format."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"pretrained model path does not exist: {path}; expected {EXPECTED_LAYOUTS}")
    if os.path.isfile(path):
        if path.endswith(".pdparams"):
            return _from_pdparams(path, backbone)
        if os.path.basename(path) == PALM_ARCHIVE:
            return _from_released(os.path.dirname(path), backbone)
        raise ValueError(f"cannot load pretrained weights from the file {path}; expected {EXPECTED_LAYOUTS}")
    if checkpoint.is_checkpoint(path):
        state, unused = _strip_backbone_prefix(checkpoint.load_model_state(path))
        return SourceState("paddlepalm checkpoint", state, unused, sorted(state) + unused)
    nlp_file = os.path.join(path, "model_state.pdparams")
    if os.path.isfile(nlp_file):
        return _from_pdparams(nlp_file, backbone)
    params = _params_dir_of(path)
    if params is not None:
        return _from_released(params, backbone)
    pdparams = sorted(n for n in os.listdir(path) if n.endswith(".pdparams"))
    if len(pdparams) == 1:
        return _from_pdparams(os.path.join(path, pdparams[0]), backbone)
    raise FileNotFoundError(f"no pretrained weights found at {path}: expected {EXPECTED_LAYOUTS}; "
                            f"found {_listing(path)}")


def _as_target_dtype(value: Any, target: paddle.Tensor) -> np.ndarray:
    array = np.asarray(value.numpy() if isinstance(value, paddle.Tensor) else value)
    want = paddle.zeros([0], dtype=target.dtype).numpy().dtype
    return array if array.dtype == want else array.astype(want)


def _fill_aliases(own: Dict[str, paddle.Tensor], to_set: Dict[str, np.ndarray], report: LoadReport) -> None:
    """A parameter listed under two names (``paddle.nn.LSTM`` lists ``weight_ih_l0`` and
    ``0.cell.weight_ih``) counts as loaded when either name was."""
    by_param: Dict[int, str] = {}
    for name in to_set:
        by_param[id(own[name])] = name
    for name in list(report.missing):
        loaded_alias = by_param.get(id(own[name]))
        if loaded_alias is not None:
            to_set[name] = to_set[loaded_alias]
            report.missing.remove(name)
            report.loaded.append(name)


def load_pretrained_backbone(backbone, path: str) -> LoadReport:
    """Copy matching weights into ``backbone``; raise if none match. ``path``: a folder or file
    in a format above, or a registry name (downloaded into the cache when not there yet)."""
    path = resolve_pretrained(path)
    source = read_source_state(path, backbone)
    own = backbone.state_dict()
    report = LoadReport(source=path, format=source.format)
    to_set = {}
    for name, target in own.items():
        if name not in source.state:
            report.missing.append(name)
            continue
        value = _as_target_dtype(source.state[name], target)
        if tuple(value.shape) != tuple(target.shape):
            report.mismatched.append(f"{name}: {tuple(value.shape)} vs {tuple(target.shape)}")
            continue
        to_set[name] = value
        report.loaded.append(name)
    _fill_aliases(own, to_set, report)
    for name in getattr(backbone, "zero_if_missing", ()):
        if name in report.missing:  # an optional table the source lacks: adds nothing, as in the source
            to_set[name] = np.zeros(own[name].shape, _as_target_dtype(np.zeros(1), own[name]).dtype)
            report.missing.remove(name)
            report.zeroed.append(name)
    report.unexpected = sorted(set(source.state) - set(own)) + list(source.unused)
    if not report.loaded:
        detail = f"; shape mismatches: {report.mismatched[:3]}" if report.mismatched else ""
        raise ValueError(
            f"no parameter of {path} ({source.format}) matches the {type(backbone).__name__} backbone: "
            f"it expects names like {sorted(own)[:3]}, the source has {len(source.source_names)} entries "
            f"like {source.source_names[:3]}{detail}")
    backbone.set_state_dict(to_set)
    report.verified = _read_back(backbone, to_set, path)
    return report


def _read_back(layer, expected: Dict[str, Any], source: str) -> int:
    """How many of ``expected`` the layer now holds, value for value; an error naming the first
    that it does not (a load that reports success but leaves the weights as they were)."""
    held = layer.state_dict()
    for name, value in expected.items():
        if not np.array_equal(held[name].numpy(), np.asarray(value, dtype=held[name].numpy().dtype)):
            raise RuntimeError(f"loading {source}: {name} does not hold the loaded values after set_state_dict")
    return len(expected)


def load_model_leniently(model, path: str) -> LoadReport:
    """Load whatever parameters of ``model`` (a ``MultiTaskModel``) ``path`` holds, by name:
    all of them from a paddlepalm checkpoint, the backbone's from a pretrained release (any
    format above; the heads are then reported missing). Raises when nothing matched."""
    if not checkpoint.is_checkpoint(path):
        backbone_report = load_pretrained_backbone(model.backbone, path)
        report = LoadReport(source=path, format=backbone_report.format, scope="model",
                            loaded=["backbone." + n for n in backbone_report.loaded],
                            missing=["backbone." + n for n in backbone_report.missing]
                            + [n for n in model.state_dict() if not n.startswith("backbone.")],
                            unexpected=backbone_report.unexpected,
                            mismatched=["backbone." + n for n in backbone_report.mismatched],
                            verified=backbone_report.verified)
        return report
    state = checkpoint.load_model_state(path)
    own = model.state_dict()
    report = LoadReport(source=path, format="paddlepalm checkpoint", scope="model")
    to_set = {}
    for name, target in own.items():
        if name not in state:
            report.missing.append(name)
            continue
        value = _as_target_dtype(state[name], target)
        if tuple(value.shape) != tuple(target.shape):
            report.mismatched.append(f"{name}: {tuple(value.shape)} vs {tuple(target.shape)}")
            continue
        to_set[name] = value
        report.loaded.append(name)
    report.unexpected = sorted(set(state) - set(own))
    if not report.loaded:
        raise ValueError(f"no parameter of the checkpoint {path} matches this model: it expects names like "
                         f"{sorted(own)[:3]}, the checkpoint has {len(state)} entries like {sorted(state)[:3]}"
                         + (f"; shape mismatches: {report.mismatched[:3]}" if report.mismatched else ""))
    model.set_state_dict(to_set)
    report.verified = _read_back(model, to_set, path)
    return report


ADAM_SUFFIXES = ("_moment1_0", "_moment2_0", "_beta1_pow_acc_0", "_beta2_pow_acc_0")


def is_palm_checkpoint(path: str) -> bool:
    """PALM 2.x's ``ckpt.step{N}/``: one file per persistable variable, in the old Paddle format."""
    return os.path.isdir(path) and not checkpoint.is_checkpoint(path) and _params_dir_of(path) == path


def load_palm_checkpoint(model, optimizer, path: str) -> LoadReport:
    """Restore what maps from a PALM ``ckpt.step{N}/`` into ``model`` (a ``MultiTaskModel``): the
    backbone's parameters by their fluid names and, when ``optimizer`` is given (before its first
    step), their Adam moments and beta powers. Everything else (heads, whose PALM names are
    scoped per program, step counters, learning-rate state) is listed as not restored
    (``report.unexpected``). Raises when no parameter matched."""
    released = read_params_dir(path)
    by_fluid_base, unused = {}, []
    prefix = fluid_names.scope_prefix(released)
    for name in released:
        stem = name[len(prefix):] if name.startswith(prefix) else name
        suffix = next((s for s in ADAM_SUFFIXES if stem.endswith(s)), "")
        ours = fluid_names.fluid_to_ours(stem[:len(stem) - len(suffix)])
        if ours is None:
            unused.append(name)
        else:
            by_fluid_base[name] = ("backbone." + ours, suffix)
    own = model.state_dict()
    unique = {structured: param.name for structured, param in model.named_parameters()}
    report = LoadReport(source=path, format="PALM checkpoint (one file per variable)", scope="model")
    params, moments = {}, {}
    for name, (ours, suffix) in by_fluid_base.items():
        value = released[name]
        if ours not in own:
            unused.append(name)
        elif suffix:
            if optimizer is None or ours not in unique:
                unused.append(name)
            else:
                moments[unique[ours] + suffix] = paddle.to_tensor(value)
        elif tuple(value.shape) != tuple(own[ours].shape):
            report.mismatched.append(f"{ours}: {tuple(value.shape)} vs {tuple(own[ours].shape)}")
        else:
            params[ours] = _as_target_dtype(value, own[ours])
    if not params:
        raise ValueError(f"no parameter of the PALM checkpoint {path} matches this model "
                         f"({len(released)} variables like {sorted(released)[:3]})")
    model.set_state_dict(params)
    if moments:
        optimizer.set_state_dict(_complete_adam_state(model, optimizer, moments))
    report.loaded = sorted(params) + sorted(moments)
    report.missing = sorted(n for n in own if n not in params)
    report.unexpected = sorted(unused)
    return report


def _complete_adam_state(model, optimizer, moments: Dict[str, Any]) -> Dict[str, Any]:
    """Paddle wants every accumulator when it is given any: the ones PALM did not hold start as
    Adam starts them (zero moments, beta powers at beta)."""
    betas = {"_beta1_pow_acc_0": getattr(optimizer, "_beta1", 0.9), "_beta2_pow_acc_0": getattr(optimizer, "_beta2", 0.999)}
    state = dict(moments)
    for param in model.parameters():
        if param.stop_gradient:
            continue
        for suffix in ADAM_SUFFIXES:
            key = param.name + suffix
            if key not in state:
                state[key] = (paddle.full([1], float(betas[suffix]), "float32") if suffix in betas
                              else paddle.zeros(param.shape, param.dtype))
    return state
