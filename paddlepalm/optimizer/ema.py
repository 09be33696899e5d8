"""Exponential moving average of the trainable parameters (PALM's ``use_ema``)."""
from typing import Dict

import numpy as np
import paddle
from paddle import nn


class ExponentialMovingAverage:
    """Shadow copies updated after every optimizer step with
    ``shadow = d * shadow + (1 - d) * param``, ``d = min(decay, (1 + t) / (10 + t))``
    (the warm-up of fluid's ExponentialMovingAverage, which PALM used).

    The averaged weights are what ``set_saver(save_type='predict')`` writes; the
    training itself and evaluation during training use the raw weights.
    """

    FILE = "ema.pdparams"

    def __init__(self, model: nn.Layer, decay: float = 0.9999):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.steps = 0
        self._params = {n: p for n, p in model.named_parameters() if not p.stop_gradient}
        self.shadow = {n: p.detach().clone() for n, p in self._params.items()}

    def update(self) -> None:
        decay = min(self.decay, (1.0 + self.steps) / (10.0 + self.steps))
        with paddle.no_grad():
            for name, param in self._params.items():
                shadow = self.shadow[name]
                shadow.set_value(shadow * decay + param * (1.0 - decay))
        self.steps += 1

    def averaged_state_dict(self, model: nn.Layer) -> Dict[str, paddle.Tensor]:
        """The model's state dict with averaged values in place of the trainable parameters."""
        return {k: self.shadow.get(k, v) for k, v in model.state_dict().items()}

    def state_dict(self) -> Dict[str, object]:
        return {"steps": self.steps, **{f"shadow.{k}": v for k, v in self.shadow.items()}}

    def set_state_dict(self, state: Dict[str, object]) -> None:
        self.steps = int(np.asarray(state.get("steps", 0)))
        for name, shadow in self.shadow.items():
            if f"shadow.{name}" in state:
                shadow.set_value(paddle.to_tensor(np.asarray(state[f"shadow.{name}"]), dtype=shadow.dtype))
