"""Static schedules that are a formula of the units' sizes n_i (training batches per epoch)."""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from paddlepalm.sampling.base import Mixture, Schedule


def _sizes(mix: Mixture) -> np.ndarray:
    return np.asarray(mix.sizes, dtype="float64")


@dataclass(frozen=True)
class Proportional(Schedule):
    """p_i ∝ n_i: every batch of the union equally likely (each unit ~num_epochs epochs)."""

    def weights(self, mix: Mixture, step: int, total: int) -> np.ndarray:
        return _sizes(mix)


@dataclass(frozen=True)
class Uniform(Schedule):
    """p_i = 1 / number of units."""

    def weights(self, mix: Mixture, step: int, total: int) -> np.ndarray:
        return np.ones(len(mix.sizes))


@dataclass(frozen=True)
class Temperature(Schedule):
    """p_i ∝ min(n_i, cap)^(1/T) (T5; jiant): T=1 is proportional, large T tends to uniform;
    ``cap`` (in batches, None: no cap) keeps the largest units from dominating."""

    T: float = 2.0
    cap: Optional[float] = None

    def __post_init__(self):
        if not self.T > 0 or (self.cap is not None and not self.cap > 0):
            raise ValueError(f"Temperature needs T > 0 and cap None or > 0, got T={self.T}, cap={self.cap}")

    def weights(self, mix: Mixture, step: int, total: int) -> np.ndarray:
        sizes = _sizes(mix) if self.cap is None else np.minimum(_sizes(mix), float(self.cap))
        return sizes ** (1.0 / self.T)


@dataclass(frozen=True)
class Annealed(Schedule):
    """p_i ∝ n_i^α, α going linearly from ``alpha_start`` at the first update to ``alpha_end``
    at the last (Stickland & Murray 2019: from proportional towards uniform)."""

    alpha_start: float = 1.0
    alpha_end: float = 0.2
    varies_with_step = True

    def alpha(self, step: int, total: int) -> float:
        return self.alpha_start + (self.alpha_end - self.alpha_start) * (step - 1) / max(total - 1, 1)

    def weights(self, mix: Mixture, step: int, total: int) -> np.ndarray:
        return _sizes(mix) ** self.alpha(step, total)
