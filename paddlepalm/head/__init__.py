from paddlepalm.head.base_head import Head
from paddlepalm.head.cls import Classify
from paddlepalm.head.mask_lm import MaskLM
from paddlepalm.head.seq_label import SequenceLabel

__all__ = ["Head", "Classify", "SequenceLabel", "MaskLM"]
