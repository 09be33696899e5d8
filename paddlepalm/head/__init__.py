from paddlepalm.head.base_head import Head
from paddlepalm.head.bilm import BiLM
from paddlepalm.head.cls import Classify
from paddlepalm.head.mask_lm import MaskLM
from paddlepalm.head.match import Match
from paddlepalm.head.mrc import MRC
from paddlepalm.head.rtd import ReplacedTokenDetection
from paddlepalm.head.seq_label import SequenceLabel
from paddlepalm.head.sop import SentenceOrder

__all__ = ["Head", "Classify", "Match", "MRC", "SequenceLabel", "MaskLM", "ReplacedTokenDetection",
           "SentenceOrder", "BiLM"]
