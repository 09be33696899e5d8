"""Issue 12, reader and head rows of palm_api.md "Behaviours that PALM 2.x scripts rely on":
what PALM's own data files and scripts expect of the sequence-labeling and MRC readers."""
import json
import os
import pathlib

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from conftest import tiny_config
from paddlepalm.reader import DataFormatError
from paddlepalm.utils.vocab import build_char_vocab, write_vocab

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "show", "me", "flights", "to", "boston", "denver"]
TAGS = {"O": 0, "B-city": 1, "I-city": 2}
# PALM's process.py writes every token and tag followed by \x02, the last one included
ROWS = [("show\x02me\x02flights\x02to\x02boston\x02", "O\x02O\x02O\x02O\x02B-city\x02"),
        ("to\x02denver\x02", "O\x02B-city\x02"),
        ("flights\x02to\x02boston\x02", "O\x02O\x02B-city\x02")]


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture()
def files(tmp_path):
    """Vocabulary, label map and a tagged file (without PALM's trailing separators)."""
    vocab = write(tmp_path / "vocab.txt", "\n".join(VOCAB) + "\n")
    label_map = write(tmp_path / "label_map.json", json.dumps(TAGS))
    data = write(tmp_path / "train.tsv", "text_a\tlabel\n" + "".join(f"{a[:-1]}\t{b[:-1]}\n" for a, b in ROWS))
    return vocab, label_map, data


# ---------------------------------------------------------------- \x02 pieces
def test_trailing_separator_of_palm_process_py_is_not_a_token(files):
    vocab, label_map, plain = files
    data = write(pathlib.Path(plain).with_name("palm.tsv"), "text_a\tlabel\n" + "".join(f"{a}\t{b}\n" for a, b in ROWS))
    reader = palm.reader.SequenceLabelReader(vocab, 16, label_map)
    reader.load_data(data, batch_size=1)
    assert [f["num_words"] for f in reader.features] == [5, 2, 3]
    assert [f["labels"] for f in reader.features] == [[0, 0, 0, 0, 1], [0, 1], [0, 0, 1]]

    predict = palm.reader.SequenceLabelReader(vocab, 16, label_map, phase="predict")
    predict.load_data(write(pathlib.Path(data).with_name("test.tsv"),
                            "text_a\n" + "".join(f"{a}\n" for a, _ in ROWS)), batch_size=1)
    assert [f["num_words"] for f in predict.features] == [5, 2, 3]


def test_tag_missing_from_the_label_map_is_still_an_error(files, tmp_path):
    vocab, label_map, _ = files
    path = write(tmp_path / "bad.tsv", "text_a\tlabel\nto\x02denver\x02\tO\x02B-town\x02\n")
    with pytest.raises(DataFormatError, match=r"bad\.tsv:2: unknown tag 'B-town'"):
        palm.reader.SequenceLabelReader(vocab, 16, label_map).load_data(path, batch_size=1)


# ---------------------------------------------------------------- predictions.json, num_classes
def _predict_tags(files, out_dir, num_classes, favour_extra=False):
    vocab, label_map, data = files
    paddle.seed(0)
    reader = palm.reader.SequenceLabelReader(vocab, 16, label_map, phase="predict")
    reader.load_data(data, batch_size=2)
    head = palm.head.SequenceLabel(num_classes, 32, phase="predict")
    if favour_extra:  # emissions that make the classes past the label map win everywhere
        bias = np.zeros([num_classes], dtype="float32")
        bias[len(TAGS):] = 50.0
        head.emission.bias.set_value(bias)
    trainer = palm.Trainer("slot")
    trainer.build_predict_forward(palm.backbone.ERNIE.from_config(tiny_config(len(VOCAB)), phase="predict"), head)
    trainer.fit_reader(reader, phase="predict")
    return trainer.predict(output_dir=out_dir)


def test_sequence_label_predictions_file_holds_one_list_of_tag_ids_per_line(files, tmp_path):
    results = _predict_tags(files, str(tmp_path / "pred"), len(TAGS))
    lines = (tmp_path / "pred" / "predictions.json").read_text(encoding="utf-8").splitlines()
    written = [json.loads(line) for line in lines]  # what PALM's evaluate scripts do
    assert all(isinstance(tags, list) for tags in written)
    assert [len(tags) for tags in written] == [5, 2, 3]  # one id per original token
    assert written == [r["label"] for r in results]
    assert all(0 <= t < len(TAGS) for tags in written for t in tags)


