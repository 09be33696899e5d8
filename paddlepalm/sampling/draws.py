"""Which units (tasks or joint groups) train in each update of a multi-task run.

A static schedule (``paddlepalm.sampling``) is drawn up front from a seed, so it is identical
on every data-parallel rank (every rank runs the same heads at each update) and resuming needs
only the step number. A dynamic schedule is drawn a block at a time (:class:`BlockDraws`): rank
0 decides each block's probabilities and broadcasts them, and the decisions are checkpointed.
"""
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from paddlepalm import distributed


def task_budgets(num_epochs: float, mix_ratios: Sequence[float], reference: int,
                 reference_steps_per_epoch: int) -> List[int]:
    """Steps each task trains: ``num_epochs * mix_ratio / mix_ratio[reference]`` epochs of the
    reference task's steps (with the reference task's ratio at 1, PALM's rule)."""
    if reference_steps_per_epoch < 1:
        raise ValueError("the sampling reference task has fewer examples than one (global) batch")
    unit = num_epochs * reference_steps_per_epoch / mix_ratios[reference]
    return [int(unit * ratio) for ratio in mix_ratios]


def _budget_arrays(mix_ratios: Sequence[float], budgets: Sequence[int], is_aux: Sequence[bool]):
    """Validated ``(ratios, remaining budgets, non-auxiliary mask)`` for drawing a plan."""
    ratios = np.asarray(mix_ratios, dtype="float64")
    if (ratios <= 0).any():
        raise ValueError(f"mix ratios must be positive, got {list(mix_ratios)}")
    remaining = np.asarray(budgets, dtype="int64").copy()
    main = ~np.asarray(is_aux, dtype=bool)
    if not main.any():
        raise ValueError("at least one task must not be auxiliary")
    return ratios, remaining, main


def draw_task_order(mix_ratios: Sequence[float], budgets: Sequence[int], is_aux: Sequence[bool],
                   seed: int = 0) -> np.ndarray:
    """Task index per step.

    Each step draws a task with probability proportional to its mix ratio among
    the tasks whose budget is not spent. The run ends when every non-auxiliary
    task has spent its budget; auxiliary tasks never hold it up.
    """
    ratios, remaining, main = _budget_arrays(mix_ratios, budgets, is_aux)
    rng = np.random.RandomState(seed)
    schedule = []
    while (remaining[main] > 0).any():
        active = remaining > 0
        probs = np.where(active, ratios, 0.0)
        probs /= probs.sum()
        # Draw a block at once; stop the block where some task's budget runs out.
        draws = rng.choice(len(ratios), size=max(1, int(remaining[active].min())), p=probs)
        for task in draws:
            schedule.append(task)
            remaining[task] -= 1
            if remaining[task] == 0:
                break
    return np.asarray(schedule, dtype="int64")


def draw_update_order(mix_ratios: Sequence[float], budgets: Sequence[int], is_aux: Sequence[bool],
                      per_update: Union[int, str] = 1, seed: int = 0) -> np.ndarray:
    """Units per update, shape ``(updates, width)``, ``-1`` where an update has fewer units.

    ``per_update=1`` is :func:`draw_task_order` (one unit per update, the same draws). With ``k > 1``
    (``'all'``: every unit) each update draws ``k`` distinct units, without replacement, with
    probability proportional to their mix ratios among the units whose budget is not spent (all
    of them when fewer remain). A unit's budget counts the updates it enters; the run ends when
    every non-auxiliary unit has spent its budget."""
    k = units_per_update(per_update, len(mix_ratios))
    if k == 1:
        return draw_task_order(mix_ratios, budgets, is_aux, seed)[:, None]
    ratios, remaining, main = _budget_arrays(mix_ratios, budgets, is_aux)
    rng = np.random.RandomState(seed)
    rows = []
    while (remaining[main] > 0).any():
        active = np.flatnonzero(remaining > 0)
        if len(active) <= k:
            chosen = active
        else:
            chosen = np.sort(rng.choice(active, size=k, replace=False, p=ratios[active] / ratios[active].sum()))
        row = np.full(k, -1, dtype="int64")
        row[:len(chosen)] = chosen
        rows.append(row)
        remaining[chosen] -= 1
    return np.asarray(rows, dtype="int64").reshape(-1, k)


