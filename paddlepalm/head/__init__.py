from paddlepalm.head.base_head import Head
from paddlepalm.head.cls import Classify
from paddlepalm.head.match import Match
from paddlepalm.head.mrc import MRC
from paddlepalm.head.seq_label import SequenceLabel

__all__ = ["Head", "Classify", "Match", "MRC", "SequenceLabel"]
