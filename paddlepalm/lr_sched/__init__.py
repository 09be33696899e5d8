from paddlepalm.lr_sched.schedualer import Schedualer
from paddlepalm.lr_sched.slanted_triangular_schedualer import TriangularSchedualer
from paddlepalm.lr_sched.warmup_schedualer import WarmupSchedualer

__all__ = ["Schedualer", "TriangularSchedualer", "WarmupSchedualer"]
