"""What a sampling schedule is: a formula giving, for each update, the probability of each unit.

A *unit* is one task, or a joint group of tasks trained on the same batches (``engine.Plan``).
A schedule sees the run as a :class:`Mixture` (one entry per unit) and returns weights; the
drawing itself (identical on every rank, resumable) is ``paddlepalm.sampling.draws``'s.
"""
import math
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np


@dataclass(eq=False)
class Mixture:
    """The units of a run, as a schedule sees them."""

    tasks: Tuple[Tuple[str, ...], ...]  # task names of each unit
    sizes: np.ndarray  # n_i: the unit's training batches per epoch
    ratios: np.ndarray  # mix_ratio of the unit (of its first task)
    is_aux: np.ndarray  # every task of the unit is auxiliary
    reference: int  # the unit of the sampling reference task
    num_epochs: float
    per_update: int  # units per update (tasks_per_update)

    @property
    def total_updates(self) -> int:
        """Updates of a run drawn by probability: ``num_epochs`` passes over the batches of the
        non-auxiliary units, ``per_update`` units (batches) per update."""
        batches = self.num_epochs * float(self.sizes[~self.is_aux].sum())
        return max(1, math.floor(batches / self.per_update + 1e-9))


class Schedule:
    """How the units of a multi-task run are drawn. Subclasses are small dataclasses whose
    fields are the formula's parameters; they implement :meth:`weights`, and either draw
    ``mix.total_updates`` updates by probability or give exact :meth:`budgets`."""

    dynamic = False  # depends on what training observes: drawn block by block, decided on rank 0
    varies_with_step = False  # a static formula that changes with the update (Annealed)
    uses_losses = False  # wants every update's training losses (observe_losses)
    uses_dev_scores = False  # samples by the dev scores of evaluations during training (observe)

    def weights(self, mix: Mixture, step: int, total: int) -> np.ndarray:
        """Unnormalized sampling weight of each unit for update ``step`` (from 1) of ``total``."""
        raise NotImplementedError

    def budgets(self, mix: Mixture) -> Optional[List[int]]:
        """The number of updates each unit enters, drawn by weight among the units whose budget
        is left until the non-auxiliary ones are spent; None: ``total_updates`` draws."""
        return None

    def probabilities(self, mix: Mixture, step: int, total: int) -> np.ndarray:
        weights = np.asarray(self.weights(mix, step, total), dtype="float64")
        if weights.shape != (len(mix.sizes),) or not np.isfinite(weights).all() or (weights < 0).any() \
                or weights.sum() <= 0:
            raise ValueError(f"{self!r}: weights must be finite, non-negative and not all zero, one per unit; "
                             f"got {weights}")
        return weights / weights.sum()

    def decide(self, mix: Mixture, step: int, total: int) -> np.ndarray:
        """The probabilities of a block of updates starting at ``step`` (dynamic schedules; run on rank 0)."""
        return self.probabilities(mix, step, total)

    def check(self, mix: Mixture) -> None:
        """Raise if the schedule cannot sample this mixture (called when the plan is drawn)."""

    # ----------------------------------------------- observations (dynamic schedules)
    def observe(self, step: int, scores: Mapping[str, float]) -> None:
        """Dev scores after an evaluation at ``step``: each evaluated task's target metric."""

    def observe_losses(self, step: int, losses: Mapping[str, float]) -> None:
        """Each task's training loss in update ``step`` (only when ``uses_losses``)."""

    def state(self) -> Dict[str, Any]:
        """What the schedule has observed, JSON-able (saved in every checkpoint)."""
        return {}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Back to ``state`` (``{}``: nothing observed yet)."""

    def config(self) -> Dict[str, Any]:
        """The schedule and its parameters, JSON-able: a checkpoint records it and a resume checks it."""
        config: Dict[str, Any] = {"name": type(self).__name__}
        for f in fields(self) if is_dataclass(self) else ():
            if f.init:
                value = getattr(self, f.name)
                config[f.name] = value.config() if isinstance(value, Schedule) else \
                    dict(value) if isinstance(value, Mapping) else value
        return config
