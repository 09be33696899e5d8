"""Load ``.pdparams`` (a pickle) without running code from the file.

``paddle.load`` uses plain ``pickle``: a crafted file can run any command through
``__reduce__``. A state dict needs only numpy arrays and containers, so the
unpickler below resolves just those globals and refuses everything else.
"""
import pickle
from typing import Any, Dict

import numpy as np

_ALLOWED = {
    ("collections", "OrderedDict"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("builtins", "tuple"),
    ("builtins", "list"),
    ("builtins", "dict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "slice"),
    ("_codecs", "encode"),  # protocol-2 pickles store numpy byte buffers through it
}
_NAME_TABLE_KEY = "StructuredToParameterName@@"
_BIG_PARAM_KEY = "UnpackBigParamInfor@@"  # paddle splits big arrays when pickling with protocol 2/3


class UnsafePickleError(pickle.UnpicklingError):
    pass


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"refused to load {module}.{name}: a state dict holds only arrays and containers, "
            f"so this file may try to run code")


def safe_load(path: str) -> Any:
    with open(path, "rb") as f:
        try:
            return _RestrictedUnpickler(f).load()
        except UnsafePickleError as err:
            raise UnsafePickleError(f"{path}: {err}") from None


def _to_array(value: Any) -> Any:
    # Paddle 2.x pickled tensors as (name, ndarray) tuples.
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) \
            and isinstance(value[1], np.ndarray):
        return value[1]
    return value


def load_state_dict(path: str) -> Dict[str, Any]:
    """A ``paddle.save``'d state dict as ``{name: numpy array}``, loaded safely."""
    obj = safe_load(path)
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a state dict")
    state = {k: _to_array(v) for k, v in obj.items() if k != _NAME_TABLE_KEY}
    info = state.pop(_BIG_PARAM_KEY, None)
    if info:
        for key, spec in info.items():
            parts = [state.pop(part) for part in spec["slices"]]
            state[key] = np.concatenate(parts).reshape(spec["OriginShape"])
    return state


def check_pickle(path: str) -> None:
    """Walk the pickle's opcodes to its STOP without building objects (cheap for big files);
    raises if the stream is truncated or malformed."""
    import pickletools

    with open(path, "rb") as f:
        last = None
        for last, _, _ in pickletools.genops(f):
            pass
    if last is None or last.name != "STOP":
        raise ValueError(f"{path}: pickle stream does not end with STOP")
