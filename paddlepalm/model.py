"""The network a trainer optimizes: one backbone shared by the heads of all tasks."""
from typing import Dict, Mapping, Optional

import numpy as np
import paddle
from paddle import nn

from paddlepalm.backbone.base_backbone import Backbone
from paddlepalm.head.base_head import Head
from paddlepalm.utils.cpu_speed import accelerate


class MultiTaskModel(nn.Layer):
    """``forward(task, batch)`` runs the shared backbone and ``task``'s head.

    Parameters are named ``backbone.*`` and ``heads.<task>.*``; a task whose head
    is reused from another task (``reuse_head_with``) has no parameters of its own.
    """

    def __init__(self, backbone: Backbone, heads: Mapping[str, Head],
                 head_aliases: Optional[Mapping[str, str]] = None):
        super().__init__()
        self.backbone = backbone
        self.heads = nn.LayerDict(dict(heads))
        self.head_aliases = dict(head_aliases or {})
        check_head_inputs(backbone, heads)
        for task in heads:
            backbone.add_task(task)
        # a visible choice: on CPU, layers that route around slow Paddle CPU kernels (utils/cpu_speed.py)
        self.cpu_layers = accelerate(self)

    def extra_repr(self) -> str:
        swapped = ", ".join(f"{kind} x{count}" for kind, count in sorted(self.cpu_layers.items()))
        return f"cpu_layers: {swapped or 'none'} (PALM_CPU_KERNELS)"

    def head_of(self, task: str) -> Head:
        return self.heads[self.head_aliases.get(task, task)]

    def forward(self, task: str, batch: Mapping[str, paddle.Tensor]) -> Dict[str, paddle.Tensor]:
        head_task = self.head_aliases.get(task, task)
        head = self.heads[head_task]
        batch = head.prepare_inputs(dict(batch), self.backbone)
        backbone_outputs = self.backbone.task_outputs(head_task, self.backbone(batch))
        return head(batch, backbone_outputs)

    def forward_tasks(self, batches: Mapping[str, Mapping[str, paddle.Tensor]]) -> Dict[str, Dict[str, paddle.Tensor]]:
        """Several tasks' heads on the same examples: ``batches`` maps each task to its batch (the
        same backbone inputs, each task's own labels). The backbone runs once, on the first task's
        batch; every head reads its outputs. One task: the same as ``forward``."""
        tasks = list(batches)
        if len(tasks) == 1:
            return {tasks[0]: self(tasks[0], batches[tasks[0]])}
        first = self.head_aliases.get(tasks[0], tasks[0])
        shared = self.heads[first].prepare_inputs(dict(batches[tasks[0]]), self.backbone)
        encoded = self.backbone(shared)
        results = {}
        for task in tasks:
            head_task = self.head_aliases.get(task, task)
            batch = shared if task == tasks[0] else dict(batches[task])
            results[task] = self.heads[head_task](batch, self.backbone.task_outputs(head_task, encoded))
        return results


def check_head_inputs(backbone: Backbone, heads: Mapping[str, Head]) -> None:
    """Every head's backbone inputs are among the backbone's outputs: else an error naming them when
    the model is built (a ``Match`` head on ELMo, which has no ``sentence_pair_embedding``), not a
    ``KeyError`` at the first step. Backbones or heads that declare no attributes are not checked."""
    try:
        given = set(backbone.outputs_attr)
    except NotImplementedError:
        return
    for task, head in heads.items():
        try:
            needed = head.inputs_attrs.get("backbone", {})
        except NotImplementedError:
            continue
        missing = sorted(set(needed) - given)
        if missing:
            raise ValueError(f"task {task}: the {type(head).__name__} head needs backbone outputs {missing} that "
                             f"{type(backbone).__name__} does not give (it gives {sorted(given)})")


def share_parameters(source: nn.Layer, target: nn.Layer) -> int:
    """Make each parameter of ``target`` the very tensor of ``source``'s parameter of the same
    name, shape and dtype; returns how many are shared. A Trainer's prediction model shares its
    training model's weights this way, as PALM's two programs did through one scope (a parameter
    name was one variable): predicting during or after training uses the weights trained so far."""
    own = dict(source.named_parameters())
    layers = dict(target.named_sublayers(include_self=True))
    shared = 0
    for name, param in list(target.named_parameters()):
        src = own.get(name)
        if src is None or src is param or tuple(src.shape) != tuple(param.shape) or src.dtype != param.dtype:
            continue
        prefix, _, attr = name.rpartition(".")
        setattr(layers[prefix], attr, src)
        shared += 1
    return shared


def to_tensors(batch: Mapping[str, np.ndarray]) -> Dict[str, paddle.Tensor]:
    return {name: paddle.to_tensor(value) for name, value in batch.items()}
