"""Data as PALM 2.x's example scripts were given it (checked against PALM's own scripts, which are
not in this repository): what their TSV files look like in the wild reads as PALM read it."""
import os

import numpy as np

import paddlepalm as palm

VOCAB = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]", '"', "15", "or", "a", "mac", "dell", "?", "hi", "yes", "no"]


def _vocab(tmp_path) -> str:
    path = os.path.join(tmp_path, "vocab.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(VOCAB) + "\n")
    return path


def _write(tmp_path, name: str, text: str) -> str:
    path = os.path.join(tmp_path, name)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return path


def _one_batch_in_file_order(reader) -> dict:
    batches = list(reader.iter_epoch(0))
    assert len(batches) == 1
    order = np.argsort(batches[0]["example_ids"])  # prediction batches are grouped by length
    return {k: np.asarray(v)[order] for k, v in batches[0].items()}


def _token_rows(reader) -> list:
    batch = _one_batch_in_file_order(reader)
    ids, mask = batch["token_ids"], batch["input_mask"][..., 0]
    return [[VOCAB[i] for i, m in zip(row, keep) if m] for row, keep in zip(ids, mask)]


def test_match_tsv_keeps_quotes_as_text_and_takes_crlf_and_blank_lines(tmp_path):
    # PALM's matching README shows Quora rows such as `"Should I buy an Apple MacBook Pro 15"" or ...?"`:
    # PALM read TSV fields literally (no CSV quoting), so the quotes are text and a quote never joins
    # two fields. Files edited on Windows end lines with \r\n; exports leave blank lines.
    text = ('text_a\ttext_b\tlabel\r\n'
            'hi\t"mac 15"" or a dell?"\t0\r\n'
            '\r\n'
            '"hi\tyes"\t1\r\n'
            'no\tyes\t1\r\n'
            '\r\n')
    reader = palm.reader.MatchReader(_vocab(tmp_path), 32, phase="predict")
    reader.load_data(_write(tmp_path, "test.tsv", text), batch_size=8)
    assert reader.num_examples == 3
    rows = _token_rows(reader)
    assert rows[0] == ["[CLS]", "hi", "[SEP]", '"', "mac", "15", '"', '"', "or", "a", "dell", "?", '"', "[SEP]"]
    assert rows[1] == ["[CLS]", '"', "hi", "[SEP]", "yes", '"', "[SEP]"]


def test_classify_tsv_with_crlf_reads_integer_labels(tmp_path):
    text = 'label\ttext_a\r\n1\thi "yes"\r\n0\tno\r\n\r\n'
    reader = palm.reader.ClassifyReader(_vocab(tmp_path), 32, phase="predict")
    reader.load_data(_write(tmp_path, "test.tsv", text), batch_size=8)
    assert _one_batch_in_file_order(reader)["label_ids"].reshape(-1).tolist() == [1, 0]
    assert _token_rows(reader)[0] == ["[CLS]", "hi", '"', "yes", '"', "[SEP]"]
