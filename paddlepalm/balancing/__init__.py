"""Loss balancing for ``MultiHeadTrainer(trainers, balancer=...)``: how the tasks' losses of an
update become its gradient (docs/multitask.md, "Loss balancing")."""
from paddlepalm.balancing.base_balancer import Balancer
from paddlepalm.balancing.dwa import DWA
from paddlepalm.balancing.famo import FAMO
from paddlepalm.balancing.gradnorm import GradNorm
from paddlepalm.balancing.pcgrad import PCGrad
from paddlepalm.balancing.static import Static
from paddlepalm.balancing.uncertainty import Uncertainty

__all__ = ["Balancer", "Static", "Uncertainty", "DWA", "FAMO", "PCGrad", "GradNorm"]
