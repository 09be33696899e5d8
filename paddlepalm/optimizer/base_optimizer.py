"""Optimizers with PALM's ``(loss_var, lr, lr_schedualer)`` signature.

In a dynamic graph there is no loss variable to minimize: ``loss_var`` is what
``build_forward`` returned (the model), kept for the contract. The paddle
optimizer itself is made by the trainer's ``build_backward`` through
:meth:`build`, once the trainable parameters are known.

Learning rate of a parameter: the (scheduled) ``lr``, times ``backbone_lr_multiplier``
for a backbone parameter or its task's ``Trainer(lr_multiplier=...)`` for a head
parameter, times the layer-wise factor (``layerwise_lr_decay``), times the
``ParamAttr(learning_rate=...)`` the parameter was created with (SequenceLabel's
CRF transitions). The product is put in the parameter's ``optimize_attr``, which
every paddle optimizer multiplies into its learning rate (``lr_ratio``, the other
way, is not implemented on CPU).
"""
import math
import numbers
from typing import Any, Callable, Dict, List, Mapping, Optional

import paddle
from paddle import nn

from paddlepalm.backbone.base_backbone import Backbone
from paddlepalm.lr_sched.schedualer import Schedualer
from paddlepalm.optimizer.ema import ExponentialMovingAverage


def no_decay_names(model: nn.Layer) -> set:
    """Parameter names exempt from weight decay: every bias and layer-norm parameter."""
    exempt = set()
    for sublayer_name, sublayer in model.named_sublayers(include_self=True):
        for name, param in sublayer.named_parameters(include_sublayers=False):
            if isinstance(sublayer, nn.LayerNorm) or name == "bias" or "norm" in name.lower():
                exempt.add(param.name)
    return exempt


def create_all_state(optimizer: paddle.optimizer.Optimizer) -> None:
    """Create every parameter's accumulators (zero moments, initial beta powers) now.

    Paddle creates them lazily at a parameter's first update, so in a multi-task run
    the heads that have not stepped yet would be missing from a checkpoint and a
    resume could not restore the optimizer exactly. Creating them up front changes
    no update: a parameter without a gradient is still skipped."""
    block = paddle.static.default_main_program().global_block()
    optimizer._create_accumulators(block, [p for p in optimizer._parameter_list if not p.stop_gradient])


def positive_finite(name: str, value: Any, allow_none: bool = False) -> Optional[float]:
    """``value`` as a float; ``ValueError`` naming ``name`` unless it is a positive finite number
    (or None, with ``allow_none``)."""
    if value is None and allow_none:
        return None
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number{' or None' if allow_none else ''}, got {value!r}")
    return float(value)


def own_learning_rate(param: paddle.Tensor) -> float:
    """The ``ParamAttr(learning_rate=...)`` ``param`` was created with. Recorded at its first
    use, because :func:`set_learning_rates` overwrites ``optimize_attr``; a second optimizer
    over the same parameters then starts from the same value."""
    if not hasattr(param, "_palm_own_lr"):
        param._palm_own_lr = float(param.optimize_attr.get("learning_rate", 1.0))
    return param._palm_own_lr


def set_learning_rates(model: nn.Layer, multipliers: Mapping[str, float]) -> None:
    """Give each parameter named in ``multipliers`` the learning-rate factor
    ``own_learning_rate(param) * multipliers[name]``."""
    for name, param in model.named_parameters():
        if name in multipliers:
            param.optimize_attr["learning_rate"] = own_learning_rate(param) * multipliers[name]


