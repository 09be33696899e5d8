"""Word-level tokenization over an ELMo-style vocabulary (``<S>``, ``</S>``, ``<UNK>``).

A vocabulary file has one token per line (an optional ``<TAB>count`` after it is
ignored); ``<S>``, ``</S>`` and ``<UNK>`` must be in it. How text is split:

* ``'whitespace'``: on runs of whitespace (text already segmented, like the
  released Paddle ELMo's corpus);
* ``'jieba'``: raw Chinese segmented with jieba;
* ``'char'``: every non-space character is a token (Chinese character-level LM,
  which lines up with character-tagged NER sets).

The tokenizer has the attributes the readers use (``vocab``, ``cls_token``,
``sep_token``, ``pad_token``, ``unk_token``, ``tokenize``,
``convert_tokens_to_ids``), so ``ClassifyReader``/``SequenceLabelReader`` work
with it unchanged: ``<S>`` plays ``[CLS]`` and ``</S>`` plays ``[SEP]``.
"""
import collections
from typing import Dict, Iterable, List, Literal, Optional, get_args

from paddlepalm.reader.errors import DataFormatError
from paddlepalm.reader.segmentation import fold_width
from paddlepalm.reader.tsv import check_no_nul
from paddlepalm.utils.fileio import FileFormatError, read_lines, write_text

BOS, EOS, UNK, PAD = "<S>", "</S>", "<UNK>", "<PAD>"
SPECIAL_TOKENS = [BOS, EOS, UNK]
WordSplit = Literal["whitespace", "jieba", "char"]  # how a word-level tokenizer splits text
SPLITS = get_args(WordSplit)


def split_text(text: str, split: str, lowercase: bool = False, fold: bool = False) -> List[str]:
    if fold:
        text = fold_width(text)
    if lowercase:
        text = text.lower()
    if split == "whitespace":
        return text.split()
    if split == "char":
        return [c for c in text if not c.isspace()]
    if split == "jieba":
        import jieba

        return [w for w in jieba.lcut(text) if w.strip()]
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


class WordTokenizer:
    is_word_level = True
    cls_token, sep_token, unk_token = BOS, EOS, UNK

    def __init__(self, vocab_path: str, split: str = "whitespace", lowercase: bool = False, fold: bool = False):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.split, self.lowercase, self.fold = split, lowercase, fold
        self.vocab: Dict[str, int] = {}
        for line in read_vocab_lines(vocab_path):
            token = line.split("\t")[0]
            if token and token not in self.vocab:
                self.vocab[token] = len(self.vocab)
        missing = [t for t in SPECIAL_TOKENS if t not in self.vocab]
        if missing:
            raise ValueError(f"{vocab_path}: word vocabulary lacks special tokens {missing}")
        self.ids_to_tokens = list(self.vocab)
        # padded positions are masked; without a <PAD> entry they carry the </S> id
        self.pad_token = PAD if PAD in self.vocab else EOS
        self.unk_id = self.vocab[UNK]

    def __len__(self) -> int:
        return len(self.vocab)

    def tokenize(self, text: str) -> List[str]:
        return split_text(text, self.split, self.lowercase, self.fold)

    def word_pieces(self, word: str) -> List[str]:
        """The tokens of one given word (a unit of pre-tokenized text): its characters for
        ``'char'``, else the word itself (it is not segmented again)."""
        if self.split == "char":
            return self.tokenize(word)
        word = fold_width(word) if self.fold else word
        word = word.lower() if self.lowercase else word
        return [word] if word.strip() else []

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> List[int]:
        return [self.vocab.get(t, self.unk_id) for t in tokens]

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> List[str]:
        return [self.ids_to_tokens[int(i)] for i in ids]


def read_vocab_lines(path: str) -> List[str]:
    """Lines of a vocabulary file (UTF-8, a byte-order mark dropped); a NUL byte is an error."""
    try:
        lines = read_lines(path)
    except FileFormatError as err:
        raise DataFormatError(err.path, err.line, err.problem) from None
    for number, line in enumerate(lines, start=1):
        check_no_nul(path, number, line)
    return lines


def build_word_vocab(sentences: Iterable[List[str]], min_freq: int = 1, max_size: Optional[int] = None) -> List[str]:
    """``<S>``, ``</S>``, ``<UNK>``, then words by falling frequency (ties: first seen).

    Frequency order matters: the sampled softmax draws ids from a log-uniform
    (Zipf) distribution that assumes frequent words have small ids. Memory grows
    with the number of distinct words, not with the corpus length.
    """
    counts = collections.Counter()
    for words in sentences:
        counts.update(words)
    vocab = list(SPECIAL_TOKENS)
    for word, count in counts.most_common():
        if count < min_freq or (max_size is not None and len(vocab) >= max_size):
            break
        if word not in SPECIAL_TOKENS:
            vocab.append(word)
    return vocab


def write_word_vocab(tokens: List[str], path: str) -> None:
    write_text(path, "\n".join(tokens) + "\n")
