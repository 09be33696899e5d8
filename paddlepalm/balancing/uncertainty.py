"""Uncertainty weighting (Kendall, Gal and Cipolla, "Multi-Task Learning Using Uncertainty to
Weigh Losses for Scene Geometry and Semantics", CVPR 2018)."""
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from paddlepalm.balancing.base_balancer import Balancer, VectorAdam


class Uncertainty(Balancer):
    """Learned log-variances ``s_t`` (one per task, starting at 0); an update minimises
    ``sum_t exp(-s_t) * L_t + s_t`` over the tasks it holds.

    The variant: one form for every task. Kendall et al. derive ``L / (2 sigma^2) + log sigma``
    for a Gaussian (regression) likelihood (with ``s = log sigma^2`` it is half of
    ``exp(-s) L + s``: the same minimiser) and, through an approximation of a tempered softmax,
    ``L / sigma^2 + log sigma`` for classification (``exp(-s) L + s / 2``). We use
    ``exp(-s_t) L_t + s_t`` for the classification losses too (every paddlepalm head's loss is a
    cross-entropy or a CRF likelihood): its fixed point is ``s_t = log L_t`` for every task, so
    each task's weighted loss ``exp(-s_t) L_t`` tends to 1, instead of the classification form's
    ``s = log 2L``, whose factor 2 rests on the approximation.

    How ``s`` learns: the network's gradient is ``sum_t exp(-s_t) grad L_t`` (the weights are
    constants in the update); ``s`` is stepped by the balancer's own Adam (``lr``) on
    ``d/ds_t = 1 - exp(-s_t) L_t`` with the update's loss, after the network's step. ``s`` and the
    Adam moments are saved in ``trainer.json`` of each checkpoint (``balancer.state``). Cost: one
    float read per task per update."""

    name = "uncertainty"
    reads_losses = True

    def __init__(self, lr: float = 0.025):
        super().__init__()
        self.lr = float(lr)
        self.log_vars = np.zeros(0)
        self.optimizer = VectorAdam(0, self.lr)

    def bind(self, tasks: Sequence[str], model=None) -> None:
        super().bind(tasks, model)
        self.log_vars = np.zeros(len(self.tasks))
        self.optimizer = VectorAdam(len(self.tasks), self.lr)

    def loss_weights(self, tasks: Sequence[str], losses: Optional[Mapping[str, float]] = None) -> Dict[str, float]:
        return {task: float(np.exp(-self.log_vars[i])) for task, i in zip(tasks, self.index(tasks))}

    def gradient(self, tasks: Sequence[str], losses: Mapping[str, float]) -> np.ndarray:
        """``d/ds_t (exp(-s_t) L_t + s_t)`` for ``tasks``."""
        where = self.index(tasks)
        return 1.0 - np.exp(-self.log_vars[where]) * np.array([losses[t] for t in tasks])

    def after_update(self, losses, bank=None, reforward=None) -> None:
        tasks = list(losses)
        self.log_vars = self.optimizer.step(self.log_vars, self.gradient(tasks, losses), self.index(tasks))

    def state_dict(self) -> Dict[str, Any]:
        return {"log_vars": self.log_vars.tolist(), "adam": self.optimizer.state_dict()}

    def set_state_dict(self, state: Mapping[str, Any]) -> None:
        self.log_vars = np.array(state["log_vars"], dtype="float64")
        self.optimizer.set_state_dict(state["adam"])
