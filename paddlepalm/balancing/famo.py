"""FAMO (Liu, Feng, Stone and Liu, "FAMO: Fast Adaptive Multitask Optimization", NeurIPS 2023)."""
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from paddlepalm.balancing.base_balancer import Balancer, VectorAdam


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def famo_weights(logits: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """The factors of the losses in FAMO's step: ``c z_i / l_i`` with ``z = softmax(xi)`` and
    ``c = (sum_i z_i / l_i)^-1``, so the update's gradient is ``c * grad sum_i z_i log l_i``."""
    z = softmax(logits)
    inverse = z / losses
    return inverse / inverse.sum()


def famo_logit_gradient(logits: np.ndarray, decrease: np.ndarray) -> np.ndarray:
    """``J_z(xi)^T delta``: the softmax Jacobian ``diag(z) - z z^T`` (symmetric) times the log-loss
    decreases ``delta_i = log l_i(theta_t) - log l_i(theta_t+1)``; FAMO steps ``xi`` against it
    (plus the decay), moving weight from the tasks that improved most to those that improved least."""
    z = softmax(logits)
    return z * (decrease - z @ decrease)


class FAMO(Balancer):
    """Task logits ``xi`` (0 at the start), weights ``z = softmax(xi)``. Each update (the paper's
    Algorithm 1):

    1. forward the update's batches: losses ``l_i(theta_t)``;
    2. one backward of ``sum_i c z_i l_i / l_i(theta_t)`` (the factors are constants): the step
       direction ``c * grad sum_i z_i log l_i`` with ``c = (sum_i z_i / l_i)^-1``; the optimizer steps;
    3. one extra forward (no backward) of the same batches: ``l_i(theta_t+1)``;
       ``delta_i = log l_i(theta_t) - log l_i(theta_t+1)``;
    4. ``xi <- xi - beta (J_z(xi)^T delta + gamma xi)``.

    Step 4 is taken by the balancer's own Adam with learning rate ``beta`` (``lr``) and L2 decay
    ``gamma``, as the authors' released code does (its defaults: 0.025 and 0.01); Adam makes the
    step independent of the scale of ``delta``, the loss decrease of a single update. ``xi`` and
    the Adam moments are saved in the checkpoint. An update holding a subset of the tasks
    uses the softmax over that subset's logits and updates only theirs.

    Every forward of an update runs before its one backward (the factors need every loss of the
    update), so the update's graphs are held together: ``micro_batches > 1`` is refused (it would
    save no memory). Losses below ``eps`` are taken as ``eps`` (the logarithm). Cost: one forward
    and one backward per pass, plus one forward per pass, no per-task gradients."""

    name = "famo"
    min_tasks = 2
    reads_losses = True
    needs_losses_first = True

    def __init__(self, lr: float = 0.025, gamma: float = 0.01, eps: float = 1e-8):
        super().__init__()
        self.lr, self.gamma, self.eps = float(lr), float(gamma), float(eps)
        self.logits = np.zeros(0)
        self.optimizer = VectorAdam(0, self.lr, weight_decay=self.gamma)

    def bind(self, tasks: Sequence[str], model=None) -> None:
        super().bind(tasks, model)
        self.logits = np.zeros(len(self.tasks))
        self.optimizer = VectorAdam(len(self.tasks), self.lr, weight_decay=self.gamma)

    def check_update(self, tasks: Sequence[str], micro_batches: Mapping[str, int]) -> None:
        super().check_update(tasks, micro_batches)
        split = [t for t in tasks if micro_batches.get(t, 1) > 1]
        if split:
            raise ValueError(f"FAMO weighs each task by its whole batch's loss, so it holds every pass of an update "
                             f"until the backward: micro_batches would save no memory (tasks {split}); use "
                             "micro_batches=1 or another balancer")

    def _losses(self, tasks: Sequence[str], losses: Mapping[str, float]) -> np.ndarray:
        return np.maximum(np.array([losses[t] for t in tasks], dtype="float64"), self.eps)

    def loss_weights(self, tasks: Sequence[str], losses: Optional[Mapping[str, float]] = None) -> Dict[str, float]:
        weights = famo_weights(self.logits[self.index(tasks)], self._losses(tasks, losses))
        return {task: float(w) for task, w in zip(tasks, weights)}

    def after_update(self, losses, bank=None, reforward=None) -> None:
        tasks = list(losses)
        after = reforward()
        decrease = np.log(self._losses(tasks, losses)) - np.log(self._losses(tasks, after))
        where = self.index(tasks)
        self.logits = self.optimizer.step(self.logits, famo_logit_gradient(self.logits[where], decrease), where)

    def state_dict(self) -> Dict[str, Any]:
        return {"logits": self.logits.tolist(), "adam": self.optimizer.state_dict()}

    def set_state_dict(self, state: Mapping[str, Any]) -> None:
        self.logits = np.array(state["logits"], dtype="float64")
        self.optimizer.set_state_dict(state["adam"])
