"""Issue 11 (defects 8 and 10): bad input is refused at the call that receives it, with
the file (and line) named, or read correctly; never accepted silently or left to crash
deep inside Paddle."""
import hashlib
import json
import os
import random
import signal
import tempfile
import time

import numpy as np
import pytest

import paddlepalm as palm
from conftest import tiny_config
from paddlepalm.reader import DataFormatError

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "show", "me", "flights", "to", "boston", "denver"]
BOM = "\ufeff"
WORD_VOCAB = ["<S>", "</S>", "<UNK>", "show", "me", "flights"]


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture()
def vocab(tmp_path):
    return write(tmp_path / "vocab.txt", "\n".join(VOCAB) + "\n")


@pytest.fixture()
def label_map(tmp_path):
    return write(tmp_path / "label_map.json", json.dumps({"O": 0, "B-city": 1, "I-city": 2}))


def ernie(vocab_size=len(VOCAB), **changes):
    return palm.backbone.ERNIE.from_config(dict(tiny_config(vocab_size), **changes))


# ---------------------------------------------------------------- defect 8: vocabulary copy
def test_tab_vocabulary_is_read_without_a_shared_temporary_copy(tmp_path, monkeypatch):
    """An ERNIE ``token<TAB>id`` vocabulary gave a copy at a predictable name in the temp
    directory, reused when present: a file planted there changed the token ids."""
    temp = tmp_path / "shared_tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    tab_vocab = write(tmp_path / "vocab.txt", "".join(f"{t}\t{i}\n" for i, t in enumerate(VOCAB)))
    plain = "\n".join(VOCAB) + "\n"
    planted = temp / f"paddlepalm-vocab-{hashlib.sha1(plain.encode()).hexdigest()[:16]}.txt"
    planted.write_text("\n".join(VOCAB[:5] + list(reversed(VOCAB[5:]))) + "\n", encoding="utf-8")

    reader = palm.reader.ClassifyReader(tab_vocab, 16)
    assert reader.tokenizer.convert_tokens_to_ids(VOCAB) == list(range(len(VOCAB)))
    assert os.listdir(temp) == [planted.name]  # nothing written to the shared directory


