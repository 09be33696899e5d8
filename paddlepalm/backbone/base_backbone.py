"""Base class of backbones.

A backbone is a ``paddle.nn.Layer`` that maps a batch of named reader arrays to a
dict of named outputs. Readers look at :attr:`inputs_attr` (via
``reader.register_with(backbone)``) to know which arrays to yield; heads ask for
outputs by the names in :attr:`outputs_attr`.
"""
from typing import Any, Dict, List, Mapping, Optional, Tuple

import paddle
from paddle import nn

# name -> (shape, dtype); -1 marks a dimension that varies from batch to batch.
Attrs = Dict[str, Tuple[List[int], str]]


class Backbone(nn.Layer):
    """Shared encoder of one or more tasks.

    Subclasses set :attr:`kind` (``'ernie'``, ``'bert'``, ...) and implement
    :meth:`inputs_attr`, :meth:`outputs_attr` and :meth:`forward`.
    """

    kind: str = "backbone"
    # Export (paddlepalm.export): why format='onnx' cannot represent this backbone (None: it can),
    # and the name of a part whose trace with a dynamic sequence length can abort the process
    # (ELMo's LSTMP layers): such a backbone is exported in a child process, at a fixed length
    # once a dynamic-length export of that part has failed.
    onnx_refusal: Optional[str] = None
    fragile_export: Optional[str] = None

    def __init__(self, phase: str = "train"):
        super().__init__()
        if phase not in ("train", "predict", "eval"):
            raise ValueError(f"phase must be 'train', 'predict' or 'eval', got {phase!r}")
        self.phase = phase

    @classmethod
    def from_config(cls, config: Mapping[str, Any], phase: str = "train") -> "Backbone":
        """Build from the keys of a released config file (PALM's constructor)."""
        return cls(config, phase=phase)

    @property
    def inputs_attr(self) -> Attrs:
        raise NotImplementedError

    @property
    def outputs_attr(self) -> Attrs:
        raise NotImplementedError

    @property
    def input_limits(self) -> Dict[str, int]:
        """Bounds on what a reader may feed: ``vocab_size`` (token ids must be below it) and
        ``max_position_embeddings`` (sequences at most that long), by their config names.
        ``reader.register_with`` checks them, so a mismatch fails there and names the
        setting instead of failing inside an embedding kernel."""
        return {}

    def forward(self, inputs: Dict[str, paddle.Tensor]) -> Dict[str, paddle.Tensor]:
        raise NotImplementedError

    # Layer-wise learning-rate decay (Optimizer(layerwise_lr_decay=...)) asks each backbone
    # parameter's depth. A backbone that defines it also has ``num_layers``.
    def layer_depth(self, param_name: str) -> int:
        """Depth of the parameter ``param_name`` (its name in this backbone), counted as ELECTRA's
        fine-tuning code counts it: 0 for the embeddings, ``i + 1`` for layer ``i`` (0-based from
        the input), ``num_layers + 1`` for what sits on the top layer (a pooler, ELMo's scalar
        mixes); the heads are at ``num_layers + 2``. Raises ``ValueError`` where depth is not
        defined (the default, and ALBERT, whose layers share parameters)."""
        raise ValueError(f"layer-wise learning-rate decay is not defined for the {self.kind} backbone")

    # Per-task parts of a shared backbone (ELMo's scalar mix). MultiTaskModel calls
    # add_task for every task when it is built and task_outputs after each forward.
    def add_task(self, task: str) -> None:
        """Create the parameters that belong to ``task`` (none by default)."""

    def task_outputs(self, task: str, outputs: Dict[str, paddle.Tensor]) -> Dict[str, paddle.Tensor]:
        """The outputs ``task``'s head sees (the shared outputs by default)."""
        return outputs
