"""Which task trains at each step of a multi-task run.

The whole schedule is drawn up front from a seed, so it is identical on every
data-parallel rank (every rank runs the same head at each step) and resuming
needs only the step number.
"""
from typing import List, Sequence

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