def test_tab_vocabulary_with_a_non_integer_id_names_file_and_line(tmp_path):
    lines = [f"{t}\t{i}" for i, t in enumerate(VOCAB)]
    lines[6] = "me\tsix"
    path = write(tmp_path / "vocab.txt", "\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as info:
        palm.reader.ClassifyReader(path, 16)
    assert str(info.value).startswith(f"{path}:7:") and "'six'" in str(info.value)


# ---------------------------------------------------------------- defect 10: byte-order marks
def test_byte_order_mark_is_accepted_in_tsv_label_map_and_vocabulary(tmp_path):
    vocab = write(tmp_path / "vocab.txt", BOM + "\n".join(VOCAB) + "\n")
    label_map = write(tmp_path / "label_map.json", BOM + json.dumps({"O": 0, "B-city": 1}))
    cls = write(tmp_path / "cls.tsv", BOM + "label\ttext_a\n1\tshow me flights\n0\tto boston\n")
    seq = write(tmp_path / "seq.tsv", BOM + "text_a\tlabel\nto\x02boston\tO\x02B-city\n")

    reader = palm.reader.ClassifyReader(vocab, 16)
    reader.load_data(cls, batch_size=2)
    assert reader.tokenizer.vocab["[PAD]"] == 0 and reader.num_examples == 2
    assert [f["label"] for f in reader.features] == [1, 0]
    tagger = palm.reader.SequenceLabelReader(vocab, 16, label_map)
    tagger.load_data(seq, batch_size=1)
    assert tagger.label_map == {"O": 0, "B-city": 1}
    assert tagger.features[0]["labels"] == [0, 1]


def test_byte_order_mark_is_accepted_in_mrc_json(tmp_path):
    context = "show me flights to boston"
    data = {"data": [{"paragraphs": [{"context": context, "qas": [
        {"id": "q1", "question": "to", "answers": [{"text": "boston", "answer_start": context.index("boston")}]}]}]}]}
    path = write(tmp_path / "mrc.json", BOM + json.dumps(data))
    vocab = write(tmp_path / "vocab.txt", "\n".join(VOCAB) + "\n")
    reader = palm.reader.MRCReader(vocab, 16, 4, 4)
    reader.load_data(path, batch_size=1)
    assert reader.num_questions == 1 and reader.examples[0].qid == "q1"


def test_byte_order_mark_is_not_part_of_the_first_corpus_word(tmp_path):
    vocab = write(tmp_path / "words.txt", BOM + "\n".join(WORD_VOCAB) + "\n")
    corpus = write(tmp_path / "corpus.txt", BOM + "show me flights\nshow me\n")
    reader = palm.reader.LMCorpusReader(vocab, 16)
    assert reader.tokenizer.vocab["<S>"] == 0
    reader.load_data(corpus, batch_size=1, shuffle_train=False)
    assert reader.num_oov_tokens == 0
    first = next(reader.iter_epoch(0))
    assert list(first["token_ids"][0][:3]) == [0, 3, 4]  # <S> show me: no "\ufeffshow" -> <UNK>
    assert palm.reader.build_vocab_from_corpus(corpus) == ["<S>", "</S>", "<UNK>", "show", "me", "flights"]

    wordpiece = write(tmp_path / "vocab.txt", "\n".join(VOCAB) + "\n")
    masked = palm.reader.MaskedCorpusReader(wordpiece, 16, lang="en")
    masked.load_data(corpus, batch_size=1)
    assert masked.stats["unk_tokens"] == 0


# ---------------------------------------------------------------- NUL bytes
def test_nul_byte_in_text_names_file_and_line(tmp_path, vocab, label_map):
    tsv = write(tmp_path / "cls.tsv", "label\ttext_a\n1\tshow me\n0\tto bos\x00ton\n")
    with pytest.raises(DataFormatError) as info:
        palm.reader.ClassifyReader(vocab, 16).load_data(tsv, batch_size=1)
    assert str(info.value).startswith(f"{tsv}:3:") and "NUL" in str(info.value)

    seq = write(tmp_path / "seq.tsv", "text_a\tlabel\nto\x02bos\x00ton\tO\x02B-city\n")
    with pytest.raises(DataFormatError, match=r"seq\.tsv:2: NUL"):
        palm.reader.SequenceLabelReader(vocab, 16, label_map).load_data(seq, batch_size=1)

    corpus = write(tmp_path / "corpus.txt", "show me\n\nflights\x00 to boston\n")
    with pytest.raises(DataFormatError, match=r"corpus\.txt:3: NUL"):
        palm.reader.MaskedCorpusReader(vocab, 16, lang="en").load_data(corpus, batch_size=1)
    words = write(tmp_path / "words.txt", "\n".join(WORD_VOCAB) + "\n")
    with pytest.raises(DataFormatError, match=r"corpus\.txt:3: NUL"):
        palm.reader.LMCorpusReader(words, 16).load_data(corpus, batch_size=1)

    bad_vocab = write(tmp_path / "bad_vocab.txt", "\n".join(VOCAB[:6] + ["m\x00e"]) + "\n")
    with pytest.raises(DataFormatError, match=r"bad_vocab\.txt:7: NUL"):
        palm.reader.ClassifyReader(bad_vocab, 16)


def test_nul_byte_in_mrc_json_names_file_and_question(tmp_path, vocab):
    context = "show me flights to bos\u0000ton"
    data = {"data": [{"paragraphs": [{"context": context, "qas": [
        {"id": "q1", "question": "to", "answers": [{"text": "flights", "answer_start": 8}]}]}]}]}
    path = write(tmp_path / "mrc.json", json.dumps(data))
    with pytest.raises(DataFormatError, match=r"mrc\.json: question id 'q1': NUL byte in the context"):
        palm.reader.MRCReader(vocab, 16, 4, 4).load_data(path, batch_size=1)


# ---------------------------------------------------------------- label maps
@pytest.mark.parametrize("content, problem", [
    (["O", "B-city"], "must be a JSON object"),
    ({"O": 0, "B-city": "1"}, "must be integers"),
    ({"O": 0, "B-city": 1.0}, "must be integers"),
])
def test_label_map_of_the_wrong_shape_names_the_file(tmp_path, vocab, content, problem):
    path = write(tmp_path / "label_map.json", json.dumps(content))
    with pytest.raises(DataFormatError) as info:
        palm.reader.SequenceLabelReader(vocab, 16, path)
    assert str(info.value).startswith(f"{path}:") and problem in str(info.value)


def test_sequence_label_head_with_fewer_classes_than_the_label_map_fails_at_fit_reader(tmp_path, vocab, label_map):
    reader = palm.reader.SequenceLabelReader(vocab, 16, label_map)
    reader.load_data(write(tmp_path / "seq.tsv", "text_a\tlabel\nto\x02boston\tO\x02B-city\n"), batch_size=1)
    trainer = palm.Trainer("slot")
    trainer.build_forward(ernie(), palm.head.SequenceLabel(2, 32))
    with pytest.raises(ValueError, match=r"num_classes=2 .*label_map\.json holds 3 tags"):
        trainer.fit_reader(reader)


# ---------------------------------------------------------------- reader vs backbone
@pytest.fixture()
def cls_data(tmp_path):
    return write(tmp_path / "cls.tsv", "label\ttext_a\n1\tshow me flights\n0\tto boston\n1\tto denver\n")


def test_max_len_beyond_the_position_table_fails_at_fit_reader(vocab, cls_data):
    reader = palm.reader.ClassifyReader(vocab, 200)  # tiny_config has max_position_embeddings=128
    reader.load_data(cls_data, batch_size=2)
    trainer = palm.Trainer("cls")
    trainer.build_forward(ernie(), palm.head.Classify(2, 32))
    with pytest.raises(ValueError, match=r"max_len=200 exceeds the backbone's max_position_embeddings=128"):
        trainer.fit_reader(reader)


@pytest.mark.parametrize("backbone", [
    lambda: ernie(vocab_size=8),
    lambda: palm.backbone.BERT.from_config(tiny_config(8)),
    lambda: palm.backbone.ALBERT.from_config(dict(tiny_config(8), embedding_size=16)),
    lambda: palm.backbone.ELECTRA.from_config(tiny_config(8)),
], ids=["ernie", "bert", "albert", "electra"])
def test_vocabulary_larger_than_the_embedding_fails_at_fit_reader(vocab, cls_data, backbone):
    reader = palm.reader.ClassifyReader(vocab, 16)
    reader.load_data(cls_data, batch_size=2)
    trainer = palm.Trainer("cls")
    trainer.build_forward(backbone(), palm.head.Classify(2, 32))
    with pytest.raises(ValueError, match=r"vocab\.txt has ids up to 10, but the backbone's vocab_size is 8"):
        trainer.fit_reader(reader)


def test_word_vocabulary_larger_than_the_elmo_embedding_fails_at_register_with(tmp_path):
    words = write(tmp_path / "words.txt", "\n".join(WORD_VOCAB) + "\n")
    elmo = palm.backbone.ELMo.from_config({"cell_size": 16, "projection_size": 8, "num_layers": 1,
                                           "vocab_size": 4, "input_type": "word"})
    with pytest.raises(ValueError, match=r"vocab_size is 4"):
        palm.reader.LMCorpusReader(words, 16).register_with(elmo)


# ---------------------------------------------------------------- batch size and epochs
def test_training_batch_larger_than_the_data_names_file_count_and_batch(vocab, cls_data, tmp_path):
    with pytest.raises(DataFormatError) as info:
        palm.reader.ClassifyReader(vocab, 16).load_data(cls_data, batch_size=8)
    message = str(info.value)
    assert message.startswith(cls_data) and "3 training examples" in message and "batch of 8" in message
    predict = palm.reader.ClassifyReader(vocab, 16, phase="predict")
    predict.load_data(cls_data, batch_size=8)  # prediction keeps the last, partial batch
    assert [len(b["example_ids"]) for b in predict.iter_epoch(0)] == [3]

    corpus = write(tmp_path / "corpus.txt", "show me\n\nflights to boston\n")
    with pytest.raises(DataFormatError, match=r"corpus\.txt: 2 training examples, fewer than one batch of 4"):
        palm.reader.MaskedCorpusReader(vocab, 16, lang="en").load_data(corpus, batch_size=4)


@pytest.mark.parametrize("epochs", [-1, 0])
def test_num_epochs_below_one_is_refused_at_the_call(vocab, cls_data, label_map, tmp_path, epochs):
    with pytest.raises(ValueError, match=r"num_epochs must be a positive number or None, got"):
        palm.reader.ClassifyReader(vocab, 16).load_data(cls_data, batch_size=2, num_epochs=epochs)

    seq = write(tmp_path / "seq.tsv", "text_a\tlabel\nto\x02boston\tO\x02B-city\nto\x02denver\tO\x02B-city\n")
    cls_reader, seq_reader = palm.reader.ClassifyReader(vocab, 16), palm.reader.SequenceLabelReader(vocab, 16, label_map)
    cls_reader.load_data(cls_data, batch_size=2)
    seq_reader.load_data(seq, batch_size=2)
    backbone = ernie()
    a, b = palm.Trainer("a"), palm.Trainer("b")
    a.build_forward(backbone, palm.head.Classify(2, 32))
    b.build_forward(backbone, palm.head.SequenceLabel(3, 32))
    multi = palm.MultiHeadTrainer([a, b])
    loss = multi.build_forward()
    multi.build_backward(palm.optimizer.Adam(loss, 1e-3))
    with pytest.raises(ValueError, match=r"num_epochs must be a positive number, got"):
        multi.fit_readers_with_mixratio([cls_reader, seq_reader], "a", epochs)


# ---------------------------------------------------------------- MRC question ids
def test_duplicate_mrc_question_id_names_file_and_id(tmp_path, vocab):
    context = "show me flights to boston"
    qa = {"id": "q1", "question": "to", "answers": [{"text": "boston", "answer_start": context.index("boston")}]}
    data = {"data": [{"paragraphs": [{"context": context, "qas": [qa]}, {"context": context, "qas": [qa]}]}]}
    path = write(tmp_path / "mrc.json", json.dumps(data))
    for phase in ("train", "predict"):
        with pytest.raises(DataFormatError) as info:
            palm.reader.MRCReader(vocab, 16, 4, 4, phase=phase).load_data(path, batch_size=1)
        assert str(info.value).startswith(path) and "duplicate question id 'q1'" in str(info.value)


# ---------------------------------------------------------------- one long line
def test_one_long_corpus_line_takes_time_linear_in_its_length(tmp_path):
    chars = [chr(0x4E00 + i) for i in range(50)]
    vocab = write(tmp_path / "vocab.txt", "\n".join(VOCAB[:5] + chars) + "\n")
    rng = random.Random(0)

    def load_seconds(n, limit=None):
        path = write(tmp_path / f"line{n}.txt", "".join(rng.choice(chars) for _ in range(n)) + "\n")
        reader = palm.reader.MaskedCorpusReader(vocab, 128, lang="cn")
        if limit is not None:  # a quadratic step would take minutes: fail at the limit instead
            signal.signal(signal.SIGALRM, lambda *_: pytest.fail(f"{n} characters took over {limit:.1f} s"))
            signal.setitimer(signal.ITIMER_REAL, limit)
        start = time.process_time()  # CPU time: other jobs on the machine do not count
        try:
            reader.load_data(path, batch_size=2)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        assert reader.num_examples == int(np.ceil(n / 125))
        return time.process_time() - start

    small = min(load_seconds(50_000) for _ in range(2))
    large = load_seconds(200_000, limit=30 * small + 5.0)
    # 4x the text: linear work takes about 4x, the old quadratic step 16x
    assert large / small < 9, (small, large)