def units_per_update(per_update: Union[int, str], num_units: int) -> int:
    """``tasks_per_update`` as a number of units (``'all'``: every unit)."""
    k = num_units if per_update == "all" else per_update
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= num_units:
        raise ValueError(f"tasks_per_update must be 'all' or an integer from 1 to {num_units}, got {per_update!r}")
    return k


def draw_rows(rng: np.random.RandomState, probabilities: np.ndarray, per_update: int) -> np.ndarray:
    """One row of ``per_update`` distinct units per row of ``probabilities`` (shape ``(updates,
    units)``); one unit: by inverse CDF of one uniform draw (``RandomState.choice``'s rule), several:
    without replacement, sorted."""
    probabilities = np.asarray(probabilities, dtype="float64")
    if per_update == 1:
        cdf = np.cumsum(probabilities, axis=1)
        cdf /= cdf[:, -1:]
        uniform = rng.random_sample(len(probabilities))
        drawn = np.minimum((cdf <= uniform[:, None]).sum(axis=1), probabilities.shape[1] - 1)
        return drawn.astype("int64")[:, None]
    rows = [np.sort(rng.choice(probabilities.shape[1], size=per_update, replace=False, p=p)) for p in probabilities]
    return np.asarray(rows, dtype="int64").reshape(-1, per_update)


def draw_static(schedule, mix, seed: int) -> np.ndarray:
    """Every update of a static schedule: exact budgets drawn by weight until spent (``Fixed``,
    ``UniMax``), or ``mix.total_updates`` updates drawn by the schedule's probabilities."""
    budgets = schedule.budgets(mix)
    if budgets is not None:
        return draw_update_order([float(w) for w in schedule.weights(mix, 1, 0)], budgets,
                                     [bool(a) for a in mix.is_aux], mix.per_update, seed)
    total = mix.total_updates
    if schedule.varies_with_step:
        probabilities = np.stack([schedule.probabilities(mix, step, total) for step in range(1, total + 1)])
    else:
        probabilities = np.tile(schedule.probabilities(mix, 1, total), (total, 1))
    return draw_rows(np.random.RandomState(seed), probabilities, mix.per_update)


class BlockDraws:
    """The updates of a dynamic schedule, drawn one block of ``block`` updates at a time.

    At the first update of a block, rank 0 asks the schedule for the units' probabilities (from
    what it has observed so far: dev scores, training losses) and broadcasts them; every rank
    then draws the block from the same seeded generator, so all ranks train the same units at
    every update even though each saw only its own shard's losses. The decisions (first update,
    number of updates, probabilities) are the plan's state in a checkpoint: replaying them from
    the seed gives the same rows and leaves the generator where the run left it."""

    def __init__(self, schedule, mix, seed: int, total: int, block: Optional[int] = None):
        self.schedule, self.mix, self.seed, self.total, self.block = schedule, mix, int(seed), int(total), block
        self.rng = np.random.RandomState(self.seed)
        self.decisions: List[List[Any]] = []

    def draw(self, first: int) -> np.ndarray:
        """The rows of the block that starts at update ``first``."""
        if not self.block:
            raise RuntimeError(f"{self.schedule!r} decides every few updates: give it every=N, or train() with "
                               "set_evaluator(eval_steps=N) (it then decides after each evaluation)")
        count = min(int(self.block), self.total - first + 1)
        decided = self.schedule.decide(self.mix, first, self.total) if distributed.is_main() else None
        probabilities = [float(p) for p in distributed.broadcast_object(decided)]
        self.decisions.append([first, count, probabilities])
        return draw_rows(self.rng, np.tile(probabilities, (count, 1)), self.mix.per_update)

    def state(self) -> Dict[str, Any]:
        return {"decisions": [list(d) for d in self.decisions], "observed": self.schedule.state()}

    def restore(self, state: Dict[str, Any]) -> np.ndarray:
        """Replay the decisions of ``state`` (a checkpoint's) from the seed; returns their rows."""
        self.rng = np.random.RandomState(self.seed)
        self.decisions, rows = [], [np.zeros((0, self.mix.per_update), dtype="int64")]
        for first, count, probabilities in state.get("decisions", []):
            if first != sum(len(r) for r in rows) + 1:
                raise ValueError(f"the checkpoint's sampling decisions are not contiguous at update {first}")
            self.decisions.append([first, count, probabilities])
            rows.append(draw_rows(self.rng, np.tile(probabilities, (count, 1)), self.mix.per_update))
        self.schedule.set_state(state.get("observed", {}))
        return np.concatenate(rows)