def test_head_with_more_classes_than_the_label_map_never_decodes_outside_it(files, tmp_path):
    # PALM's ATIS script sizes the head at 130 for a 127-tag map
    results = _predict_tags(files, str(tmp_path / "pred"), len(TAGS) + 3, favour_extra=True)
    assert [len(r["label"]) for r in results] == [5, 2, 3]
    assert all(0 <= t < len(TAGS) for r in results for t in r["label"])
    assert all(tag in TAGS for r in results for tag in r["tags"])


def test_head_with_more_classes_than_the_label_map_trains(files):
    vocab, label_map, data = files
    reader = palm.reader.SequenceLabelReader(vocab, 16, label_map)
    reader.load_data(data, batch_size=3, num_epochs=1)
    trainer = palm.Trainer("slot")
    loss = trainer.build_forward(palm.backbone.ERNIE.from_config(tiny_config(len(VOCAB))),
                                 palm.head.SequenceLabel(len(TAGS) + 3, 32))
    trainer.build_backward(palm.optimizer.Adam(loss, 1e-3))
    trainer.fit_reader(reader)
    assert np.isfinite(trainer.train_one_step(next(reader.iter_epoch(0)))["loss"])


# ---------------------------------------------------------------- MRC answers not found
CONTEXT = "show me flights to boston"


def _squad(path, starts):
    qas = [{"id": f"q{i}", "question": "to", "answers": [{"text": "boston", "answer_start": s}]}
           for i, s in enumerate(starts)]
    return write(path, json.dumps({"data": [{"paragraphs": [{"context": CONTEXT, "qas": qas}]}]}))


def test_mrc_training_question_whose_answer_start_is_wrong_is_skipped_and_reported(files, tmp_path, capsys):
    vocab = files[0]
    right = CONTEXT.index("boston")
    path = _squad(tmp_path / "train.json", [right, 3, right, right + 1])
    reader = palm.reader.MRCReader(vocab, 16, 4, 4)
    reader.load_data(path, batch_size=1)
    assert reader.skipped_questions == ["q1", "q3"]
    assert [e.qid for e in reader.examples] == ["q0", "q2"] and reader.num_questions == 2
    assert [reader.examples[f["question_index"]].qid for f in reader.features] == ["q0", "q2"]
    out = capsys.readouterr().err  # a log line: stderr
    assert "skipped 2 of 4 training questions" in out and "q1, q3" in out and path in out

    with pytest.raises(DataFormatError, match=r"train\.json: question id 'q1': answer_start 3 does not point"):
        palm.reader.MRCReader(vocab, 16, 4, 4, strict=True).load_data(path, batch_size=1)
    evaluation = palm.reader.MRCReader(vocab, 16, 4, 4, phase="eval")  # gold answers only: nothing skipped
    evaluation.load_data(path, batch_size=1)
    assert evaluation.num_questions == 4 and evaluation.skipped_questions == []


def test_cmrc2018_trial_file_loads_for_training_with_its_five_bad_answers_skipped(data_root, tmp_path, capsys):
    path = os.path.join(data_root, "cmrc2018", "cmrc2018_trial.json")
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    texts = [p["context"] for a in data["data"] for p in a["paragraphs"]]
    texts += [q["question"] for a in data["data"] for p in a["paragraphs"] for q in p["qas"]]
    vocab = str(tmp_path / "vocab.txt")
    write_vocab(build_char_vocab(texts), vocab)

    reader = palm.reader.MRCReader(vocab, 256, 32, 128, lang="cn", do_lower_case=True)
    reader.load_data(path, batch_size=8)
    # the 5 answers PALM could not find, and 2 empty questions
    bad_answers = [f"TRIAL_210_QUERY_{i}" for i in range(5)]
    assert sorted(reader.skipped_questions) == sorted(bad_answers + ["TRIAL_20_QUERY_0", "TRIAL_776_QUERY_4"])
    assert reader.num_questions == 1002 - 7
    out = capsys.readouterr().err  # a log line: stderr
    assert "skipped 7 of 1002 training questions, 5 whose answer is not found in the context, " \
           "2 with an empty question" in out
    with pytest.raises(DataFormatError, match=r"question id 'TRIAL_210_QUERY_0': answer_start 14 does not point"):
        palm.reader.MRCReader(vocab, 256, 32, 128, lang="cn", do_lower_case=True, strict=True).load_data(path, 8)
