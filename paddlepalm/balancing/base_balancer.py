"""Base class of loss balancers: how the per-task losses of one update become its gradient.

A balancer is bound to the task names of a ``MultiHeadTrainer`` (``bind``). In every update
the update (paddlepalm/update.py) asks it for the bank that keeps the tasks' gradients apart
(``gradient_bank``), the weight of each task's loss (``weights_before_losses``: before the
update's losses exist, or ``weights_from_losses``: from them), lets the gradient methods combine
the tasks' separate gradients (``combine``), and hands it the update's losses after the optimizer
step (``finish_update``), when a balancer learns. The update asks; the balancer's class attributes
below decide the answers, so a subclass usually sets them and overrides ``loss_weights``,
``combine`` or ``after_update``.

The losses a balancer sees are each task's ``Trainer.loss_weight`` times its head's loss, averaged
over the data-parallel ranks (and the per-task gradients are averaged over ranks before
``combine``), so every rank computes the same weights. Everything a balancer learns or keeps
(learned weights, their optimizer's moments, loss histories, its random generator) is JSON data
(``state_dict``) saved in each checkpoint's ``trainer.json``: a resumed run continues
bit-identically.
"""
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import paddle

from paddlepalm.balancing.gradient_bank import GradientBank

Gradients = Dict[str, Dict[int, paddle.Tensor]]  # task -> {parameter index in the bank: gradient}


class Balancer:
    """Static weights: each task's loss enters the update as it is (times its ``loss_weight``).

    Subclasses set what they need from the update:

    - ``min_tasks``: the tasks an update must hold (2 for methods that compare tasks within an update);
    - ``reads_losses``: ``after_update`` needs the update's loss values (one float read per task);
    - ``needs_losses_first``: the weights depend on this update's losses, so every forward pass
      of the update runs before the one backward (FAMO);
    - ``task_gradients``: ``'all'`` keeps every task's gradient of every parameter apart
      (``combine`` makes the update's gradient: PCGrad), ``'layer'`` keeps only those of
      ``layer_parameters`` (read in ``after_update``: GradNorm)."""

    name = "static"
    min_tasks = 1
    reads_losses = False
    needs_losses_first = False
    task_gradients: Optional[str] = None

    def __init__(self):
        self.tasks: List[str] = []

    def bind(self, tasks: Sequence[str], model: Optional[paddle.nn.Layer] = None) -> None:
        """Called by ``MultiHeadTrainer.build_forward`` with every task's name, in task order."""
        self.tasks = list(tasks)

    def index(self, tasks: Sequence[str]) -> np.ndarray:
        """Positions of ``tasks`` among the bound tasks."""
        unknown = [t for t in tasks if t not in self.tasks]
        if unknown:
            raise KeyError(f"{type(self).__name__} is bound to tasks {self.tasks}, not {unknown} "
                           "(call MultiHeadTrainer.build_forward first)")
        return np.array([self.tasks.index(t) for t in tasks], dtype="int64")

    def check_update(self, tasks: Sequence[str], micro_batches: Mapping[str, int]) -> None:
        """Refuse an update this method cannot make (too few tasks; micro-batches for FAMO)."""
        if len(tasks) < self.min_tasks:
            raise ValueError(f"{type(self).__name__} compares the tasks of each update, so every update must hold "
                             f"{self.min_tasks} or more tasks; this one holds {list(tasks)}. Train on joint batches "
                             "(fit_readers_with_mixratio(..., joint=True)) or several tasks per update "
                             "(tasks_per_update=2 or 'all', with mix ratios that give the tasks equal budgets)")

    def loss_weights(self, tasks: Sequence[str], losses: Optional[Mapping[str, float]] = None) -> Dict[str, float]:
        """The factor of each task's loss in this update (``losses`` only with ``needs_losses_first``)."""
        return {task: 1.0 for task in tasks}

    # ------------------------------------------------------ what an update asks
    def gradient_bank(self, model: paddle.nn.Layer, clipping: bool) -> Optional[GradientBank]:
        """The bank of this update's per-task gradients: every parameter's for per-task clipping
        (``clipping``) and ``task_gradients='all'``, one layer's for ``'layer'``; None when nothing
        needs them (the ordinary backward sums the tasks' gradients)."""
        if clipping or self.task_gradients == "all":
            return GradientBank(model.parameters())
        if self.task_gradients == "layer":
            return GradientBank(model.parameters(), only=self.layer_parameters(model), boundary=self.layer_input)
        return None

    def weights_before_losses(self, tasks: Sequence[str]) -> Optional[Dict[str, float]]:
        """The weights, when they do not depend on this update's losses (each pass's backward then
        runs right after its forward); None otherwise (``needs_losses_first``)."""
        return None if self.needs_losses_first else self.loss_weights(tasks)

    def observe(self, losses: Callable[[], Dict[str, float]]) -> Dict[str, float]:
        """This update's rank-averaged weighted losses, read (``losses()``, one float per task)
        only by a balancer that ``reads_losses``; ``{}`` otherwise."""
        return losses() if self.reads_losses else {}

    def weights_from_losses(self, tasks: Sequence[str], seen: Mapping[str, float]) -> Dict[str, float]:
        return self.loss_weights(tasks, seen)

    def finish_update(self, seen: Mapping[str, float], bank: Optional[GradientBank],
                      reforward: Callable[[], Dict[str, float]]) -> None:
        """After the optimizer step (``after_update``, for a balancer that ``reads_losses``)."""
        if self.reads_losses:
            self.after_update(seen, bank, reforward)

    def layer_parameters(self, model: paddle.nn.Layer) -> Optional[List[paddle.Tensor]]:
        """With ``task_gradients='layer'``: the parameters whose per-task gradients are kept."""
        return None

    def layer_input(self) -> Optional[paddle.Tensor]:
        """With ``task_gradients='layer'``: the input of those parameters' layer in the last forward
        pass; the per-task backward stops there (nothing below the layer is differentiated)."""
        return None

    def combine(self, grads: Gradients) -> Dict[int, paddle.Tensor]:
        """The update's gradient from each task's (clipped, rank-averaged) gradient: their sum."""
        total: Dict[int, paddle.Tensor] = {}
        for task_grads in grads.values():
            for i, grad in task_grads.items():
                total[i] = total[i] + grad if i in total else grad
        return total

    def after_update(self, losses: Mapping[str, float], bank=None,
                     reforward: Optional[Callable[[], Dict[str, float]]] = None) -> None:
        """After the optimizer step: ``losses`` of the update (rank-averaged, before the step),
        ``bank`` its per-task gradients, ``reforward()`` the same batches' losses after the step."""

    # ------------------------------------------------------------------ state
    def state_dict(self) -> Dict[str, Any]:
        """JSON data: everything needed to continue bit-identically (empty: nothing to save)."""
        return {}

    def set_state_dict(self, state: Mapping[str, Any]) -> None:
        pass

    def checkpoint_state(self) -> Optional[Dict[str, Any]]:
        """What ``trainer.json`` holds under ``'balancer'``; None for a stateless balancer."""
        state = self.state_dict()
        return {"name": self.name, "tasks": self.tasks, "state": state} if state else None

    def restore(self, saved: Optional[Mapping[str, Any]], where: str) -> None:
        """Resume from ``saved`` (``checkpoint_state`` of the run resumed); refuses another method."""
        expected = self.checkpoint_state() is not None
        found = saved["name"] if saved else "static weights"
        if not expected and saved is None:
            return
        if saved is None or saved["name"] != self.name:
            raise ValueError(f"{where}: the checkpoint was trained with {found} loss balancing, this run uses "
                             f"{self.name}: a resume continues the same method (pass balancer= as before)")
        if list(saved["tasks"]) != self.tasks:
            raise ValueError(f"{where}: the checkpoint's {self.name} balancer weighs tasks {saved['tasks']}, "
                             f"this run's tasks are {self.tasks}")
        self.set_state_dict(saved["state"])


