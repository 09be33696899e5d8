from paddlepalm.lr_sched.schedualer import Schedualer


class WarmupSchedualer(Schedualer):
    """Linear warm-up from 0 to the base rate over ``warmup_steps``, then constant.

    (PALM's version returned None and left the rate constant from step 0.)
    """

    def __init__(self, warmup_steps: int):
        super().__init__()
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.warmup_steps = int(warmup_steps)

    def multiplier(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        return 1.0