class Optimizer:
    """Base of :class:`Adam`, :class:`AdamW`, :class:`LAMB`.

    ``grad_clip_norm``: clip the gradient of each update by its global norm (None: no
    clipping). ``backbone_lr_multiplier``: scales the learning rate of every backbone
    parameter (a head's is scaled by its ``Trainer(lr_multiplier=...)``).
    ``layerwise_lr_decay=d`` (``0 < d <= 1``): the backbone parameter at depth ``k``
    (:meth:`Backbone.layer_depth`: 0 embeddings, ``i + 1`` layer ``i``, ``L + 1`` the pooler,
    with ``L`` layers) gets ``d ** (L + 2 - k)``, the heads 1: ELECTRA's fine-tuning rule
    (``_get_layer_lrs`` in google-research/electra ``model/optimization.py``; the paper fine-tunes
    with 0.8 for Small and Base, 0.9 for Large), under which the top layer gets ``d ** 2`` and the embeddings ``d ** (L + 2)``.
    """

    default_weight_decay = 0.0

    def __init__(self, loss_var, lr: float, lr_schedualer: Optional[Schedualer] = None,
                 grad_clip_norm: Optional[float] = 1.0, *, backbone_lr_multiplier: float = 1.0,
                 layerwise_lr_decay: Optional[float] = None):
        self.loss_var = loss_var
        self.lr = positive_finite("lr", lr)
        self.lr_schedualer = lr_schedualer
        self.grad_clip_norm = positive_finite("grad_clip_norm", grad_clip_norm, allow_none=True)
        self.backbone_lr_multiplier = positive_finite("backbone_lr_multiplier", backbone_lr_multiplier)
        decay = positive_finite("layerwise_lr_decay", layerwise_lr_decay, allow_none=True)
        if decay is not None and decay > 1:
            raise ValueError(f"layerwise_lr_decay must be in (0, 1] or None, got {layerwise_lr_decay!r}")
        self.layerwise_lr_decay = decay
        self.weight_decay: Optional[float] = None  # set by build
        self.lr_scheduler: Optional[paddle.optimizer.lr.LRScheduler] = None  # set by build (the schedule's)
        self.ema: Optional[ExponentialMovingAverage] = None  # set by build(use_ema=True)

    def settings(self) -> Dict[str, Any]:
        """What this optimizer was made with; every checkpoint's ``trainer.json`` records it."""
        return {"type": type(self).__name__, "lr": self.lr, "grad_clip_norm": self.grad_clip_norm,
                "backbone_lr_multiplier": self.backbone_lr_multiplier,
                "layerwise_lr_decay": self.layerwise_lr_decay, "weight_decay": self.weight_decay}

    def _learning_rate(self):
        if self.lr_schedualer is None:
            return self.lr
        self.lr_scheduler = self.lr_schedualer.build(self.lr)
        return self.lr_scheduler

    def _grad_clip(self):
        if self.grad_clip_norm is None:
            return None
        return paddle.nn.ClipGradByGlobalNorm(self.grad_clip_norm)

    def lr_multipliers(self, model: nn.Layer,
                       head_lr_multipliers: Optional[Mapping[str, float]] = None) -> Dict[str, float]:
        """Each trainable parameter's factor on the scheduled learning rate, by structured name
        (``backbone.*``, ``heads.<task>.*``), before its own ``ParamAttr`` learning rate.
        ``head_lr_multipliers``: ``{task: lr_multiplier}`` for the heads of ``model``."""
        heads = dict(head_lr_multipliers or {})
        backbone = getattr(model, "backbone", None)
        trainable = [(name, p) for name, p in model.named_parameters() if not p.stop_gradient]
        if not isinstance(backbone, Backbone):
            if self.backbone_lr_multiplier != 1.0 or self.layerwise_lr_decay is not None or heads:
                raise ValueError("backbone_lr_multiplier, layerwise_lr_decay and lr_multiplier need the model "
                                 "that build_forward returns (a backbone and heads)")
            return {name: 1.0 for name, _ in trainable}
        unknown = sorted(set(heads) - set(model.heads.keys()))
        if unknown:
            raise ValueError(f"lr_multiplier given for {unknown}, which have no head of their own in this model "
                             f"(heads: {sorted(model.heads.keys())})")
        multipliers = {}
        for name, _ in trainable:
            scope, _, rest = name.partition(".")
            if scope == "backbone":
                factor = self.backbone_lr_multiplier
                if self.layerwise_lr_decay is not None:
                    factor *= self.layerwise_lr_decay ** (backbone.num_layers + 2 - backbone.layer_depth(rest))
            else:
                factor = heads.get(rest.partition(".")[0], 1.0) if scope == "heads" else 1.0
            multipliers[name] = factor
        return multipliers

    def build(self, model: nn.Layer, weight_decay: Optional[float] = None, use_ema: bool = False,
              ema_decay: Optional[float] = None,
              head_lr_multipliers: Optional[Mapping[str, float]] = None) -> paddle.optimizer.Optimizer:
        """The paddle optimizer over ``model``'s trainable parameters, each with its learning-rate
        factor (:meth:`lr_multipliers`). ``lr_scheduler`` is then the learning-rate scheduler it
        reads (stepped after every update), and with ``use_ema`` ``ema`` the
        :class:`ExponentialMovingAverage` of the weights (updated after every step)."""
        if weight_decay is not None and not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"weight_decay must be a non-negative finite number, got {weight_decay!r}")
        set_learning_rates(model, self.lr_multipliers(model, head_lr_multipliers))
        self.weight_decay = self.default_weight_decay if weight_decay is None else float(weight_decay)
        optimizer = self._make(model, self.weight_decay)
        create_all_state(optimizer)
        self.ema = ExponentialMovingAverage(model, 0.9999 if ema_decay is None else ema_decay) if use_ema else None
        return optimizer

    def _make(self, model: nn.Layer, weight_decay: float) -> paddle.optimizer.Optimizer:
        raise NotImplementedError

    @staticmethod
    def _decay_filter(model: nn.Layer) -> Callable[[str], bool]:
        exempt = no_decay_names(model)
        return lambda name: name not in exempt

    @staticmethod
    def _parameters(model: nn.Layer) -> List[paddle.Tensor]:
        return [p for p in model.parameters() if not p.stop_gradient]
