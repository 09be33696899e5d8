from paddlepalm.reader.base_reader import Reader
from paddlepalm.reader.cls import ClassifyReader
from paddlepalm.reader.errors import DataFormatError
from paddlepalm.reader.lm_corpus import LMCorpusReader, build_vocab_from_corpus
from paddlepalm.reader.seq_label import SequenceLabelReader
from paddlepalm.reader.word_tokenizer import WordTokenizer, write_word_vocab

__all__ = ["Reader", "ClassifyReader", "SequenceLabelReader", "LMCorpusReader", "DataFormatError",
           "WordTokenizer", "build_vocab_from_corpus", "write_word_vocab"]
