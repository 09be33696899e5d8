"""Tokenizers over a local ``vocab.txt`` (paddlenlp's WordPiece implementation)."""
import os
from typing import Dict, List, Literal, get_args

from paddlenlp.data import Vocab
from paddlenlp.transformers import BertTokenizer

from paddlepalm.reader.errors import DataFormatError
from paddlepalm.reader.segmentation import fold_width
from paddlepalm.reader.word_tokenizer import SPLITS, WordSplit, WordTokenizer, read_vocab_lines

_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# the readers' ``tokenizer`` and ``lang`` (their signatures use these: the CLI validates a config by them)
TokenizerKind = Literal[WordSplit, "wordpiece"]
Lang = Literal["en", "cn", "zh"]
TOKENIZERS, LANGS = get_args(TokenizerKind), get_args(Lang)


def build_tokenizer(vocab_path: str, kind: TokenizerKind = "wordpiece", lang: Lang = "en",
                    do_lower_case: bool = False, fold: bool = False):
    """WordPiece tokenizer; with ``lang='cn'`` Chinese text is split per character.

    paddlenlp's basic tokenizer already splits CJK characters apart for every
    ``lang``, which is what BERT/ERNIE Chinese vocabularies expect. The kinds
    ``'whitespace'``, ``'jieba'`` and ``'char'`` give a word-level
    :class:`~paddlepalm.reader.word_tokenizer.WordTokenizer` over an ELMo-style
    vocabulary (``<S>``, ``</S>``, ``<UNK>``). ``fold``: full-width characters are read as their
    half-width forms (:func:`~paddlepalm.reader.segmentation.fold_width`).
    """
    if kind in SPLITS:
        if not os.path.isfile(vocab_path):
            raise FileNotFoundError(f"vocabulary file not found: {vocab_path}")
        return WordTokenizer(vocab_path, split=kind, lowercase=do_lower_case, fold=fold)
    if kind != "wordpiece":
        raise ValueError(f"tokenizer must be one of {TOKENIZERS}, got {kind!r}")
    if lang not in LANGS:
        raise ValueError(f"lang must be 'en' or 'cn', got {lang!r}")
    if not os.path.isfile(vocab_path):
        raise FileNotFoundError(f"vocabulary file not found: {vocab_path}")
    token_to_id = read_wordpiece_vocab(vocab_path)
    missing = [t for t in _SPECIAL[:4] if t not in token_to_id]
    if missing:
        raise ValueError(f"{vocab_path}: vocabulary lacks special tokens {missing}")
    tokenizer = _ParsedVocabTokenizer(vocab_path, token_to_id, do_lower_case=do_lower_case)
    tokenizer.fold = fold
    return tokenizer


def read_wordpiece_vocab(vocab_path: str) -> Dict[str, int]:
    """``token -> id`` of a vocabulary with one token per line, or ``token<TAB>id`` lines
    (ERNIE releases). Ids must equal line numbers for the embedding rows to line up."""
    token_to_id: Dict[str, int] = {}
    for number, line in enumerate(read_vocab_lines(vocab_path)):
        token, tab, index = line.partition("\t")
        if tab:
            try:
                value = int(index)
            except ValueError:
                raise DataFormatError(vocab_path, number + 1, f"token id {index!r} is not an integer") from None
            if value != number:
                raise DataFormatError(vocab_path, number + 1, f"id {value} differs from its line index {number}")
        token_to_id[token] = number  # a repeated token keeps its last line, as paddlenlp's loader does
    return token_to_id


class _ParsedVocabTokenizer(BertTokenizer):
    """paddlenlp's ``BertTokenizer`` over a vocabulary we parsed ourselves.

    paddlenlp re-reads ``vocab_file`` with its own loader, which keeps a byte-order
    mark, a ``\\r`` and a ``<TAB>id`` suffix as part of the token; we hand it the
    parsed tokens instead (no copy of the file anywhere).
    """

    def __init__(self, vocab_file: str, token_to_id: Dict[str, int], **kwargs):
        self._parsed_vocab = token_to_id
        super().__init__(vocab_file, **kwargs)

    fold = False

    def tokenize(self, text: str, **kwargs) -> List[str]:
        return super().tokenize(fold_width(text) if self.fold else text, **kwargs)

    def load_vocabulary(self, filepath, unk_token=None, pad_token=None, bos_token=None, eos_token=None, **kwargs):
        return Vocab.from_dict(self._parsed_vocab, unk_token=unk_token, pad_token=pad_token,
                               bos_token=bos_token, eos_token=eos_token, **kwargs)


def vocab_ids(tokenizer) -> List[int]:
    """Every token id of ``tokenizer``'s vocabulary."""
    vocab = tokenizer.vocab
    mapping = getattr(vocab, "token_to_idx", vocab)
    return list(mapping.values())
