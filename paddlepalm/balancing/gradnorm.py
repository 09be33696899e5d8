"""GradNorm (Chen, Badrinarayanan, Lee and Rabinovich, "GradNorm: Gradient Normalization for
Adaptive Loss Balancing in Deep Multitask Networks", ICML 2018)."""
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import paddle
from paddle import nn

from paddlepalm.balancing.base_balancer import Balancer, VectorAdam


def gradnorm_weight_gradient(weights: np.ndarray, norms: np.ndarray, losses: np.ndarray,
                             initial_losses: np.ndarray, alpha: float) -> np.ndarray:
    """``d L_grad / d w_i`` of the paper's ``L_grad = sum_i |G_i - mean(G) r_i^alpha|`` with
    ``G_i = w_i |grad_W L_i|`` (``norms[i] = |grad_W L_i|``, unweighted), inverse training rate
    ``r_i = Ltilde_i / mean(Ltilde)``, ``Ltilde_i = L_i / L_i(0)``; the target ``mean(G) r_i^alpha``
    is a constant, so the derivative is ``sign(G_i - target_i) * |grad_W L_i|``."""
    g = weights * norms
    relative = losses / initial_losses
    target = g.mean() * (relative / relative.mean()) ** alpha
    return np.sign(g - target) * norms


def last_shared_layer(model: nn.Layer) -> str:
    """The name of the last encoder layer of a transformer backbone (the last element of
    the last ``LayerList`` under ``backbone.model.encoder``: ERNIE, BERT and ELECTRA's last
    transformer block ``encoder.layers.{N-1}``, ALBERT's shared layer). Its output is the
    ``encoder_outputs`` every head reads (directly, or through the pooler, which only the
    sentence-level heads use and so is not shared)."""
    encoder = getattr(getattr(getattr(model, "backbone", None), "model", None), "encoder", None)
    lists = [(name, layer) for name, layer in encoder.named_sublayers()
             if isinstance(layer, nn.LayerList)] if encoder is not None else []
    if not lists:
        raise ValueError(f"GradNorm cannot find the last shared layer of a {type(getattr(model, 'backbone', model)).__name__} "
                         "backbone: pass GradNorm(layer='<name of a sublayer of the model>')")
    name, layers = lists[-1]
    return f"backbone.model.encoder.{name}.{len(layers) - 1}"


