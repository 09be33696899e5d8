"""Static loss weights (the default)."""
from paddlepalm.balancing.base_balancer import Balancer


class Static(Balancer):
    """Each task's loss enters every update multiplied by its ``Trainer.loss_weight``, nothing
    learned: the behaviour of ``MultiHeadTrainer(balancer=None)``. Cost: nothing beyond the
    forward and backward passes of the update."""
