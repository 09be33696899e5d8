from paddlepalm.optimizer.adam import Adam, AdamW
from paddlepalm.optimizer.base_optimizer import Optimizer

__all__ = ["Optimizer", "Adam", "AdamW"]