class GradNorm(Balancer):
    """Learned loss weights ``w_i`` (1 at the start) that equalise the tasks' gradient norms at
    the last shared layer ``W``, scaled by each task's relative inverse training rate:

    - ``G_i = |grad_W w_i L_i|``, ``Gbar = mean_i G_i``, ``r_i = (L_i/L_i(0)) / mean_j (L_j/L_j(0))``;
    - ``L_grad = sum_i |G_i - Gbar r_i^alpha|`` with the target held constant;
    - the network steps on ``grad sum_i w_i L_i``; ``w`` steps on ``d L_grad / d w`` (the balancer's
      own Adam, ``lr``) and is then renormalised to ``sum_i w_i = T`` (the number of tasks), as in
      the paper's Algorithm 1. A weight is kept at or above ``1e-6`` before the renormalisation.

    ``W`` is the last encoder layer of the backbone (:func:`last_shared_layer`: for ERNIE the
    parameters of ``backbone.model.encoder.layers.{N-1}``: attention, feed-forward and both layer
    norms), or the sublayer of the model named ``layer``. ALBERT's shared layer runs at every
    depth, so its per-task gradients are whole backward passes. ``L_i(0)`` is task
    ``i``'s loss in the first update that held it. ``alpha`` is the paper's asymmetry: 0 equalises
    the gradient norms, larger values pull harder on the tasks that train slower.

    Needs every task in the update (``min_tasks = 2``). The per-task gradients of ``W`` alone are
    kept (``paddle.grad`` back to ``W`` per task: through the heads and one layer, stopping at the
    layer's input, which a forward pre-hook on ``W`` records) beside the one backward of the
    weighted sum, and averaged over data-parallel ranks before the norms. ``w``,
    its Adam moments and ``L(0)`` are saved in the checkpoint. Cost: one partial backward per task
    of each pass plus the usual backward."""

    name = "gradnorm"
    min_tasks = 2
    reads_losses = True
    task_gradients = "layer"

    def __init__(self, alpha: float = 1.5, lr: float = 0.025, layer: Optional[str] = None):
        super().__init__()
        self.alpha, self.lr, self.layer = float(alpha), float(lr), layer
        self.weights = np.zeros(0)
        self.initial = np.zeros(0)
        self.optimizer = VectorAdam(0, self.lr)
        self._layer_params: List[paddle.Tensor] = []
        self._hooks = []
        self._layer_input: Optional[paddle.Tensor] = None
        self._layer_calls = 0  # runs of W in the current forward pass

    def bind(self, tasks: Sequence[str], model=None) -> None:
        super().bind(tasks, model)
        self.weights = np.ones(len(self.tasks))
        self.initial = np.full(len(self.tasks), np.nan)
        self.optimizer = VectorAdam(len(self.tasks), self.lr)
        if model is not None:
            name = self.layer if self.layer is not None else last_shared_layer(model)
            layer = dict(model.named_sublayers()).get(name)
            self._layer_params = [p for p in layer.parameters() if not p.stop_gradient] if layer is not None else []
            if not self._layer_params:
                raise ValueError(f"GradNorm: the model has no sublayer {name!r} with trainable parameters")
            self.layer = name
            for hook in self._hooks:
                hook.remove()
            self._hooks = [model.backbone.register_forward_pre_hook(self._new_pass),
                           layer.register_forward_pre_hook(self._record_input)]

    def _new_pass(self, layer: nn.Layer, inputs) -> None:
        self._layer_calls = 0

    def _record_input(self, layer: nn.Layer, inputs) -> None:
        self._layer_calls += 1
        self._layer_input = inputs[0]

    def layer_parameters(self, model: nn.Layer) -> List[paddle.Tensor]:
        return self._layer_params

    def layer_input(self) -> Optional[paddle.Tensor]:
        """The input of ``W`` in the last forward pass, where the per-task backward stops; None when
        ``W`` ran more than once in it (ALBERT's shared layer: its gradient needs the whole encoder)."""
        return self._layer_input if self._layer_calls == 1 else None

    def loss_weights(self, tasks: Sequence[str], losses: Optional[Mapping[str, float]] = None) -> Dict[str, float]:
        return {task: float(self.weights[i]) for task, i in zip(tasks, self.index(tasks))}

    def step(self, tasks: Sequence[str], losses: Mapping[str, float], norms: np.ndarray) -> None:
        """Update the weights from the update's losses and ``norms[i] = |grad_W L_i|`` (unweighted)."""
        where = self.index(tasks)
        values = np.array([losses[t] for t in tasks], dtype="float64")
        fresh = np.isnan(self.initial[where])
        self.initial[where[fresh]] = values[fresh]
        grad = gradnorm_weight_gradient(self.weights[where], norms, values, self.initial[where], self.alpha)
        weights = np.maximum(self.optimizer.step(self.weights, grad, where), 1e-6)
        self.weights = weights * len(self.tasks) / weights.sum()

    def after_update(self, losses, bank=None, reforward=None) -> None:
        tasks = list(losses)
        self._layer_input = None  # do not keep the update's graph alive
        per_task = bank.gradients_of(self._layer_params)
        weighted = np.array([float(paddle.sqrt(paddle.add_n([paddle.sum(g.astype("float32") ** 2)
                                                             for g in per_task[t]]))) if per_task.get(t) else 0.0
                             for t in tasks])
        # the bank holds the gradients of the weighted losses w_i L_i: divide to get |grad_W L_i|
        self.step(tasks, losses, weighted / self.weights[self.index(tasks)])

    def state_dict(self) -> Dict[str, Any]:
        return {"weights": self.weights.tolist(), "initial_losses": [None if np.isnan(v) else float(v)
                                                                     for v in self.initial],
                "adam": self.optimizer.state_dict(), "layer": self.layer}

    def set_state_dict(self, state: Mapping[str, Any]) -> None:
        if state["layer"] != self.layer:
            raise ValueError(f"the checkpoint's GradNorm measured the gradient norms at {state['layer']!r}, "
                             f"this run at {self.layer!r}")
        self.weights = np.array(state["weights"], dtype="float64")
        self.initial = np.array([np.nan if v is None else v for v in state["initial_losses"]], dtype="float64")
        self.optimizer.set_state_dict(state["adam"])
