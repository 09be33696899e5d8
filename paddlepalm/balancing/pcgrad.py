"""PCGrad (Yu, Kumar, Gupta, Levine, Hausman and Finn, "Gradient Surgery for Multi-Task
Learning", NeurIPS 2020, Algorithm 1)."""
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np
import paddle

from paddlepalm.balancing.base_balancer import Balancer, Gradients
from paddlepalm.utils.rng import random_state_to_json, set_random_state_from_json


def pcgrad_coefficients(gram: np.ndarray, orders: Sequence[Sequence[int]]) -> np.ndarray:
    """Algorithm 1 on the Gram matrix ``gram[i, j] = g_i . g_j`` of the tasks' gradients.

    Each projected gradient is a combination of the original ones, ``g_i^PC = sum_k C[i, k] g_k``
    (``C`` starts as the identity); for each ``j`` in ``orders[i]`` (the other tasks, in random
    order), if ``g_i^PC . g_j < 0`` then ``g_i^PC -= (g_i^PC . g_j / |g_j|^2) g_j``: the projection
    onto the normal plane of ``g_j``. Returns ``a`` with ``sum_i g_i^PC = sum_k a_k g_k``."""
    n = len(gram)
    coefficients = np.eye(n)
    for i in range(n):
        for j in orders[i]:
            dot = coefficients[i] @ gram[:, j]
            if dot < 0 and gram[j, j] > 0:
                coefficients[i, j] -= dot / gram[j, j]
    return coefficients.sum(axis=0)


class PCGrad(Balancer):
    """Gradient surgery: each task's gradient is projected onto the normal plane of every other
    task's gradient it conflicts with (negative inner product), taking the other tasks in a random
    order per task, and the projected gradients are summed. The projection uses the other tasks'
    original gradients, as Algorithm 1 does.

    Applied to the shared parameters (those that two or more tasks of the update have a gradient
    for: the backbone); each head's gradient is its own task's, unchanged (no other task has a
    component there, so the inner products are the same as over all parameters). The inner
    products are computed once (a Gram matrix of the flattened shared gradients); the projections
    then act on coefficients, so the combined gradient is ``sum_k a_k g_k``.

    Needs every task's gradient in the same update (``min_tasks = 2``; per-task gradients from
    ``GradientBank``, averaged over data-parallel ranks before the projection). The random order
    comes from a ``numpy.RandomState(seed)``, saved in the checkpoint. Cost: one backward per task
    of each pass (a joint batch's shared encoder is back-propagated once per head) and one copy of
    the gradient per task."""

    name = "pcgrad"
    min_tasks = 2
    task_gradients = "all"

    def __init__(self, seed: int = 0):
        super().__init__()
        self.seed = int(seed)
        self.rng = np.random.RandomState(self.seed)

    def orders(self, n: int) -> List[List[int]]:
        """For each task, the other tasks in a random order (drawn from the saved generator)."""
        return [[j for j in self.rng.permutation(n).tolist() if j != i] for i in range(n)]

    def combine(self, grads: Gradients) -> Dict[int, paddle.Tensor]:
        tasks = list(grads)
        count: Dict[int, int] = {}
        for task_grads in grads.values():
            for i in task_grads:
                count[i] = count.get(i, 0) + 1
        shared = sorted(i for i, c in count.items() if c > 1)
        total = super().combine({task: {i: g for i, g in task_grads.items() if count[i] == 1}
                                 for task, task_grads in grads.items()})
        if not shared:
            return total
        reference = {i: next(g[i] for g in grads.values() if i in g) for i in shared}
        flat = paddle.stack([paddle.concat([(grads[t][i] if i in grads[t] else paddle.zeros_like(reference[i]))
                                            .astype("float32").reshape([-1]) for i in shared]) for t in tasks])
        gram = paddle.matmul(flat, flat, transpose_y=True).numpy().astype("float64")
        weights = pcgrad_coefficients(gram, self.orders(len(tasks)))
        for i in shared:
            total[i] = paddle.add_n([grads[t][i] * float(a) for t, a in zip(tasks, weights) if i in grads[t]])
        return total

    def state_dict(self) -> Dict[str, Any]:
        return {"rng": random_state_to_json(self.rng)}

    def set_state_dict(self, state: Mapping[str, Any]) -> None:
        set_random_state_from_json(self.rng, state["rng"])
