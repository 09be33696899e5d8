"""Every random generator a training run draws from, captured as JSON and restored.

A resumed run continues bit-identically only if each draw after the resume equals
the draw the uninterrupted run made. The draws come from Paddle's generator
(parameter initialisation, Paddle's dropout, and the seeds of the CPU dropout
layer in ``utils/cpu_speed.py``), numpy's and Python's global generators (user
code, third-party layers), and generators owned by components: a layer with
``random_state()`` / ``set_random_state(state)`` (the biLM head's sampled softmax)
is saved under its structured name. Readers and a static task schedule need no state:
their draws are functions of (seed, epoch, position), which the checkpoint holds; a dynamic
schedule's decisions and observations are in ``trainer.json`` (``engine.Plan.state``).
"""
import random
from typing import Any, Dict, List

import numpy as np
import paddle
from paddle import nn


def _generator_state_to_json(state) -> Dict[str, Any]:
    device, seed, offset, engine = state.__getstate__()
    return {"device": device, "seed": seed, "offset": offset, "engine": bytes(engine).decode("latin-1")}


def _generator_state_from_json(template, data: Dict[str, Any]):
    cls = type(template)
    state = cls.__new__(cls)
    state.__setstate__((int(data["device"]), int(data["seed"]), int(data["offset"]),
                        list(data["engine"].encode("latin-1"))))
    return state


def _paddle_states(device: str) -> List[Dict[str, Any]]:
    return [_generator_state_to_json(s) for s in paddle.get_rng_state(device)]


def _set_paddle_states(device: str, states: List[Dict[str, Any]]) -> None:
    current = paddle.get_rng_state(device)
    if len(current) != len(states):
        raise ValueError(f"checkpoint holds {len(states)} {device} generator states, this process has {len(current)}")
    paddle.set_rng_state([_generator_state_from_json(c, s) for c, s in zip(current, states)], device)


def random_state_to_json(generator: np.random.RandomState) -> Dict[str, Any]:
    """A numpy ``RandomState``'s state as JSON-able data."""
    kind, keys, pos, has_gauss, cached = generator.get_state()
    return {"kind": kind, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached)}


def set_random_state_from_json(generator: np.random.RandomState, data: Dict[str, Any]) -> None:
    generator.set_state((data["kind"], np.asarray(data["keys"], dtype=np.uint32), data["pos"],
                         data["has_gauss"], data["cached_gaussian"]))


def capture(model: nn.Layer) -> Dict[str, Any]:
    """The state of every generator, JSON-serialisable."""
    version, internal, gauss = random.getstate()
    state = {"paddle_cpu": _paddle_states("cpu"), "numpy": random_state_to_json(np.random.mtrand._rand),
             "python": {"version": version, "state": list(internal), "gauss": gauss},
             "layers": {name: layer.random_state() for name, layer in model.named_sublayers()
                        if hasattr(layer, "random_state")}}
    if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        state["paddle_gpu"] = _paddle_states("gpu")
    return state


def restore(state: Dict[str, Any], model: nn.Layer) -> None:
    """Put every generator back where :func:`capture` found it."""
    _set_paddle_states("cpu", state["paddle_cpu"])
    if "paddle_gpu" in state and paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        _set_paddle_states("gpu", state["paddle_gpu"])
    set_random_state_from_json(np.random.mtrand._rand, state["numpy"])
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    layers = dict(model.named_sublayers())
    for name, layer_state in state.get("layers", {}).items():
        if name not in layers or not hasattr(layers[name], "set_random_state"):
            raise ValueError(f"checkpoint holds the random state of layer {name!r}, which this model lacks")
        layers[name].set_random_state(layer_state)
