"""Masked-LM reader: TSV ``text_a`` (optional ``text_b``) -> dynamically masked batches."""
from typing import Any, Dict, Iterator, List, Literal, Optional, Sequence, get_args

import numpy as np

from paddlepalm.reader.base_reader import Batch, Feature, Reader
from paddlepalm.reader.sources import FILE_FORMATS, TEXT, read_rows
from paddlepalm.reader.tokenization import Lang, TokenizerKind
from paddlepalm.utils.masking import Masker, batch_seed, jieba_segment, word_units, wordpiece_word_lengths

WordSegmenter = Literal["wordpiece", "jieba", "whitespace"]  # the words whole-word masking masks
WORD_SEGMENTERS = get_args(WordSegmenter)
MASK_ATTRS = {"mask_label": ([-1], "int64"), "mask_pos": ([-1], "int64")}


class MaskingMixin:
    """Masks the ``token_ids`` of a collated batch and adds ``mask_pos``/``mask_label``.

    ``mask_pos`` holds flat indices into the ``[B * L]`` positions of the batch,
    ``mask_label`` the original token ids there (PALM's layout, one dimension).
    Features carry ``word_lengths`` (tokens per word of their text, in order, for
    whole-word masking) and ``word_offsets`` (where each text's words start).
    """

    def _init_masking(self, mask_prob: float, max_ngram: int, whole_word_mask: bool,
                      word_segmenter: WordSegmenter) -> None:
        if word_segmenter not in WORD_SEGMENTERS:
            raise ValueError(f"word_segmenter must be one of {WORD_SEGMENTERS}, got {word_segmenter!r}")
        vocab = self.tokenizer.vocab.token_to_idx
        special = {vocab[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") if t in vocab}
        if "[MASK]" not in vocab:
            raise ValueError(f"{self.vocab_path}: masked-LM training needs a [MASK] token in the vocabulary")
        self.masker = Masker(mask_id=vocab["[MASK]"], vocab_size=len(vocab), special_ids=special,
                             mask_prob=mask_prob, max_ngram=max_ngram)
        self.whole_word_mask = whole_word_mask
        self.word_segmenter = word_segmenter
        self._mask_rng = np.random.RandomState(self.seed)

    def _segment(self, text: str):
        """Tokens of ``text`` and the token count of each of its words."""
        if self.word_segmenter == "jieba":
            return jieba_segment(text, self.tokenizer.tokenize)
        if self.word_segmenter == "whitespace":
            tokens, lengths = [], []
            for word in text.split():
                pieces = self.tokenizer.tokenize(word)
                if pieces:
                    tokens.extend(pieces)
                    lengths.append(len(pieces))
            return tokens, lengths
        tokens = self.tokenizer.tokenize(text)
        return tokens, wordpiece_word_lengths(tokens)

    def _units(self, feature: Feature) -> Optional[List[List[int]]]:
        if not self.whole_word_mask:
            return None  # every non-special token on its own
        units = []
        for offset, lengths in zip(feature["word_offsets"], feature["word_lengths"]):
            units.extend(word_units(lengths, offset))
        return units

    def _mask_batch(self, batch: Batch, features: Sequence[Feature]) -> Batch:
        token_ids = batch["token_ids"]
        width = token_ids.shape[1]
        positions, labels = [], []
        for row, feature in enumerate(features):
            masked = self.masker.mask(feature["token_ids"], self._mask_rng, self._units(feature))
            token_ids[row, :len(masked.token_ids)] = masked.token_ids
            positions.extend(row * width + p for p in masked.positions)
            labels.extend(masked.labels)
        batch["mask_pos"] = np.array(positions, dtype="int64")
        batch["mask_label"] = np.array(labels, dtype="int64")
        return batch

    def split_batch(self, batch: Batch, parts: int):
        """Micro-batches of consecutive rows; ``mask_pos`` re-based to each one's rows, and each
        weighted by its share of the masked tokens (the loss is a mean over them)."""
        rows, width = batch["token_ids"].shape
        masked = {k: v for k, v in batch.items() if k in ("mask_pos", "mask_label")}
        plain = {k: v for k, v in batch.items() if k not in masked}
        pieces = Reader.split_batch(self, plain, parts)
        total = max(len(batch["mask_pos"]), 1)
        out, first_row = [], 0
        for piece, _ in pieces:
            n = len(piece["token_ids"])
            keep = (batch["mask_pos"] >= first_row * width) & (batch["mask_pos"] < (first_row + n) * width)
            piece = dict(piece, mask_pos=batch["mask_pos"][keep] - first_row * width,
                         mask_label=batch["mask_label"][keep])
            out.append((piece, int(keep.sum()) / total))
            first_row += n
        return out

    def _masked_batches(self, batches: Iterator[Sequence[Feature]], epoch: int, first: int) -> Iterator[Batch]:
        for number, features in enumerate(batches, start=first):
            self._mask_rng = np.random.RandomState(batch_seed(self.seed, epoch, number))
            yield self.collate(features)


class MaskLMReader(MaskingMixin, Reader):
    """Rows of ``text_a``, optional ``text_b`` (PALM's TSV with a header, or CSV, JSON lines, a list
    of dicts, a ``datasets.Dataset``); 15% of tokens masked per sequence.

    Masked positions: 80% ``[MASK]``, 10% a random token, 10% unchanged; never a
    special token. New masks every epoch (dynamic masking). ``max_ngram > 1``
    masks n-grams of words, ``whole_word_mask`` masks whole words
    (``word_segmenter='jieba'`` for Chinese, ``'wordpiece'`` groups ``##`` pieces,
    ``'whitespace'`` for pre-segmented text); labels are always the original tokens.
    """

    FILE_FORMATS = FILE_FORMATS + ("auto",)
    reads_rows = True

    def __init__(self, vocab_path: str, max_len: int, tokenizer: TokenizerKind = "wordpiece", lang: Lang = "en",
                 seed: Optional[int] = None, do_lower_case: bool = False, phase: str = "train", dev_count: int = 1,
                 print_prefix: str = "", mask_prob: float = 0.15, max_ngram: int = 1, whole_word_mask: bool = False,
                 word_segmenter: Optional[WordSegmenter] = None):
        super().__init__(vocab_path, max_len, tokenizer, lang, seed, do_lower_case, phase)
        if word_segmenter is None:
            word_segmenter = "jieba" if lang in ("cn", "zh") and whole_word_mask else "wordpiece"
        self._init_masking(mask_prob, max_ngram, whole_word_mask, word_segmenter)

    def _read_examples(self, input_file: str) -> List[Feature]:
        features = []
        rows = read_rows(input_file, {"text_a": TEXT, "text_b": TEXT}, [("text_a",)], self._file_format, self._columns)
        for _, row in rows:
            feature = self._encode_words(row["text_a"], row.get("text_b"))
            feature["example_id"] = len(features)
            features.append(feature)
        return features

    def _encode_words(self, text_a: str, text_b: Optional[str]) -> Feature:
        """[CLS] a [SEP] (b [SEP]) with word boundaries kept for whole-word masking."""
        tokens_a, words_a = self._segment(text_a)
        tokens_b, words_b = self._segment(text_b) if text_b is not None else ([], [])
        budget = self.max_len - (3 if text_b is not None else 2)
        while len(tokens_a) + len(tokens_b) > budget:
            longer = (tokens_a, words_a) if len(tokens_a) >= len(tokens_b) else (tokens_b, words_b)
            _drop_last_token(*longer)
        tokens = ["[CLS]"] + tokens_a + ["[SEP]"]
        offsets = [1]
        segments = [0] * len(tokens)
        word_lengths = [words_a]
        if text_b is not None:
            offsets.append(len(tokens))
            tokens += tokens_b + ["[SEP]"]
            segments += [1] * (len(tokens_b) + 1)
            word_lengths.append(words_b)
        return {"token_ids": self.tokenizer.convert_tokens_to_ids(tokens), "segment_ids": segments,
                "word_lengths": word_lengths, "word_offsets": offsets}

    def _label_attrs(self) -> Dict[str, Any]:
        return dict(MASK_ATTRS)

    def collate(self, features: Sequence[Feature]) -> Batch:
        return self._mask_batch(super().collate(features), features)

    def iter_epoch(self, epoch: int = 0, skip_batches: int = 0) -> Iterator[Batch]:
        if not self._features:
            raise RuntimeError(f"{type(self).__name__}: call load_data() before reading batches")
        batches = ([self._features[i] for i in indices] for indices in self._epoch_batches(epoch)[skip_batches:])
        return self._masked_batches(batches, epoch, skip_batches)


def _drop_last_token(tokens: List[str], word_lengths: List[int]) -> None:
    tokens.pop()
    word_lengths[-1] -= 1
    if word_lengths[-1] == 0:
        word_lengths.pop()
