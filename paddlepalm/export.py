"""Export one task of a model as a Paddle 3 inference model (PALM's ``pred.step{N}``).

``export_inference_model`` writes into a directory::

    inference.json       the static program (PIR), from ``paddle.jit.to_static`` + ``paddle.jit.save``
    inference.pdiparams  its weights
    palm_meta.json       task name, inputs (name, dtype, shape; -1 = any size) in feed order,
                         outputs (our name -> Paddle's fetch name), label names

Load it with ``paddle.inference.create_predictor(paddle.inference.Config(json, pdiparams))`` or
``paddle.jit.load(directory + '/inference')``; feed the inputs by name, read the outputs by the
fetch names in ``palm_meta.json``. Nothing in the directory is executed or unpickled to load it.

The inputs are those of a reader batch that the task's prediction outputs depend on (found in the
traced program: labels and pass-through arrays such as ``example_ids`` drop out). The batch and
sequence dimensions are dynamic; other dimensions keep the sample batch's sizes.
"""
import os
import shutil
import tempfile
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import paddle
from paddle import nn

from paddlepalm.evaluation import prediction_mode
from paddlepalm.model import MultiTaskModel, to_tensors
from paddlepalm.utils.fileio import write_json

META_FILE = "palm_meta.json"
MODEL_PREFIX = "inference"
META_VERSION = 1


class _TaskProgram(nn.Layer):
    """``model``'s prediction for ``task`` as a function of a list of arrays (dy2static traces
    positional inputs only). Reader arrays not fed are filled with placeholders: the head only
    passes them through, and outputs that are not fetched are pruned from the saved program."""

    def __init__(self, model: MultiTaskModel, task: str, input_names: List[str], output_names: List[str],
                 placeholders: Mapping[str, str]):
        super().__init__()
        self.model = model
        self.task = task
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self.placeholders = dict(placeholders)

    def forward(self, arrays):
        batch = dict(zip(self.input_names, arrays))
        for name, dtype in self.placeholders.items():
            batch[name] = paddle.zeros([1], dtype=dtype)
        outputs = self.model(self.task, batch)
        return [outputs[name] for name in self.output_names]


def _spec(name: str, array: np.ndarray) -> paddle.static.InputSpec:
    shape = [-1] * min(array.ndim, 2) + list(array.shape[2:])
    return paddle.static.InputSpec(shape, str(array.dtype), name)


def _trace(layer: _TaskProgram, batch: Mapping[str, np.ndarray]):
    specs = [_spec(name, batch[name]) for name in layer.input_names]
    static = paddle.jit.to_static(layer, input_spec=[specs], full_graph=True)
    return static, static.forward.concrete_program


def export_inference_model(model: MultiTaskModel, task: str, sample_batch: Mapping[str, np.ndarray],
                           directory: str, label_names: Optional[List[str]] = None,
                           weights: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Write ``task``'s prediction program and weights to ``directory`` (atomically) and return
    the metadata written to ``palm_meta.json``. ``sample_batch``: one reader batch of the task (a
    training batch will do: labels drop out). ``weights``: a state dict to export instead of the
    model's own (EMA averages); the model is left as it was."""
    batch = {k: np.asarray(v) for k, v in sample_batch.items() if not k.startswith("__")}
    original = None
    if weights is not None:
        original = {k: v.numpy().copy() for k, v in model.state_dict().items()}
        model.set_state_dict(weights)
    try:
        with prediction_mode(model, task):
            reference = model(task, to_tensors(batch))
            output_names = [name for name in reference if name not in batch]
            names = sorted(batch)
            layer = _TaskProgram(model, task, names, output_names, {})
            _, program = _trace(layer, batch)
            used = [name for name, value in zip(names, program.inputs[1]) if not value.use_empty()]
            layer = _TaskProgram(model, task, used, output_names,
                                 {name: str(batch[name].dtype) for name in names if name not in used})
            static, _ = _trace(layer, batch)
            meta = _save(static, directory, task, used, output_names, batch, label_names)
    finally:
        if original is not None:
            model.set_state_dict(original)
    return meta


def _save(static, directory: str, task: str, inputs: List[str], outputs: List[str],
          batch: Mapping[str, np.ndarray], label_names: Optional[List[str]]) -> Dict[str, Any]:
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(directory)}.", dir=parent)
    try:
        paddle.jit.save(static, os.path.join(tmp, MODEL_PREFIX))
        fetch_names = _fetch_names(tmp)
        meta = {"version": META_VERSION, "task": task,
                "model_file": MODEL_PREFIX + ".json", "params_file": MODEL_PREFIX + ".pdiparams",
                "inputs": [{"name": n, "dtype": str(batch[n].dtype), "shape": list(_spec(n, batch[n]).shape)}
                           for n in inputs],
                "outputs": [{"name": n, "fetch_name": f} for n, f in zip(outputs, fetch_names)],
                "label_names": list(label_names) if label_names else None}
        write_json(os.path.join(tmp, META_FILE), meta)
        if os.path.exists(directory):
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _fetch_names(directory: str) -> List[str]:
    """Paddle's names of the saved program's outputs, in the order they were returned."""
    config = paddle.inference.Config(os.path.join(directory, MODEL_PREFIX + ".json"),
                                     os.path.join(directory, MODEL_PREFIX + ".pdiparams"))
    config.disable_gpu()
    config.switch_ir_optim(False)  # only the names are wanted: no optimization passes (and their log)
    config.disable_glog_info()
    return list(paddle.inference.create_predictor(config).get_output_names())
