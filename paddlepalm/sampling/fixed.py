"""Schedules with exact per-unit budgets: PALM's ``mix_ratio`` (the default) and UniMax."""
from dataclasses import dataclass
from typing import List

import numpy as np

from paddlepalm.sampling.draws import task_budgets
from paddlepalm.sampling.base import Mixture, Schedule


@dataclass(frozen=True)
class Fixed(Schedule):
    """PALM's rule: unit i trains ``num_epochs * mix_ratio_i / mix_ratio_ref`` epochs of the
    sampling reference's batches; each update draws by mix ratio among the units whose budget
    is left; the run ends when every non-auxiliary unit's budget is spent."""

    def budgets(self, mix: Mixture) -> List[int]:
        return task_budgets(mix.num_epochs, [float(r) for r in mix.ratios], mix.reference,
                            int(mix.sizes[mix.reference]))

    def weights(self, mix: Mixture, step: int, total: int) -> np.ndarray:
        return mix.ratios


@dataclass(frozen=True)
class UniMax(Schedule):
    """Chung et al. 2023: the run's ``total_updates * per_update`` batches are shared out
    uniformly, smallest unit first, but no unit gets more than ``max_epochs`` epochs; what a
    capped unit leaves goes to the larger ones. Each unit then trains exactly its budget
    (drawn by budget among the units with budget left), so the cap on repeats is a guarantee.
    When every unit is capped the run is shorter than ``total_updates``."""

    max_epochs: float = 1.0

    def __post_init__(self):
        if not self.max_epochs > 0:
            raise ValueError(f"UniMax max_epochs must be positive, got {self.max_epochs}")

    def budgets(self, mix: Mixture) -> List[int]:
        left = float(mix.total_updates * mix.per_update)
        budgets = [0] * len(mix.sizes)
        order = np.argsort(mix.sizes, kind="stable")
        for position, unit in enumerate(order):
            share = left / (len(order) - position)
            budgets[unit] = int(min(share, self.max_epochs * float(mix.sizes[unit])) + 1e-9)
            left -= budgets[unit]
        return budgets

    def weights(self, mix: Mixture, step: int, total: int) -> np.ndarray:
        return np.maximum(np.asarray(self.budgets(mix), dtype="float64"), 1.0)  # a unit with 0 is never active
