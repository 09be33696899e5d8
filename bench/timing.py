"""Timing of training steps for the side-by-side benchmarks (bench/elmo_lm.py, bench/tagger.py).

Variants alternate: each runs its warm-up steps first (untimed: to_static compilation, allocator
warm-up), then ``repeats`` rounds each run every variant's timed steps in turn, so a change in the
machine's load falls on all variants alike. Every step is timed per wall second and per CPU second
of this process (all its threads), the figure that stays meaningful when other jobs share the cores.
"""
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

Times = Tuple[List[float], List[float]]  # (wall seconds, CPU seconds) of each step of one round


def timed(step_fn: Callable, data: Sequence) -> Times:
    """Wall seconds and CPU seconds (this process, all threads) of ``step_fn`` on each item of ``data``."""
    wall, cpu = [], []
    for item in data:
        start, cpu_start = time.perf_counter(), time.process_time()
        step_fn(item)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    return wall, cpu


def alternate(steps: Dict[str, Callable], data: Sequence, warmup: int, repeats: int,
              after_warmup: Optional[Callable[[], None]] = None,
              progress: Optional[Callable[[int, str, Times], None]] = None) -> Dict[str, List[Times]]:
    """``{variant: [times of round 1, round 2, ...]}``: every variant warms up on ``data[:warmup]``,
    then ``repeats`` rounds run each variant on ``data[warmup:]`` in turn. ``progress(round,
    variant, times)`` is called after each variant's round (a progress line)."""
    for step in steps.values():
        timed(step, data[:warmup])
    if after_warmup is not None:
        after_warmup()
    rounds: Dict[str, List[Times]] = {name: [] for name in steps}
    for round_ in range(repeats):
        for name, step in steps.items():
            times = timed(step, data[warmup:])
            rounds[name].append(times)
            if progress is not None:
                progress(round_ + 1, name, times)
    return rounds
