"""ELMo's character ids (AllenNLP's ``ELMoCharacterMapper`` scheme).

Every word becomes ``MAX_WORD_LENGTH`` (50) ids: beginning-of-word, the word's
UTF-8 bytes (cut to 48), end-of-word, then padding. The sentence markers
``<S>``/``</S>`` are words made of one reserved character. All ids are shifted
by +1 so that 0 marks a padded (absent) word; ids therefore lie in ``[0, 262)``.
"""
from typing import List, Sequence

import numpy as np

MAX_WORD_LENGTH = 50
NUM_CHAR_IDS = 262  # 256 bytes + 5 reserved characters + the 0 of padded words

BEGINNING_OF_SENTENCE_CHARACTER = 256  # <begin sentence>
END_OF_SENTENCE_CHARACTER = 257  # <end sentence>
BEGINNING_OF_WORD_CHARACTER = 258  # <begin word>
END_OF_WORD_CHARACTER = 259  # <end word>
PADDING_CHARACTER = 260  # <padding>

BOS_TOKEN = "<S>"
EOS_TOKEN = "</S>"


def _marker_word(character: int) -> List[int]:
    ids = [PADDING_CHARACTER] * MAX_WORD_LENGTH
    ids[0], ids[1], ids[2] = BEGINNING_OF_WORD_CHARACTER, character, END_OF_WORD_CHARACTER
    return [i + 1 for i in ids]


_BOS_IDS = _marker_word(BEGINNING_OF_SENTENCE_CHARACTER)
_EOS_IDS = _marker_word(END_OF_SENTENCE_CHARACTER)


def word_to_char_ids(word: str) -> List[int]:
    """The 50 character ids of one word (already shifted by +1)."""
    if word == BOS_TOKEN:
        return list(_BOS_IDS)
    if word == EOS_TOKEN:
        return list(_EOS_IDS)
    encoded = word.encode("utf-8", "ignore")[:MAX_WORD_LENGTH - 2]
    ids = [PADDING_CHARACTER] * MAX_WORD_LENGTH
    ids[0] = BEGINNING_OF_WORD_CHARACTER
    ids[1:1 + len(encoded)] = list(encoded)
    ids[1 + len(encoded)] = END_OF_WORD_CHARACTER
    return [i + 1 for i in ids]


def batch_to_char_ids(sentences: Sequence[Sequence[str]], width: int) -> np.ndarray:
    """``[B, width, 50]`` int64; rows past a sentence's end are all 0."""
    out = np.zeros((len(sentences), width, MAX_WORD_LENGTH), dtype="int64")
    for row, words in enumerate(sentences):
        for col, word in enumerate(words[:width]):
            out[row, col] = word_to_char_ids(word)
    return out
