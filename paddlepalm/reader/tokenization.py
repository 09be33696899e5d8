"""Tokenizers over a local ``vocab.txt`` (paddlenlp's WordPiece implementation)."""
import hashlib
import os
import tempfile

from paddlenlp.transformers import BertTokenizer

from paddlepalm.reader.word_tokenizer import SPLITS, WordTokenizer

_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def build_tokenizer(vocab_path: str, kind: str = "wordpiece", lang: str = "en",
                    do_lower_case: bool = False):
    """WordPiece tokenizer; with ``lang='cn'`` Chinese text is split per character.

    paddlenlp's basic tokenizer already splits CJK characters apart for every
    ``lang``, which is what BERT/ERNIE Chinese vocabularies expect. The kinds
    ``'whitespace'``, ``'jieba'`` and ``'char'`` give a word-level
    :class:`~paddlepalm.reader.word_tokenizer.WordTokenizer` over an ELMo-style
    vocabulary (``<S>``, ``</S>``, ``<UNK>``).
    """
    if kind in SPLITS:
        if not os.path.isfile(vocab_path):
            raise FileNotFoundError(f"vocabulary file not found: {vocab_path}")
        return WordTokenizer(vocab_path, split=kind, lowercase=do_lower_case)
    if kind != "wordpiece":
        raise ValueError(f"tokenizer must be 'wordpiece' or one of {SPLITS}, got {kind!r}")
    if lang not in ("en", "cn", "zh"):
        raise ValueError(f"lang must be 'en' or 'cn', got {lang!r}")
    if not os.path.isfile(vocab_path):
        raise FileNotFoundError(f"vocabulary file not found: {vocab_path}")
    with open(vocab_path, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f]
    tokens = [line.split("\t")[0] for line in lines]
    missing = [t for t in _SPECIAL[:4] if t not in tokens]
    if missing:
        raise ValueError(f"{vocab_path}: vocabulary lacks special tokens {missing}")
    if any("\t" in line for line in lines):
        vocab_path = _plain_vocab_copy(vocab_path, lines)
    return BertTokenizer(vocab_path, do_lower_case=do_lower_case)


def _plain_vocab_copy(vocab_path: str, lines) -> str:
    """ERNIE releases write ``token<TAB>id`` lines; paddlenlp reads one token per line.

    Ids must equal line numbers for the embedding rows to line up, which we check.
    """
    tokens = []
    for number, line in enumerate(lines):
        token, _, index = line.partition("\t")
        if index and int(index) != number:
            raise ValueError(f"{vocab_path}:{number + 1}: id {index} differs from its line index {number}")
        tokens.append(token)
    text = "\n".join(tokens) + "\n"
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), f"paddlepalm-vocab-{digest}.txt")
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    return path
