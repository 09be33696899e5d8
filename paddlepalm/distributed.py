"""Data parallelism with ``paddle.distributed`` (started by ``python -m paddle.distributed.launch``).

Every rank runs the same task at each step (the task schedule is drawn from one
seed), so after ``backward`` the same set of parameters has gradients on every
rank: the shared backbone (or the part of it the task used) and the active head.
Those gradients are averaged in one coalesced all-reduce; parameters without a
gradient (the inactive heads) take no part, so they cause no hang and get no
update. ``paddle.DataParallel`` is not used because it reduces a zero gradient
for unused parameters, which would move an inactive head through Adam's momentum
and weight decay.
"""
import atexit
import os
import sys
from typing import Any, List, Sequence

import paddle
import paddle.distributed as dist

_initialized = False


def world_size() -> int:
    return int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))


def rank() -> int:
    return int(os.environ.get("PADDLE_TRAINER_ID", "0"))


def is_main() -> bool:
    return rank() == 0


def ensure_initialized() -> bool:
    """Set up the process group once when launched on several ranks; True if parallel."""
    global _initialized
    if world_size() <= 1:
        return False
    if not _initialized:
        dist.init_parallel_env()
        _initialized = True
        _leave_together_at_exit()
    return True


def _leave_together_at_exit() -> None:
    """At a normal exit, wait for every rank before the process group is torn down.

    A rank that exits while its peer is still shutting down gloo can make the peer abort
    (SIGABRT) after its work is done; seen rarely in the 2-process tests. After an
    uncaught exception there is no barrier: the launcher stops the other ranks."""
    failed = []
    previous_hook = sys.excepthook

    def note_failure(*exc_info):
        failed.append(True)
        previous_hook(*exc_info)

    def barrier_unless_failed():
        if not failed:
            try:
                dist.barrier()
            except Exception:  # a peer already gone: nothing to wait for
                pass

    sys.excepthook = note_failure
    atexit.register(barrier_unless_failed)


def broadcast_parameters(model: paddle.nn.Layer) -> None:
    """Give every rank rank 0's parameters (their random initializations differ)."""
    if not ensure_initialized():
        return
    with paddle.no_grad():
        for param in model.parameters():
            dist.broadcast(param, src=0)


def average_gradients(parameters: Sequence[paddle.Tensor]) -> None:
    """Average the existing gradients over ranks in one all-reduce."""
    if not ensure_initialized():
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = paddle.concat([g.reshape([-1]) for g in grads])
    dist.all_reduce(flat)
    flat = flat / world_size()
    offset = 0
    for grad in grads:
        size = grad.size
        grad.set_value(flat[offset:offset + size].reshape(grad.shape))
        offset += size


def gather_objects(obj: Any) -> List[Any]:
    """``obj`` of every rank, in rank order (just ``[obj]`` in a single process)."""
    if not ensure_initialized():
        return [obj]
    gathered: List[Any] = []
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier() -> None:
    if ensure_initialized():
        dist.barrier()


def all_ranks_agree(flag: bool) -> bool:
    """True when ``flag`` is true on every rank (one tiny all-reduce; no-op on one rank)."""
    if world_size() <= 1:
        return flag
    value = paddle.to_tensor([1 if flag else 0], dtype="int32")
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())
