"""A schedule driven by what training observes: dev scores, or training losses."""
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from paddlepalm.sampling.base import Mixture, Schedule
from paddlepalm.sampling.size import Uniform


@dataclass
class Dynamic(Schedule):
    """Re-decides the units' probabilities every ``every`` updates (None: after each evaluation,
    ``set_evaluator(eval_steps=...)``) from what it has observed; ``initial`` until then.

    ``by='dev_gap'`` (Gottumukkala et al. 2020): p_u ∝ max(g_u, floor), where a task's gap is
    ``reference_scores[task]`` (its single-task dev score, in its target metric) minus its
    latest dev score; a joint unit's gap is its tasks' mean; a unit without an evaluated task
    (an auxiliary one) gets the mean gap of the others.

    ``by='loss'`` (the rule of dynamic weight average, Liu et al. 2019, used for sampling):
    p_u ∝ exp(r_u / temperature), r = a task's mean training loss over the last block divided by
    its mean over the block before (1 until it has two), a unit's r its tasks' mean: the units
    whose loss decreases slowest are drawn most. Reads every update's loss (on GPU, a sync)."""

    reference_scores: Optional[Mapping[str, float]] = None
    by: str = "dev_gap"
    every: Optional[int] = None
    floor: float = 0.01
    temperature: float = 2.0
    initial: Schedule = field(default_factory=Uniform)
    _scores: Dict[str, float] = field(default_factory=dict, init=False, repr=False)
    _window: Dict[str, List[float]] = field(default_factory=dict, init=False, repr=False)  # task: [sum, count]
    _previous: Dict[str, float] = field(default_factory=dict, init=False, repr=False)  # last block's mean loss
    _ratios: Dict[str, float] = field(default_factory=dict, init=False, repr=False)
    dynamic = True

    def __post_init__(self):
        if self.by not in ("dev_gap", "loss"):
            raise ValueError(f"Dynamic by must be 'dev_gap' or 'loss', got {self.by!r}")
        if self.by == "dev_gap" and not self.reference_scores:
            raise ValueError("Dynamic(by='dev_gap') needs reference_scores={task: single-task dev score}")
        if self.every is not None and (isinstance(self.every, bool) or not isinstance(self.every, int)
                                       or self.every < 1):
            raise ValueError(f"Dynamic every must be a positive integer or None, got {self.every!r}")
        if not self.floor > 0 or not self.temperature > 0 or self.initial.dynamic:
            raise ValueError("Dynamic needs floor > 0, temperature > 0 and a static initial schedule")
        if self.reference_scores is not None:
            self.reference_scores = {str(k): float(v) for k, v in self.reference_scores.items()}

    @property
    def uses_losses(self) -> bool:  # type: ignore[override]
        return self.by == "loss"

    @property
    def uses_dev_scores(self) -> bool:  # type: ignore[override]
        return self.by == "dev_gap"

    def check(self, mix: Mixture) -> None:
        if self.by == "dev_gap":
            tasks = {t for unit in mix.tasks for t in unit}
            main = {t for unit, aux in zip(mix.tasks, mix.is_aux) if not aux for t in unit}
            unknown, missing = set(self.reference_scores) - tasks, main - set(self.reference_scores)
            if unknown or missing:
                raise ValueError(f"Dynamic reference_scores: unknown tasks {sorted(unknown)}, missing "
                                 f"{sorted(missing)} (every non-auxiliary task needs its single-task score)")

    # ------------------------------------------------------------------ formula
    def weights(self, mix: Mixture, step: int, total: int) -> np.ndarray:
        if self.by == "dev_gap":
            if not self._scores:
                return self.initial.weights(mix, step, total)
            gaps = {t: self.reference_scores[t] - s for t, s in self._scores.items() if t in self.reference_scores}
            return np.maximum(_per_unit(mix, gaps, None), self.floor)
        if not self._ratios:
            return self.initial.weights(mix, step, total)
        return np.exp(_per_unit(mix, self._ratios, 1.0) / self.temperature)

    def decide(self, mix: Mixture, step: int, total: int) -> np.ndarray:
        if self.by == "loss":
            self._close_window()
        return self.probabilities(mix, step, total)

    def _close_window(self) -> None:
        for task, (total, count) in self._window.items():
            mean = total / count
            if task in self._previous and self._previous[task] > 0:
                self._ratios[task] = mean / self._previous[task]
            self._previous[task] = mean
        self._window = {}

    # ------------------------------------------------------------- observations
    def observe(self, step: int, scores: Mapping[str, float]) -> None:
        self._scores.update({task: float(score) for task, score in scores.items()})

    def observe_losses(self, step: int, losses: Mapping[str, float]) -> None:
        for task, loss in losses.items():
            if math.isfinite(loss):  # a skipped non-finite batch (skip_nonfinite) says nothing
                window = self._window.setdefault(task, [0.0, 0])
                window[0] += float(loss)
                window[1] += 1

    def state(self) -> Dict[str, Any]:
        return {"scores": dict(self._scores), "window": {t: list(w) for t, w in self._window.items()},
                "previous": dict(self._previous), "ratios": dict(self._ratios)}

    def set_state(self, state: Mapping[str, Any]) -> None:
        self._scores = {t: float(v) for t, v in state.get("scores", {}).items()}
        self._window = {t: [float(w[0]), int(w[1])] for t, w in state.get("window", {}).items()}
        self._previous = {t: float(v) for t, v in state.get("previous", {}).items()}
        self._ratios = {t: float(v) for t, v in state.get("ratios", {}).items()}


def _per_unit(mix: Mixture, values: Mapping[str, float], default: Optional[float]) -> np.ndarray:
    """Each unit's mean of its tasks' values; a unit with none gets ``default`` (None: the mean
    of the other units')."""
    means = [np.mean([values[t] for t in unit if t in values]) if any(t in values for t in unit) else None
             for unit in mix.tasks]
    known = [m for m in means if m is not None]
    fill = default if default is not None else (float(np.mean(known)) if known else 1.0)
    return np.asarray([fill if m is None else m for m in means], dtype="float64")
