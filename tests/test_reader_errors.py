"""Each malformed input stops loading with ``file:line: problem``."""
import json
import os

import pytest

import paddlepalm as palm
from paddlepalm.reader import DataFormatError

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "show", "me", "flights", "to", "boston", "denver"]


@pytest.fixture()
def files(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    label_map = tmp_path / "label_map.json"
    label_map.write_text(json.dumps({"O": 0, "B-city": 1, "I-city": 2}), encoding="utf-8")
    return tmp_path, str(vocab), str(label_map)


def write(path, text, binary=False):
    if binary:
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def cls_error(tmp_path, vocab, text, binary=False, phase="train"):
    path = write(tmp_path / "data.tsv", text, binary)
    reader = palm.reader.ClassifyReader(vocab, 16, phase=phase)
    with pytest.raises(DataFormatError) as info:
        reader.load_data(path, batch_size=2)
    return path, str(info.value)


def seq_error(tmp_path, vocab, label_map, text):
    path = write(tmp_path / "data.tsv", text)
    reader = palm.reader.SequenceLabelReader(vocab, 16, label_map)
    with pytest.raises(DataFormatError) as info:
        reader.load_data(path, batch_size=2)
    return path, str(info.value)


def test_wrong_column_count(files):
    tmp, vocab, _ = files
    path, message = cls_error(tmp, vocab, "label\ttext_a\n1\tshow me\n0\tshow\tme\n")
    assert message.startswith(f"{path}:3:") and "expected 2" in message and "found 3" in message


def test_missing_header_column(files):
    tmp, vocab, _ = files
    path, message = cls_error(tmp, vocab, "label\ttext\n1\tshow me\n")
    assert message.startswith(f"{path}:1:") and "text_a" in message


def test_non_integer_label(files):
    tmp, vocab, _ = files
    path, message = cls_error(tmp, vocab, "label\ttext_a\n1\tshow me\nflight\tto boston\n")
    assert message.startswith(f"{path}:3:") and "'flight'" in message and "integer" in message


def test_label_id_out_of_range(files, tmp_path):
    _, vocab, _ = files
    path = write(tmp_path / "data.tsv", "label\ttext_a\n1\tshow me\n0\tto denver\n7\tflights\n")
    reader = palm.reader.ClassifyReader(vocab, 16)
    reader.load_data(path, batch_size=2)
    config = {"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": len(VOCAB)}
    trainer = palm.Trainer("cls")
    trainer.build_forward(palm.backbone.ERNIE.from_config(config), palm.head.Classify(3, 8))
    with pytest.raises(DataFormatError) as info:
        trainer.fit_reader(reader)
    assert str(info.value).startswith(f"{path}:4:") and "out of range for 3 classes" in str(info.value)


def test_negative_label(files):
    tmp, vocab, _ = files
    path, message = cls_error(tmp, vocab, "label\ttext_a\n-1\tshow me\n")
    assert message.startswith(f"{path}:2:") and ">= 0" in message


def test_token_tag_count_mismatch(files):
    tmp, vocab, label_map = files
    path, message = seq_error(tmp, vocab, label_map,
                              "text_a\tlabel\nto\x02boston\tO\x02B-city\nto\x02denver\tO\n")
    assert message.startswith(f"{path}:3:") and "2 tokens but 1 tags" in message


def test_unknown_tag(files):
    tmp, vocab, label_map = files
    path, message = seq_error(tmp, vocab, label_map, "text_a\tlabel\nto\x02boston\tO\x02B-town\n")
    assert message.startswith(f"{path}:2:") and "'B-town'" in message


def test_empty_file(files):
    tmp, vocab, _ = files
    path, message = cls_error(tmp, vocab, "")
    assert message == f"{path}: file is empty"


def test_header_only_file(files):
    tmp, vocab, _ = files
    path, message = cls_error(tmp, vocab, "label\ttext_a\n")
    assert message.startswith(path) and "no examples" in message


def test_bytes_not_utf8(files):
    tmp, vocab, _ = files
    path, message = cls_error(tmp, vocab, b"label\ttext_a\n1\tshow me\n0\tto \xff\xfeboston\n", binary=True)
    assert message.startswith(f"{path}:3:") and "UTF-8" in message


def test_predict_file_may_omit_label(files, tmp_path):
    _, vocab, label_map = files
    path = write(tmp_path / "pred.tsv", "text_a\nshow me flights\nto boston\n")
    reader = palm.reader.ClassifyReader(vocab, 16, phase="predict")
    reader.load_data(path, batch_size=4)
    batch = next(reader.iter_epoch())
    assert "label_ids" not in batch and batch["token_ids"].shape[0] == 2
    seq_path = write(tmp_path / "seq_pred.tsv", "text_a\nto\x02boston\n")
    seq_reader = palm.reader.SequenceLabelReader(vocab, 16, label_map, phase="predict")
    seq_reader.load_data(seq_path, batch_size=4)
    assert "label_ids" not in next(seq_reader.iter_epoch())


def test_label_map_with_gaps_is_refused(files, tmp_path):
    _, vocab, _ = files
    bad = tmp_path / "map.json"
    bad.write_text(json.dumps({"O": 0, "B-city": 2}), encoding="utf-8")
    with pytest.raises(ValueError, match="without gaps"):
        palm.reader.SequenceLabelReader(vocab, 16, str(bad))
