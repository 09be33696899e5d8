"""Building a WordPiece vocabulary from training text (for models trained from scratch)."""
import collections
from typing import Iterable, List

from paddlenlp.transformers.bert.tokenizer import BasicTokenizer

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
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")
