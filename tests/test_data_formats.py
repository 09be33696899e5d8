"""Bring your own data (docs/data.md): every source a reader takes gives the same features; bad rows
name ``file:line`` (``row N`` in memory); each preparation kind writes train-only label maps and names
its bad rows; labels unseen in training are scored as wrong and counted, or refused."""
import json
import os

import numpy as np
import pytest

import paddlepalm as palm
from conftest import tiny_config
from paddlepalm import evaluation
from paddlepalm.prepare import prepare
from paddlepalm.reader import DataFormatError

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "show", "me", "flights", "to", "boston", "new", "york",
         "cheap", "fares", ",", "\"", "a"]
TAGS = {"O": 0, "B-city": 1, "I-city": 2}
CLASSES = {"flight": 0, "airfare": 1}
ROWS = [("flight", "show me flights to boston"), ("airfare", "cheap fares, \"a\" to new york"),
        ("flight", "flights to new york")]


@pytest.fixture()
def files(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    tag_map = tmp_path / "tags.json"
    tag_map.write_text(json.dumps(TAGS), encoding="utf-8")
    class_map = tmp_path / "classes.json"
    class_map.write_text(json.dumps(CLASSES), encoding="utf-8")
    return tmp_path, str(vocab), str(tag_map), str(class_map)


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def features(reader):
    return [(f["token_ids"], f.get("label"), f.get("labels")) for f in reader.features]


def error_of(load):
    with pytest.raises(DataFormatError) as info:
        load()
    return str(info.value)


# ------------------------------------------------------------------ formats
def test_classify_reads_tsv_csv_jsonl_lists_and_datasets_alike(files):
    import datasets

    tmp, vocab, _, classes = files
    records = [{"label": label, "text_a": text} for label, text in ROWS]
    tsv = write(tmp / "d.tsv", "label\ttext_a\n" + "".join(f"{l}\t{t}\n" for l, t in ROWS))
    csv_text = "text_a,label\n" + "".join('"{}",{}\n'.format(t.replace('"', '""'), l) for l, t in ROWS)
    csv = write(tmp / "d.csv", csv_text)
    jsonl = write(tmp / "d.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    sources = [(tsv, "tsv"), (csv, "csv"), (jsonl, "jsonl"), (csv, "auto"), (jsonl, "auto"), (records, "tsv"),
               (datasets.Dataset.from_list(records), "tsv")]
    loaded = []
    for source, file_format in sources:
        reader = palm.reader.ClassifyReader(vocab, 32, label_map_config=classes)
        reader.load_data(source, batch_size=1, file_format=file_format)
        loaded.append(features(reader))
    assert all(f == loaded[0] for f in loaded)
    assert [label for _, label, _ in loaded[0]] == [0, 1, 0]


def test_columns_rename_fields_and_csv_records_may_span_lines(files):
    tmp, vocab, _, classes = files
    path = write(tmp / "reviews.csv", 'id,review,cat\n1,"show me\nflights",flight\n2,"cheap, fares",airfare\n'
                                      "3,to boston,flight\n4,a,b,c\n")
    reader = palm.reader.ClassifyReader(vocab, 32, label_map_config=classes)
    renamed = {"text_a": "review", "label": "cat"}
    message = error_of(lambda: reader.load_data(path, 1, file_format="csv", columns=renamed))
    assert message.startswith(f"{path}:6:") and "expected 3 comma-separated columns" in message  # record 2 spans 2-3
    write(tmp / "reviews.csv", 'id,review,cat\n1,"show me\nflights",flight\n2,"cheap, fares",airfare\n')
    reader.load_data(path, 1, file_format="csv", columns=renamed)
    assert [f["label"] for f in reader.features] == [0, 1] and [f["line"] for f in reader.features] == [2, 4]
    with pytest.raises(ValueError, match="unknown field 'txt'"):
        reader.load_data(path, 1, file_format="csv", columns={"txt": "review"})
    assert error_of(lambda: reader.load_data(path, 1, file_format="csv")) == \
        f"{path}:1: header lacks column(s) ['text_a', 'label']; header is ['id', 'review', 'cat']"


def test_sequence_label_reads_joined_strings_token_lists_and_dataset_class_labels(files):
    import datasets

    tmp, vocab, tags, _ = files
    tokens, labels = ["show", "me", "new york"], ["O", "O", "B-city"]
    tsv = write(tmp / "s.tsv", "text_a\tlabel\n" + "\x02".join(tokens) + "\t" + "\x02".join(labels) + "\n")
    jsonl = write(tmp / "s.jsonl", json.dumps({"words": tokens, "ner": labels}) + "\n")
    features_ = datasets.Features({"words": datasets.Sequence(datasets.Value("string")),
                                   "ner": datasets.Sequence(datasets.ClassLabel(names=list(TAGS)))})
    dataset = datasets.Dataset.from_dict({"words": [tokens], "ner": [[TAGS[t] for t in labels]]}, features=features_)
    loaded = []
    for source, columns in [(tsv, None), (jsonl, {"tokens": "words", "tags": "ner"}),
                            ([{"text_a": "\x02".join(tokens), "label": "\x02".join(labels)}], None),
                            (dataset, {"tokens": "words", "tags": "ner"})]:
        reader = palm.reader.SequenceLabelReader(vocab, 32, tags)
        reader.load_data(source, batch_size=1, file_format="auto", columns=columns)
        loaded.append(features(reader) + [reader.features[0]["num_words"]])
    assert all(f == loaded[0] for f in loaded)
    assert loaded[0][0][2] == [0, 0, 1] and loaded[0][-1] == 3  # "new york": one token, one tag, two pieces


def test_match_reads_named_pairs(files):
    tmp, vocab, _, classes = files
    path = write(tmp / "pairs.jsonl", json.dumps({"q": "show me", "d": "flights", "y": "airfare"}) + "\n")
    reader = palm.reader.MatchReader(vocab, 32, label_map_config=classes)
    reader.load_data(path, 1, file_format="jsonl", columns={"text_a": "q", "text_b": "d", "label": "y"})
    assert reader.features[0]["label"] == 1 and reader.features[0]["segment_ids"].count(1) == 2


@pytest.mark.parametrize("line, problem", [
    ('{"text_a": "show me", "label": "flight"', "invalid JSON at column"),
    ('["show me", "flight"]', "expected an object of named columns, got list"),
    ('{"text_a": "show me"}', "missing column 'label'"),
    ('{"text_a": "show me", "label": 1.5}', "must be a string or an integer, got float: 1.5"),
    ('{"text_a": "show me", "label": true}', "must be a string or an integer, got bool"),
    ('{"text_a": "show me", "label": ["flight"]}', "must be a string or an integer, got list"),
    ('{"text_a": 7, "label": "flight"}', "column 'text_a' must be a string, got int"),
    ('{"text_a": "show me", "label": "hotel"}', "unknown label 'hotel' (not in the label map"),
    ('{"text_a": "show me", "label": -1}', "label id must be >= 0, got -1"),
])
def test_a_bad_jsonl_row_of_a_classifier_names_its_line(files, line, problem):
    tmp, vocab, _, classes = files
    path = write(tmp / "bad.jsonl", '{"text_a": "to boston", "label": 0}\n\n' + line + "\n")
    reader = palm.reader.ClassifyReader(vocab, 32, label_map_config=classes)
    message = error_of(lambda: reader.load_data(path, 1, file_format="jsonl"))
    assert message.startswith(f"{path}:3: ") and problem in message, message


@pytest.mark.parametrize("row, problem", [
    ({"tokens": ["to", "boston"], "tags": ["O"]}, "2 tokens but 1 tags"),
    ({"tokens": ["to", 7], "tags": ["O", "O"]}, "item 1 of column 'tokens' must be a string, got int"),
    ({"tokens": "to boston", "tags": ["O", "O"]}, "column 'tokens' must be a list of strings"),
    ({"tokens": ["to"]}, "missing column 'tags' or 'label'"),
    ({"tokens": ["to"], "tags": ["B-town"]}, "unknown tag 'B-town'"),
])
def test_a_bad_in_memory_row_of_a_tagger_names_its_index(files, row, problem):
    _, vocab, tags, _ = files
    reader = palm.reader.SequenceLabelReader(vocab, 32, tags)
    message = error_of(lambda: reader.load_data([{"tokens": ["to"], "tags": ["O"]}, row], 1))
    assert message.startswith("row 1: ") and problem in message, message


def test_class_names_need_a_label_map_and_numeric_names_are_never_ids(files):
    tmp, vocab, _, _ = files
    message = error_of(lambda: palm.reader.ClassifyReader(vocab, 32).load_data(
        [{"text_a": "to boston", "label": "flight"}], 1))
    assert message.startswith("row 0: column 'label' must be an integer, got 'flight'") and "label map" in message
    ids = palm.reader.ClassifyReader(vocab, 32, label_map_config=CLASSES)  # names are words: "1" is an id
    ids.load_data([{"text_a": "a", "label": "1"}, {"text_a": "a", "label": "flight"}], 1)
    assert [f["label"] for f in ids.features] == [1, 0]
    numeric = palm.reader.ClassifyReader(vocab, 32, label_map_config={"100": 0, "7": 1}, phase="eval")
    numeric.load_data([{"text_a": "a", "label": "7"}, {"text_a": "a", "label": 100}, {"text_a": "a", "label": "1"}], 1)
    assert [f["label"] for f in numeric.features] == [1, 0, -1] and numeric.unseen_labels == 1


def test_row_readers_refuse_unknown_formats_and_file_readers_refuse_lists(files):
    _, vocab, _, _ = files
    with pytest.raises(ValueError, match="file_format"):
        palm.reader.ClassifyReader(vocab, 32).load_data("x.tsv", 1, file_format="xml")
    with pytest.raises(TypeError, match="reads files only"):
        palm.reader.MRCReader(vocab, 64, 16, 32).load_data([{"question": "q"}], 1, file_format="json")


# ------------------------------------------------------------------ unseen labels
def test_unseen_class_in_eval_data_is_counted_warned_and_refused_on_request(files, capsys):
    tmp, vocab, _, classes = files
    path = write(tmp / "dev.tsv", "label\ttext_a\nflight\tto boston\nhotel\tnew york\nmotel\ta\nhotel\tme\n")
    reader = palm.reader.ClassifyReader(vocab, 32, label_map_config=classes, phase="eval")
    reader.load_data(path, 2)
    assert [f["label"] for f in reader.features] == [0, -1, -2, -1] and reader.unseen_labels == 3
    assert f"warning: {path}:3: label 'hotel' was not seen in training" in capsys.readouterr().err
    strict = palm.reader.ClassifyReader(vocab, 32, label_map_config=classes, phase="eval", unseen_labels="error")
    assert error_of(lambda: strict.load_data(path, 2)) == \
        f"{path}:3: unknown label 'hotel' (not in the label map {classes})"
    train = palm.reader.ClassifyReader(vocab, 32, label_map_config=classes)
    assert error_of(lambda: train.load_data(path, 2)).startswith(f"{path}:3: unknown label 'hotel'")
    with pytest.raises(ValueError, match="unseen_labels must be one of"):
        palm.reader.ClassifyReader(vocab, 32, unseen_labels="ignore")


def test_class_id_outside_the_head_is_unseen_in_eval_data_and_an_error_in_training(files, capsys):
    tmp, vocab, _, _ = files
    path = write(tmp / "test.tsv", "label\ttext_a\n0\tto boston\n2\tnew york\n1\ta\n")
    reader = palm.reader.ClassifyReader(vocab, 32, phase="eval")
    reader.load_data(path, 2)
    reader.check_num_classes(2)
    reader.check_num_classes(2)  # once per fit_reader: counted afresh, not twice
    assert reader.unseen_labels == 1 and \
        f"{path}:3: label id 2 was not seen in training (outside the head's 2 classes)" in capsys.readouterr().err
    for strict in (palm.reader.ClassifyReader(vocab, 32, phase="eval", unseen_labels="error"),
                   palm.reader.ClassifyReader(vocab, 32)):
        strict.load_data(path, 2)
        assert error_of(lambda: strict.check_num_classes(2)) == f"{path}:3: label id 2 out of range for 2 classes"


def test_unseen_tag_is_a_false_negative_and_refused_on_request(files, capsys):
    tmp, vocab, tags, _ = files
    path = write(tmp / "dev.tsv", "text_a\tlabel\nto\x02boston\tO\x02B-city\n"
                                  "to\x02new\x02york\tO\x02B-state\x02I-state\n")
    reader = palm.reader.SequenceLabelReader(vocab, 32, tags, phase="eval")
    reader.load_data(path, 2)
    assert reader.unseen_labels == 2 and reader.features[1]["labels"] == [0, -1, -1]
    assert f"warning: {path}:3: tag 'B-state' was not seen in training" in capsys.readouterr().err
    # gold: city (row 0), state (row 1, unseen); predicted: city right, and a city where the state is
    results = [{"label": [0, 1]}, {"label": [0, 1, 2]}]
    scores = evaluation.ChunkF1()(results, reader)
    assert scores == {"entity_f1": pytest.approx(0.5), "entity_precision": pytest.approx(0.5),
                      "entity_recall": pytest.approx(0.5)}  # P = 1/2, R = 1/2 (the state entity is missed)
    strict = palm.reader.SequenceLabelReader(vocab, 32, tags, phase="eval", unseen_labels="error")
    assert error_of(lambda: strict.load_data(path, 2)) == f"{path}:3: unknown tag 'B-state' (not in the label map)"


def test_unseen_class_is_a_wrong_prediction_in_accuracy_and_macro_f1(files):
    _, vocab, _, classes = files
    reader = palm.reader.ClassifyReader(vocab, 32, label_map_config=classes, phase="eval")
    reader.load_data([{"text_a": "a", "label": "flight"}, {"text_a": "a", "label": "airfare"},
                      {"text_a": "a", "label": "hotel"}, {"text_a": "a", "label": "flight"}], 2)
    results = [{"label": 0}, {"label": 1}, {"label": 0}, {"label": 1}]
    assert evaluation.Accuracy()(results, reader) == {"accuracy": pytest.approx(2 / 4)}
    # per class F1: flight tp1 fp1 fn1 -> 1/2; airfare tp1 fp1 fn0 -> 2/3; hotel (unseen) tp0 fn1 -> 0
    assert evaluation.MacroF1()(results, reader) == {"macro_f1": pytest.approx((1 / 2 + 2 / 3 + 0) / 3)}


def test_the_evaluation_reports_the_count_of_unseen_labels(files):
    _, vocab, _, classes = files
    rows = [{"text_a": "to boston", "label": "flight"}, {"text_a": "new york", "label": "hotel"}]
    train = palm.reader.ClassifyReader(vocab, 16, label_map_config=classes)
    train.load_data(rows[:1] * 2, 2)
    dev = palm.reader.ClassifyReader(vocab, 16, label_map_config=classes, phase="eval")
    dev.load_data(rows, 2)
    trainer = palm.Trainer("intent")
    trainer.build_forward(palm.backbone.ERNIE.from_config(tiny_config(len(VOCAB), hidden=8)), palm.head.Classify(2, 8))
    trainer.fit_reader(train)
    trainer.fit_reader(dev, phase="eval")
    scores = trainer.task_evaluator().evaluate(trainer.model)
    assert scores["unseen_labels"] == 1 and scores["accuracy"] <= 0.5


# ------------------------------------------------------------------ preparation kinds
def _lines(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def _seq_in(root, splits):
    for split, rows in splits.items():
        _lines(os.path.join(root, split, "seq.in"), [w for w, _, _ in rows])
        _lines(os.path.join(root, split, "seq.out"), [t for _, t, _ in rows])
        _lines(os.path.join(root, split, "label"), [i for _, _, i in rows])
    return str(root)


ATIS = {"train": [("to boston", "O B-city", "flight"), ("fares to denver", "O O B-city", "airfare")],
        "valid": [("to boston", "O B-city", "flight")],
        "test": [("on monday", "O B-day", "day_name"), ("to boston", "O B-city", "flight")]}


def test_seq_in_writes_train_only_label_maps_and_names_a_bad_line(tmp_path, capsys):
    raw = _seq_in(tmp_path / "atis", ATIS)
    prepared = prepare("seq_in", raw, str(tmp_path / "out"))
    out = tmp_path / "out"
    assert json.loads((out / "tags" / "label_map.json").read_text()) == {"O": 0, "B-city": 1}
    assert json.loads((out / "labels" / "label_map.json").read_text()) == {"airfare": 0, "flight": 1}
    assert prepared.splits["test"] == {"examples": 2, "unseen_tags": 1, "unseen_labels": 1}
    assert (out / "labels" / "test.tsv").read_text().splitlines() == ["label\ttext_a", "day_name\ton monday",
                                                                     "flight\tto boston"]
    assert (out / "tags" / "dev.tsv").read_text().splitlines()[1] == "to\x02boston\tO\x02B-city"
    assert "first 'B-day' at" in capsys.readouterr().err
    assert (out / "word_vocab.txt").read_text().split()[:3] == ["<S>", "</S>", "<UNK>"]
    bad = dict(ATIS, valid=[("to boston", "O B-city", "flight"), ("to new york", "O B-city", "flight")])
    raw = _seq_in(tmp_path / "bad", bad)
    message = error_of(lambda: prepare("seq_in", raw, str(tmp_path / "out2")))
    assert message == f"{raw}/valid/seq.out:2: 3 words in seq.in but 2 tags"


def test_the_multi_task_example_keeps_palm_ids_with_unseen_intents_past_the_map(tmp_path):
    import prepare_data

    sizes = prepare_data.convert(_seq_in(tmp_path / "atis", ATIS), str(tmp_path / "out"))
    assert sizes == {"slot_classes": 2, "intent_classes": 2, "train_examples": 2, "dev_examples": 1,
                     "test_examples": 2}
    assert prepare_data.gold(str(tmp_path / "out"), "test")["intents"] == [2, 1]  # day_name: past the 2 classes
    assert json.loads((tmp_path / "out" / "intent_map.json").read_text()) == {"airfare": 0, "flight": 1}


CAIS = ["打 O", "给 O", "妈 B-contact", "妈 E-contact", "phone_call", "", "-DOCSTART- O", "",
        "听 O", "晴 B-song", "天 E-song", "music_play", ""]


def test_conll_with_intent_lines_bioes_and_a_bad_line_each(tmp_path):
    src = tmp_path / "cais"
    _lines(str(src / "train.txt"), CAIS)
    _lines(str(src / "dev.txt"), ["放 O", "歌 S-song"])
    message = error_of(lambda: prepare("conll", str(src), str(tmp_path / "out")))
    assert message == f"{src}/dev.txt:1: no sentence label (the training split has them)"
    _lines(str(src / "dev.txt"), ["放 O", "歌 S-song", "music_play"])
    prepared = prepare("conll", str(src), str(tmp_path / "out"))
    out = tmp_path / "out"
    assert prepared.tag_classes == 5 and prepared.label_classes == 2 and prepared.splits["dev"]["unseen_tags"] == 1
    assert (out / "labels" / "train.tsv").read_text().splitlines()[1:] == ["phone_call\t打 给 妈 妈",
                                                                         "music_play\t听 晴 天"]
    assert (out / "tags" / "train.tsv").read_text().splitlines()[2] == "听\x02晴\x02天\tO\x02B-song\x02E-song"
    for lines, line, problem in [
        (["打 O", "给 PER", "phone_call"], 2, "tag 'PER' is not O or B-, I-, E-, S-, M- and a type"),
        (["打 O", "给", "妈 O", "phone_call"], 2, "one field '给': expected a token and its tag"),
        (["打 O", "phone_call", "", "给 O", ""], 4, "no sentence label line ends this sentence, but one ends"),
    ]:
        _lines(str(src / "train.txt"), lines)
        path = str(src / "train.txt")
        message = error_of(lambda: prepare("conll", str(src), str(tmp_path / "o")))
        assert message.startswith(f"{path}:{line}: {problem}"), message


def test_conll_finds_split_files_or_takes_them_named(tmp_path):
    src = tmp_path / "ner"
    for name in ("a.train", "b.train", "a.dev"):
        _lines(str(src / name), ["北0 B-LOC", "京1 I-LOC", ""])
    with pytest.raises(ValueError, match="several files could be the train split"):
        prepare("conll", str(src), str(tmp_path / "out"))
    prepared = prepare("conll", str(src), str(tmp_path / "out"), files={"train": "a.train", "dev": "a.dev"},
                       strip_position=True)
    assert list(prepared.splits) == ["train", "dev"]
    assert (tmp_path / "out" / "tags" / "train.tsv").read_text().splitlines()[1] == "北\x02京\tB-LOC\x02I-LOC"


def test_clue_json_classification_and_cluener_and_a_bad_line_each(tmp_path):
    src = tmp_path / "clue"
    _lines(str(src / "train.json"), [json.dumps({"sentence": "北京天气", "label": "101", "label_desc": "news"}),
                                     json.dumps({"sentence": "上海房价", "label": 102})])
    _lines(str(src / "dev.json"), [json.dumps({"sentence": "广州", "label": "103"})])
    _lines(str(src / "test.json"), [json.dumps({"sentence": "深圳"})])  # CLUE's test sets: no labels
    prepared = prepare("clue_json", str(src), str(tmp_path / "out"))
    assert list(prepared.splits) == ["train", "dev"] and prepared.splits["dev"]["unseen_labels"] == 1
    assert json.loads((tmp_path / "out" / "labels" / "label_map.json").read_text()) == {"101": 0, "102": 1}
    assert (tmp_path / "out" / "word_vocab.txt").read_text().split()[3:] == list("北京天气上海房价")
    ner = tmp_path / "cluener"
    _lines(str(ner / "train.json"), [json.dumps({"text": "去北京市", "label": {"city": {"北京市": [[1, 3]]}}})])
    prepare("clue_json", str(ner), str(tmp_path / "ner_out"))
    assert (tmp_path / "ner_out" / "tags" / "train.tsv").read_text().splitlines()[1] == \
        "去\x02北\x02京\x02市\tO\x02B-city\x02I-city\x02I-city"
    path = str(ner / "train.json")
    for line, problem in [
        (json.dumps({"text": "去北京市", "label": {"city": {"北京": [[2, 3]]}}}),
         "entity '北京' at [2, 3] does not match the text there, '京市'"),
        (json.dumps({"text": "去北京", "label": {"city": {"北京": [[1, 5]]}}}),
         "offsets [1, 5] are not [start, end]"),
        ('{"text": "去北京", "label": ', "invalid JSON at column"),
    ]:
        _lines(path, [json.dumps({"text": "去", "label": {}}), line])
        message = error_of(lambda: prepare("clue_json", str(ner), str(tmp_path / "o")))
        assert message.startswith(f"{path}:2: ") and problem in message, message


def test_weibo_ner_from_the_data_root_with_its_position_digits(data_root, tmp_path):
    folder = os.path.join(data_root, "weibo_ner")
    files = {split: f"weiboNER_2nd_conll.{split}" for split in ("train", "dev", "test")}
    prepared = prepare("conll", folder, str(tmp_path / "weibo"), files=files, strip_position=True)
    assert {s: r["examples"] for s, r in prepared.splits.items()} == {"train": 1350, "dev": 270, "test": 270}
    assert prepared.tag_classes == 17
    reader = palm.reader.SequenceLabelReader(str(tmp_path / "weibo" / "word_vocab.txt"), 160,
                                             str(tmp_path / "weibo" / "tags" / "label_map.json"), tokenizer="char")
    reader.load_data(str(tmp_path / "weibo" / "tags" / "train.tsv"), 32)
    assert reader.num_examples == 1350


# ------------------------------------------------------------------ the config
def test_config_prepare_kind_columns_and_format_reach_the_reader(files, tmp_path):
    from paddlepalm.cli import build, config

    tmp, vocab, _, classes = files
    data = write(tmp / "train.jsonl", "".join(json.dumps({"review": t, "cat": l}) + "\n" for l, t in ROWS))
    text = (f"backbone: {{kind: ERNIE, config: {{hidden_size: 8}}}}\n"
            f"tasks:\n  intent:\n    reader: {{kind: ClassifyReader, max_len: 16, unseen_labels: error}}\n"
            f"    head: {{kind: Classify}}\n    vocab: {vocab}\n    label_map: {classes}\n    train_file: {data}\n"
            f"    columns: {{text_a: review, label: cat}}\n")
    cfg = config.resolve(text, str(tmp_path / "cfg.yaml"))
    reader = build.make_reader(cfg, "intent", "train")
    build.load_task_data(cfg, "intent", reader, data, 2)  # file_format null: from the extension
    assert [f["label"] for f in reader.features] == [0, 1, 0] and reader.unseen_policy == "error"
    assert config.PREPARE_KINDS == palm.prepare.KINDS
    for prepare_block, problem in [("{kind: conll}", "prepare.source: missing"),
                                   ("{kind: conll, script: x.py, source: d}", "give `kind`"),
                                   ("{source: d}", "missing: `kind`"),
                                   ("{kind: seq_in, source: d, strip_position: true}", "a `kind: conll` option"),
                                   ("{kind: seq_in, source: d, files: {train: t}}", "reads the folders"),
                                   ("{script: x.py, lowercase: true}", "an option of `kind`"),
                                   ("{kind: conl, source: d}", "did you mean 'conll'")]:
        with pytest.raises(config.ConfigError, match=problem.replace("(", r"\(")):
            config.resolve(f"prepare: {prepare_block}\n" + text, str(tmp_path / "cfg.yaml"), run_dir=str(tmp_path))


def test_example_configs_that_evaluate_a_dev_file_set_eval_steps():
    import yaml

    folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "configs")
    for name in sorted(os.listdir(folder)):
        if name.endswith(".yaml"):
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                doc = yaml.safe_load(f)
            train = doc.get("train") or {}
            has_dev = any("dev_file" in (task or {}) for task in doc.get("tasks", {}).values())
            keeps_best = train.get("save_best", True)  # elmo-transfer: its dev_file is the test split
            assert not (has_dev and keeps_best) or train.get("eval_steps"), f"{name}: best/ would be the last step"


def test_batches_of_an_eval_reader_with_unseen_labels_collate(files):
    _, vocab, tags, _ = files
    reader = palm.reader.SequenceLabelReader(vocab, 32, tags, phase="eval")
    reader.load_data([{"tokens": ["to", "york"], "tags": ["O", "B-state"]}], 1)
    batch = next(reader.iter_epoch())
    assert np.array_equal(batch["label_ids"], [[0, -1]])
