from paddlepalm.lr_sched.schedualer import Schedualer


class TriangularSchedualer(Schedualer):
    """Linear warm-up from 0 to the base rate over ``warmup_steps``, then linear decay to 0
    at ``num_train_steps``."""

    def __init__(self, warmup_steps: int, num_train_steps: int):
        super().__init__()
        if warmup_steps < 0 or num_train_steps <= 0 or warmup_steps > num_train_steps:
            raise ValueError(f"need 0 <= warmup_steps <= num_train_steps, got {warmup_steps}, {num_train_steps}")
        self.warmup_steps = int(warmup_steps)
        self.num_train_steps = int(num_train_steps)

    def multiplier(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        remaining = self.num_train_steps - step
        return max(0.0, remaining / max(1, self.num_train_steps - self.warmup_steps))
