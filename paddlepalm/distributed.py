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
import socket
import sys
import time
from typing import Any, List, Sequence, Tuple

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
        _leave_in_order_at_exit(_processes())
    return True


def _processes() -> List[Tuple[str, int]]:
    """(host name, pid) of every rank, in rank order."""
    gathered: List[Any] = []
    dist.all_gather_object(gathered, (socket.gethostname(), os.getpid()))
    return [tuple(item) for item in gathered]


def _leave_in_order_at_exit(processes: Sequence[Tuple[str, int]]) -> None:
    """At a normal exit, tear the ranks down one side at a time: rank 0 (the store host) last.

    Paddle's native teardown (the gloo contexts and their event-loop threads, the TCP store
    and its daemon thread) takes seconds on a loaded machine; when both ranks ran it at once,
    each while the other's sockets were closing, rank 0 now and then died with SIGABRT after
    its work was done (1 of 120 oversubscribed runs of tools/dist_stress.py). Now every rank
    first passes a barrier; the other ranks then exit at once while rank 0 waits until their
    processes are gone (ranks on its host; ranks on other hosts only pass the barrier), then
    tears down alone.

    After an uncaught exception there is no barrier and no wait: the launcher stops the
    other ranks."""
    failed = []
    previous_hook = sys.excepthook

    def note_failure(*exc_info):
        failed.append(True)
        previous_hook(*exc_info)

    def leave():
        if failed:
            return
        try:
            dist.barrier()
        except Exception:  # a peer already gone: nothing to wait for
            return
        if is_main():
            host = socket.gethostname()
            wait_until_gone([pid for h, pid in processes[1:] if h == host])

    sys.excepthook = note_failure
    atexit.register(leave)


def wait_until_gone(pids: Sequence[int], timeout: float = 60.0) -> bool:
    """Wait until these processes have exited (a zombie counts as gone); False at the timeout."""
    deadline = time.monotonic() + timeout
    while any(process_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def process_alive(pid: int) -> bool:
    """Whether the process runs (Linux /proc; without it every process counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def broadcast_parameters(model: paddle.nn.Layer) -> None:
    """Give every rank rank 0's parameters (their random initializations differ)."""
    if not ensure_initialized():
        return
    with paddle.no_grad():
        for param in model.parameters():
            dist.broadcast(param, src=0)


def average_gradients(parameters: Sequence[paddle.Tensor]) -> None:
    """Average the existing gradients over ranks in one all-reduce."""
    average_tensors([p.grad for p in parameters if p.grad is not None])


def average_tensors(tensors: Sequence[paddle.Tensor]) -> None:
    """Replace each tensor by its mean over ranks, in one all-reduce (no-op on one rank)."""
    if not tensors or not ensure_initialized():
        return
    flat = paddle.concat([t.reshape([-1]) for t in tensors])
    dist.all_reduce(flat)
    flat = flat / world_size()
    offset = 0
    for tensor in tensors:
        size = tensor.size
        tensor.set_value(flat[offset:offset + size].reshape(tensor.shape))
        offset += size


def mean_over_ranks(values: Sequence[float]) -> List[float]:
    """The mean of each value over ranks, in float64 (the values themselves on one rank)."""
    if not ensure_initialized():
        return [float(v) for v in values]
    tensor = paddle.to_tensor([float(v) for v in values], dtype="float64")
    dist.all_reduce(tensor)
    return (tensor / world_size()).numpy().tolist()


def gather_objects(obj: Any) -> List[Any]:
    """``obj`` of every rank, in rank order (just ``[obj]`` in a single process)."""
    if not ensure_initialized():
        return [obj]
    gathered: List[Any] = []
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (``obj`` itself in a single process): how a decision made on
    rank 0 alone (a dynamic sampling schedule's) reaches the others."""
    if not ensure_initialized():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


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
