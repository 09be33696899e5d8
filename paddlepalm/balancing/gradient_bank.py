"""Each task's gradient of one update kept apart (per-task clipping; the gradient methods of
loss balancing), and the clipping factor. Which parameters a bank keeps is the balancer's choice
(:meth:`paddlepalm.balancing.Balancer.gradient_bank`)."""
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import paddle

from paddlepalm import distributed


class GradientBank:
    """Each task's gradient of one update, kept apart: so that it can be clipped on its own
    before the tasks' gradients are combined (``Trainer(clip_norm=...)``), and for the gradient
    methods of loss balancing (PCGrad combines them; GradNorm reads the norms of those of one
    layer). ``only``: keep the gradients of these parameters alone; the update's gradient then
    comes from the ordinary backward (``partial``); ``boundary()`` gives the input of their layer
    in the current pass, where the per-task backward stops."""

    def __init__(self, parameters: Sequence[paddle.Tensor], only: Optional[Sequence[paddle.Tensor]] = None,
                 boundary: Optional[Callable[[], Optional[paddle.Tensor]]] = None):
        trainable = [p for p in parameters if not p.stop_gradient]
        self.params = trainable if only is None else list(only)
        self.partial = only is not None
        # paddle.grad runs the custom backward functions (utils/cpu_speed.py) between the loss and
        # the tensors it is asked for; each returns the gradients of its inputs, which Paddle
        # accepts only for tensors on the way to an asked one. A partial bank asks for every
        # parameter from the first kept one on (in model order: the later layers and the heads) and
        # for the layer's input, where the backward stops; without that input (a layer that runs
        # more than once per pass, as ALBERT's shared one), for every parameter.
        first = min(i for i, p in enumerate(trainable) if any(p is q for q in self.params)) if only else 0
        self._trainable, self._downstream = trainable, trainable[first:]
        self._boundary = boundary
        self.grads: Dict[str, Dict[int, paddle.Tensor]] = {}

    def add(self, task: str, loss: paddle.Tensor, retain_graph: bool) -> None:
        """Add the gradient of ``loss`` to ``task``'s account (``paddle.grad``: the parameters'
        ``.grad`` stay untouched until ``combine``)."""
        account = self.grads.setdefault(task, {})
        stop = self._boundary() if self._boundary is not None else None
        if self.partial and stop is not None and not stop.stop_gradient:
            asked = self._downstream + [stop]
        else:
            asked = self._trainable
        grads = paddle.grad([loss], asked, retain_graph=retain_graph, allow_unused=True)
        position = {id(p): j for j, p in enumerate(asked)}
        for i, param in enumerate(self.params):
            grad = grads[position[id(param)]]
            if grad is not None:
                account[i] = account[i] + grad if i in account else grad

    def average_over_ranks(self) -> None:
        """Data parallelism: every task's gradient becomes its mean over ranks (one all-reduce),
        before any clipping or combination, so every rank combines the same gradients."""
        distributed.average_tensors([grad for grads in self.grads.values() for grad in grads.values()])

    def gradients_of(self, params: Sequence[paddle.Tensor]) -> Dict[str, List[paddle.Tensor]]:
        """Each task's gradients of ``params`` (those it has)."""
        where = {id(p): i for i, p in enumerate(self.params)}
        return {task: [grads[where[id(p)]] for p in params if where.get(id(p)) in grads]
                for task, grads in self.grads.items()}

    def combine(self, clip_norms: Mapping[str, Optional[float]],
                combine_fn: Callable[[Dict[str, Dict[int, paddle.Tensor]]], Dict[int, paddle.Tensor]]) -> None:
        """Set every parameter's gradient to ``combine_fn`` (the balancer's: the sum, or PCGrad's
        projection) of the tasks' gradients, each clipped to its norm first."""
        clipped: Dict[str, Dict[int, paddle.Tensor]] = {}
        for task, grads in self.grads.items():
            scale = clip_scale(list(grads.values()), clip_norms.get(task))
            clipped[task] = grads if scale is None else {i: grad * scale for i, grad in grads.items()}
        for i, grad in combine_fn(clipped).items():
            self.params[i]._set_grad_ivar(grad)


def clip_scale(grads: Sequence[paddle.Tensor], clip_norm: Optional[float]) -> Optional[paddle.Tensor]:
    """Paddle's ``ClipGradByGlobalNorm`` factor ``c / max(norm, c)``; None when not clipping."""
    if clip_norm is None or not grads:
        return None
    norm = paddle.sqrt(paddle.add_n([paddle.sum(g.astype("float32") ** 2) for g in grads]))
    return clip_norm / paddle.maximum(norm, paddle.to_tensor(clip_norm, dtype="float32"))
