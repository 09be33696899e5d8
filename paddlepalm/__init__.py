"""paddlepalm: multi-task learning for NLP on PaddlePaddle 3, with the PALM 2.x script API."""
from paddlepalm import runtime  # noqa: F401  (its settings must be made before paddle is imported)
from paddlepalm import backbone, downloader, head, lr_sched, optimizer, reader, sampling  # noqa: E402
from paddlepalm.inference import Predictor  # noqa: E402
from paddlepalm.multihead_trainer import MultiHeadTrainer  # noqa: E402
from paddlepalm.trainer import Trainer  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Trainer", "MultiHeadTrainer", "Predictor", "reader", "backbone", "head", "lr_sched", "optimizer", "downloader", "sampling"]
