from paddlepalm.reader.base_reader import Reader
from paddlepalm.reader.cls import ClassifyReader
from paddlepalm.reader.corpus import CorpusReader, MaskedCorpusReader, SentenceOrderReader
from paddlepalm.reader.errors import DataFormatError
from paddlepalm.reader.lm_corpus import LMCorpusReader, build_vocab_from_corpus
from paddlepalm.reader.mask_lm import MaskLMReader
from paddlepalm.reader.match import MatchReader
from paddlepalm.reader.mrc import MRCReader
from paddlepalm.reader.seq_label import SequenceLabelReader
from paddlepalm.reader.word_tokenizer import WordTokenizer, write_word_vocab

__all__ = ["Reader", "ClassifyReader", "MatchReader", "MRCReader", "SequenceLabelReader", "MaskLMReader",
           "CorpusReader", "MaskedCorpusReader", "SentenceOrderReader", "LMCorpusReader", "DataFormatError",
           "WordTokenizer", "build_vocab_from_corpus", "write_word_vocab"]
