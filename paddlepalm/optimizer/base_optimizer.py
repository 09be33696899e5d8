"""Optimizers with PALM's ``(loss_var, lr, lr_schedualer)`` signature.

In a dynamic graph there is no loss variable to minimize: ``loss_var`` is what
``build_forward`` returned (the model), kept for the contract. The paddle
optimizer itself is made by the trainer's ``build_backward`` through
:meth:`build`, once the trainable parameters are known.
"""
import math
from typing import Callable, List, Optional

import paddle
from paddle import nn

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


class Optimizer:
    def __init__(self, loss_var, lr: float, lr_schedualer: Optional[Schedualer] = None,
                 grad_clip_norm: Optional[float] = 1.0):
        if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"lr must be a positive finite number, got {lr!r}")
        if grad_clip_norm is not None and not (math.isfinite(grad_clip_norm) and grad_clip_norm > 0):
            raise ValueError(f"grad_clip_norm must be a positive finite number or None, got {grad_clip_norm!r}")
        self.loss_var = loss_var
        self.lr = float(lr)
        self.lr_schedualer = lr_schedualer
        self.grad_clip_norm = grad_clip_norm
        self.lr_scheduler: Optional[paddle.optimizer.lr.LRScheduler] = None

    def _learning_rate(self):
        if self.lr_schedualer is None:
            return self.lr
        self.lr_scheduler = self.lr_schedualer.build(self.lr)
        return self.lr_scheduler

    def _grad_clip(self):
        if self.grad_clip_norm is None:
            return None
        return paddle.nn.ClipGradByGlobalNorm(self.grad_clip_norm)

    def build(self, model: nn.Layer, weight_decay: Optional[float] = None, use_ema: bool = False,
              ema_decay: Optional[float] = None) -> paddle.optimizer.Optimizer:
        """The paddle optimizer over ``model``'s trainable parameters; with ``use_ema`` it
        carries an :class:`ExponentialMovingAverage` as ``palm_ema``, updated after each step."""
        if weight_decay is not None and not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"weight_decay must be a non-negative finite number, got {weight_decay!r}")
        optimizer = self._make(model, weight_decay)
        create_all_state(optimizer)
        if use_ema:
            optimizer.palm_ema = ExponentialMovingAverage(model, 0.9999 if ema_decay is None else ema_decay)
        return optimizer

    def _make(self, model: nn.Layer, weight_decay: Optional[float]) -> paddle.optimizer.Optimizer:
        raise NotImplementedError

    @staticmethod
    def _decay_filter(model: nn.Layer) -> Callable[[str], bool]:
        exempt = no_decay_names(model)
        return lambda name: name not in exempt

    @staticmethod
    def _parameters(model: nn.Layer) -> List[paddle.Tensor]:
        return [p for p in model.parameters() if not p.stop_gradient]
