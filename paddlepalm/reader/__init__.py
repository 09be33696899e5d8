from paddlepalm.reader.base_reader import Reader
from paddlepalm.reader.cls import ClassifyReader
from paddlepalm.reader.errors import DataFormatError
from paddlepalm.reader.match import MatchReader
from paddlepalm.reader.mrc import MRCReader
from paddlepalm.reader.seq_label import SequenceLabelReader

__all__ = ["Reader", "ClassifyReader", "MatchReader", "MRCReader", "SequenceLabelReader", "DataFormatError"]
