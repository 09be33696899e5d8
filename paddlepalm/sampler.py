"""Which task trains at each step of a multi-task run.

The whole schedule is drawn up front from a seed, so it is identical on every
data-parallel rank (every rank runs the same head at each step) and resuming
needs only the step number.
"""
from typing import List, Sequence, Union

import numpy as np


def task_budgets(num_epochs: float, mix_ratios: Sequence[float], reference: int,
                 reference_steps_per_epoch: int) -> List[int]:
    """Steps each task trains: ``num_epochs * mix_ratio / mix_ratio[reference]`` epochs of the
    reference task's steps (with the reference task's ratio at 1, PALM's rule)."""
    if reference_steps_per_epoch < 1:
        raise ValueError("the sampling reference task has fewer examples than one (global) batch")
    unit = num_epochs * reference_steps_per_epoch / mix_ratios[reference]
    return [int(unit * ratio) for ratio in mix_ratios]


def build_schedule(mix_ratios: Sequence[float], budgets: Sequence[int], is_aux: Sequence[bool],
                   seed: int = 0) -> np.ndarray:
    """Task index per step.

    Each step draws a task with probability proportional to its mix ratio among
    the tasks whose budget is not spent. The run ends when every non-auxiliary
    task has spent its budget; auxiliary tasks never hold it up.
    """
    ratios = np.asarray(mix_ratios, dtype="float64")
    if (ratios <= 0).any():
        raise ValueError(f"mix ratios must be positive, got {list(mix_ratios)}")
    remaining = np.asarray(budgets, dtype="int64").copy()
    main = ~np.asarray(is_aux, dtype=bool)
    if not main.any():
        raise ValueError("at least one task must not be auxiliary")
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


def build_update_schedule(mix_ratios: Sequence[float], budgets: Sequence[int], is_aux: Sequence[bool],
                          per_update: Union[int, str] = 1, seed: int = 0) -> np.ndarray:
    """Units per update, shape ``(updates, width)``, ``-1`` where an update has fewer units.

    ``per_update=1`` is :func:`build_schedule` (one unit per update, the same draws). With ``k > 1``
    (``'all'``: every unit) each update draws ``k`` distinct units, without replacement, with
    probability proportional to their mix ratios among the units whose budget is not spent (all
    of them when fewer remain). A unit's budget counts the updates it enters; the run ends when
    every non-auxiliary unit has spent its budget."""
    n = len(mix_ratios)
    k = n if per_update == "all" else per_update
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"tasks_per_update must be 'all' or an integer from 1 to {n}, got {per_update!r}")
    if k == 1:
        return build_schedule(mix_ratios, budgets, is_aux, seed)[:, None]
    ratios = np.asarray(mix_ratios, dtype="float64")
    if (ratios <= 0).any():
        raise ValueError(f"mix ratios must be positive, got {list(mix_ratios)}")
    remaining = np.asarray(budgets, dtype="int64").copy()
    main = ~np.asarray(is_aux, dtype=bool)
    if not main.any():
        raise ValueError("at least one task must not be auxiliary")
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
