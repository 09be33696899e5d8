"""PALM 2.x's ``paddlepalm.distribute``: device counts that example scripts import.

``gpu_dev_count``: GPUs this job trains on (the data-parallel world size under
``paddle.distributed.launch``, else 1 when Paddle sees a GPU, else 0); ``cpu_dev_count``: CPU
cores of this machine. Read once at import, as PALM did. Data parallelism itself is in
:mod:`paddlepalm.distributed`.
"""
import os

import paddle

from paddlepalm import distributed


def gpu_count() -> int:
    if not paddle.is_compiled_with_cuda() or paddle.device.cuda.device_count() == 0:
        return 0
    return max(1, distributed.world_size())  # from the launcher's environment: no process group is set up here


gpu_dev_count: int = gpu_count()
cpu_dev_count: int = os.cpu_count() or 1

__all__ = ["gpu_dev_count", "cpu_dev_count"]
