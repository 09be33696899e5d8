from paddlepalm.head.base_head import Head
from paddlepalm.head.bilm import BiLM
from paddlepalm.head.cls import Classify
from paddlepalm.head.seq_label import SequenceLabel

__all__ = ["Head", "Classify", "SequenceLabel", "BiLM"]
