"""Learning-rate schedules (PALM's names, misspelling included).

A schedule is a function of the step that multiplies the base learning rate;
:meth:`build` turns it into a ``paddle.optimizer.lr.LambdaDecay``. The trainer
calls :meth:`cover` with the real number of training steps so that a schedule
never ends before the multi-task budget does (a PALM bug).
"""
import paddle


class Schedualer:
    def __init__(self):
        self.num_train_steps = None

    def multiplier(self, step: int) -> float:
        raise NotImplementedError

    def build(self, learning_rate: float) -> paddle.optimizer.lr.LRScheduler:
        return paddle.optimizer.lr.LambdaDecay(learning_rate, self.multiplier)

    def cover(self, total_steps: int) -> bool:
        """Stretch the schedule to ``total_steps`` if it is shorter; True if it changed."""
        if self.num_train_steps is not None and total_steps > self.num_train_steps:
            self.num_train_steps = int(total_steps)
            return True
        return False