class VectorAdam:
    """Adam (Kingma & Ba, ICLR 2015) on a balancer's few learned numbers, in float64 numpy: each
    coordinate (task) keeps its own step count, so a task absent from an update keeps its
    moments, as Paddle's optimizer skips a parameter without a gradient. ``weight_decay`` adds
    ``weight_decay * x`` to the gradient (L2, not decoupled)."""

    def __init__(self, size: int, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0):
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr!r}")
        self.lr, self.beta1, self.beta2, self.eps, self.weight_decay = float(lr), beta1, beta2, eps, weight_decay
        self.m = np.zeros(size)
        self.v = np.zeros(size)
        self.t = np.zeros(size, dtype="int64")

    def step(self, x: np.ndarray, grad: np.ndarray, where: np.ndarray) -> np.ndarray:
        """``x`` after one step on the coordinates ``where`` (indices) with gradient ``grad`` there."""
        x = x.copy()
        g = np.asarray(grad, dtype="float64") + self.weight_decay * x[where]
        self.t[where] += 1
        self.m[where] = self.beta1 * self.m[where] + (1 - self.beta1) * g
        self.v[where] = self.beta2 * self.v[where] + (1 - self.beta2) * g * g
        m_hat = self.m[where] / (1 - self.beta1 ** self.t[where])
        v_hat = self.v[where] / (1 - self.beta2 ** self.t[where])
        x[where] -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
        return x

    def state_dict(self) -> Dict[str, Any]:
        return {"m": self.m.tolist(), "v": self.v.tolist(), "t": self.t.tolist()}

    def set_state_dict(self, state: Mapping[str, Any]) -> None:
        self.m, self.v = np.array(state["m"], dtype="float64"), np.array(state["v"], dtype="float64")
        self.t = np.array(state["t"], dtype="int64")
