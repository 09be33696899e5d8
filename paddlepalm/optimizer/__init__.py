from paddlepalm.optimizer.adam import Adam, AdamW
from paddlepalm.optimizer.base_optimizer import Optimizer
from paddlepalm.optimizer.lamb import LAMB

__all__ = ["Optimizer", "Adam", "AdamW", "LAMB"]
