"""Building a WordPiece vocabulary from training text (for models trained from scratch)."""
import collections
from typing import Iterable, List

from paddlenlp.transformers.bert.tokenizer import BasicTokenizer

from paddlepalm.utils import fileio

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_vocab(texts: Iterable[str], min_freq: int = 1, lowercase: bool = False, max_size: int = 50000) -> List[str]:
    """Special tokens, then every character (alone and as a ``##`` continuation, so any
    word made of seen characters tokenizes without ``[UNK]``), then whole words seen at
    least ``min_freq`` times, most frequent first."""
    words = collections.Counter()
    chars = collections.Counter()
    splitter = BasicTokenizer(do_lower_case=lowercase)  # the split the WordPiece tokenizer applies first
    for text in texts:
        for word in splitter.tokenize(text):
            words[word] += 1
            chars.update(word)
    vocab = list(SPECIAL_TOKENS)
    seen = set(vocab)
    for char, _ in chars.most_common():
        for token in (char, "##" + char):
            if token not in seen:
                vocab.append(token)
                seen.add(token)
    for word, count in words.most_common():
        if len(vocab) >= max_size or count < min_freq:
            break
        if word not in seen:
            vocab.append(word)
            seen.add(word)
    return vocab


def write_vocab(tokens: List[str], path: str) -> None:
    """One token per line (its id is its line number), written atomically."""
    fileio.write_text(path, "\n".join(tokens) + "\n")


def build_char_vocab(texts: Iterable[str], max_size: int = 8000, min_freq: int = 1, lowercase: bool = True) -> List[str]:
    """A character vocabulary for Chinese pretraining from streamed text (memory grows with
    the number of distinct characters only): special tokens, then the characters seen at
    least ``min_freq`` times, most frequent first, up to ``max_size`` entries. Non-CJK
    characters also get their ``##`` form so that Latin words and digits split into
    known pieces; a CJK character is always a word of its own for the tokenizer.
    Characters left out become ``[UNK]`` (the corpus readers count them)."""
    chars = collections.Counter()
    splitter = BasicTokenizer(do_lower_case=lowercase)
    for text in texts:
        for word in splitter.tokenize(text):
            chars.update(word)
    vocab = list(SPECIAL_TOKENS)
    seen = set(vocab)
    for char, count in chars.most_common():
        if count < min_freq or len(vocab) >= max_size:
            break
        forms = [char] if _is_cjk(char) else [char, "##" + char]
        for token in forms:
            if token not in seen and len(vocab) < max_size:
                vocab.append(token)
                seen.add(token)
    return vocab


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return (0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0x20000 <= code <= 0x2A6DF
            or 0xF900 <= code <= 0xFAFF or 0x2F800 <= code <= 0x2FA1F)
