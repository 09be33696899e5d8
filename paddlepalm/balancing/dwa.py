"""Dynamic weight average (Liu, Johns and Davison, "End-to-End Multi-Task Learning with
Attention", CVPR 2019)."""
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from paddlepalm.balancing.base_balancer import Balancer


class DWA(Balancer):
    """``w_k = K exp(r_k / T) / sum_i exp(r_i / T)`` with ``r_k = L_k(n-1) / L_k(n-2)``: the ratio
    of task ``k``'s mean loss over the last two completed windows, ``K`` tasks, temperature ``T``
    (2 in the paper). Until two windows are complete every weight is 1; a task absent from one of
    the two windows has ratio 1.

    The paper's window is an epoch; here it is ``window`` updates (an epoch of a multi-task run
    differs per task): pass the updates of one epoch of your reference task for the paper's
    setting. A task's window mean is the mean of its loss over the updates of the window that held
    it (rank-averaged). The weights change only when a window completes and need no gradient.
    State (the current window's sums and counts, the last two window means) is saved in the
    checkpoint. Cost: one float read per task per update."""

    name = "dwa"
    reads_losses = True

    def __init__(self, temperature: float = 2.0, window: int = 100):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a positive number of updates, got {window!r}")
        self.temperature = float(temperature)
        self.window = window
        self._reset(0)

    def _reset(self, size: int) -> None:
        self.sums, self.counts = np.zeros(size), np.zeros(size, dtype="int64")
        self.updates = 0  # updates in the current window
        self.means = []  # mean losses of the last two completed windows, oldest first (nan: absent)

    def bind(self, tasks: Sequence[str], model=None) -> None:
        super().bind(tasks, model)
        self._reset(len(self.tasks))

    def weights(self) -> np.ndarray:
        """Every bound task's weight for the next update."""
        if len(self.means) < 2:
            return np.ones(len(self.tasks))
        older, last = self.means
        ratio = np.where(np.isfinite(older) & np.isfinite(last), last / np.where(older > 0, older, 1.0), 1.0)
        e = np.exp((ratio - ratio.max()) / self.temperature)  # shifted: same softmax, no overflow
        return len(self.tasks) * e / e.sum()

    def loss_weights(self, tasks: Sequence[str], losses: Optional[Mapping[str, float]] = None) -> Dict[str, float]:
        weights = self.weights()
        return {task: float(weights[i]) for task, i in zip(tasks, self.index(tasks))}

    def after_update(self, losses, bank=None, reforward=None) -> None:
        where = self.index(list(losses))
        self.sums[where] += np.array(list(losses.values()), dtype="float64")
        self.counts[where] += 1
        self.updates += 1
        if self.updates == self.window:
            mean = np.where(self.counts > 0, self.sums / np.maximum(self.counts, 1), np.nan)
            self.means = (self.means + [mean])[-2:]
            self.sums, self.counts, self.updates = np.zeros_like(self.sums), np.zeros_like(self.counts), 0

    def state_dict(self) -> Dict[str, Any]:
        return {"sums": self.sums.tolist(), "counts": self.counts.tolist(), "updates": self.updates,
                "means": [[None if np.isnan(v) else float(v) for v in m] for m in self.means]}

    def set_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sums = np.array(state["sums"], dtype="float64")
        self.counts = np.array(state["counts"], dtype="int64")
        self.updates = int(state["updates"])
        self.means = [np.array([np.nan if v is None else v for v in m], dtype="float64") for m in state["means"]]
