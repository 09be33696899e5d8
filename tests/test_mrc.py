import json
import os

import numpy as np
import pytest

import paddlepalm as palm
from conftest import tiny_config
from paddlepalm.head.mrc import best_spans
from paddlepalm.utils.vocab import build_vocab, write_vocab

CONTEXT = "《战国无双3》是由光荣和ω-force开发的游戏，于2008年发售。本作以三大故事为主轴，共有20张战场地图。"
QAS = [("战国无双3是由谁开发的？", "光荣和ω-force"), ("哪一年发售？", "2008年"), ("有多少张地图？", "20张")]


def squad(path, qas=QAS, context=CONTEXT, answers_per_question=1):
    data = {"data": [{"paragraphs": [{"context": context, "qas": [
        {"id": f"Q{i}", "question": q,
         "answers": [{"text": a, "answer_start": context.index(a)}] * answers_per_question}
        for i, (q, a) in enumerate(qas)]}]}]}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False)
    return str(path)


@pytest.fixture
def vocab(tmp_path):
    path = str(tmp_path / "vocab.txt")
    write_vocab(build_vocab([CONTEXT] + [q for q, _ in QAS], lowercase=True), path)
    return path


def test_windows_cover_the_context_and_label_the_answer(tmp_path, vocab):
    reader = palm.reader.MRCReader(vocab, 24, max_query_len=8, doc_stride=5, lang="cn", do_lower_case=True)
    reader.load_data(squad(tmp_path / "t.json"), batch_size=2)
    assert reader.num_questions == 3 and reader.num_examples > 3
    for feature in reader.get_epoch_outputs()["features"]:
        assert len(feature["token_ids"]) <= 24
        example = reader.examples[feature["question_index"]]
        offset = feature["doc_offset"]
        first = feature["token_spans"][feature["start"] - offset][0]
        last = feature["token_spans"][feature["end"] - offset][1]
        assert example.context[first:last] == example.answers[0]
    keep_all = palm.reader.MRCReader(vocab, 24, max_query_len=8, doc_stride=5, lang="cn", do_lower_case=True,
                                     remove_noanswer=False)
    keep_all.load_data(squad(tmp_path / "t.json"), batch_size=2)
    assert keep_all.num_examples == reader.num_examples + reader.num_dropped_windows > reader.num_examples
    predict = palm.reader.MRCReader(vocab, 24, max_query_len=8, doc_stride=5, lang="cn", phase="predict")
    predict.load_data(squad(tmp_path / "t.json"), batch_size=2)
    features = predict.get_epoch_outputs()["features"]
    for q in range(3):  # every context token is the max-context token of exactly one window
        windows = [f for f in features if f["question_index"] == q]
        owned = sorted(s for f in windows for s, m in zip(f["token_spans"], f["max_context"]) if m)
        assert len(owned) == len(set(owned)) == len({s for f in windows for s in f["token_spans"]})


def test_a_stride_longer_than_the_window_leaves_no_token_out_and_no_window_empty(tmp_path, vocab):
    """doc_stride 40 with room for 13 context tokens: windows move by 13, every one non-empty, and
    each context token is in one of them (a longer stride used to skip tokens and, past the end of
    the context, make windows whose segment ids were shorter than their tokens)."""
    predict = palm.reader.MRCReader(vocab, 24, max_query_len=8, doc_stride=40, lang="cn", phase="predict")
    predict.load_data(squad(tmp_path / "t.json"), batch_size=2)
    features = predict.get_epoch_outputs()["features"]
    context_tokens = len(predict.tokenizer.tokenize(CONTEXT))
    for q in range(3):
        windows = [f for f in features if f["question_index"] == q]
        assert all(f["token_spans"] and len(f["token_ids"]) == len(f["segment_ids"]) for f in windows)
        assert len({s for f in windows for s in f["token_spans"]}) == context_tokens
    for batch in predict.iter_epoch():
        assert batch["token_ids"].shape == batch["segment_ids"].shape


def brute_force(start, end, start_ok, end_ok, max_len):
    best = None
    for i in range(len(start)):
        for j in range(i, min(len(end), i + max_len)):
            if start_ok[i] and end_ok[j] and (best is None or start[i] + end[j] > best[0]):
                best = (start[i] + end[j], i, j)
    return best


def test_span_decoding_equals_brute_force():
    rng = np.random.RandomState(0)
    for trial in range(50):
        length = rng.randint(3, 20)
        start, end = rng.randn(length), rng.randn(length)
        start_ok, end_ok = np.ones(length, bool), np.ones(length, bool)
        start_ok[:2] = end_ok[:2] = False  # [CLS] and a question token
        start_ok &= rng.rand(length) > 0.2  # tokens without their max context
        max_len = rng.randint(1, 6)
        spans = best_spans(start, end, start_ok, end_ok, max_len, n_best=5)
        expected = brute_force(start, end, start_ok, end_ok, max_len)
        if expected is None:
            assert spans == []
            continue
        assert spans[0][1:] == expected[1:] and spans[0][0] == pytest.approx(expected[0])
        assert [s[0] for s in spans] == sorted((s[0] for s in spans), reverse=True)
    # the fixed tiny case: [CLS] (position 0) has the top logits but is not a context token
    start = np.array([9.0, 0, 1, 4, 2, 0, 0])
    end = np.array([9.0, 0, 6, 0, 0, 5, 0])
    ok = np.array([False, True, True, True, True, True, True])
    assert best_spans(start, end, ok, ok, 30, 3) == [(9.0, 3, 5), (7.0, 2, 2), (7.0, 4, 5)]
    assert best_spans(start, end, ok, ok, 1, 2) == [(7.0, 2, 2), (5.0, 5, 5)]


def test_answers_come_back_exactly_from_the_context(tmp_path, vocab):
    reader = palm.reader.MRCReader(vocab, 40, max_query_len=8, doc_stride=10, lang="cn", do_lower_case=True,
                                   phase="predict")
    reader.load_data(squad(tmp_path / "t.json"), batch_size=4)
    head = palm.head.MRC(8, 32, phase="predict", with_negative=True, max_ans_len=12)
    for feature in reader.get_epoch_outputs()["features"]:
        example = reader.examples[feature["question_index"]]
        n = len(feature["token_ids"])
        start, end = np.zeros(n), np.zeros(n)
        answer_first = CONTEXT.index(QAS[example.index][1])
        answer_last = answer_first + len(QAS[example.index][1])
        for i, (s, e) in enumerate(feature["token_spans"]):
            start[feature["doc_offset"] + i] = 5.0 if s == answer_first else 0.0
            end[feature["doc_offset"] + i] = 5.0 if e == answer_last else 0.0
        head.batch_postprocess({"example_ids": np.array([feature["example_id"]]), "start_logits": start[None],
                                "end_logits": end[None], "seq_lens": np.array([n])})
    results = head.epoch_postprocess(reader.get_epoch_outputs(), str(tmp_path / "out"))
    assert [r["answer"] for r in results] == [a for _, a in QAS]  # "ω-force" keeps its case and hyphen
    predictions = json.load(open(tmp_path / "out" / "predictions.json", encoding="utf-8"))
    assert predictions == {f"Q{i}": a for i, (_, a) in enumerate(QAS)}
    nbest = json.load(open(tmp_path / "out" / "nbest_predictions.json", encoding="utf-8"))
    assert sum(n["probability"] for n in nbest["Q0"]) == pytest.approx(1.0)
    assert set(json.load(open(tmp_path / "out" / "null_odds.json"))) == {"Q0", "Q1", "Q2"}


def test_mrc_trains_and_predicts(tmp_path, vocab):
    config = tiny_config(sum(1 for _ in open(vocab, encoding="utf-8")))
    train = squad(tmp_path / "train.json", QAS * 4)
    reader = palm.reader.MRCReader(vocab, 32, 8, 8, lang="cn", do_lower_case=True, seed=1)
    backbone = palm.backbone.ERNIE.from_config(config)
    reader.register_with(backbone)
    reader.load_data(train, batch_size=4, num_epochs=1)
    trainer = palm.Trainer("mrc")
    loss_var = trainer.build_forward(backbone, palm.head.MRC(8, 32))
    trainer.build_backward(palm.optimizer.Adam(loss_var, 1e-3))
    trainer.fit_reader(reader)
    trainer.set_saver(str(tmp_path / "ckpt"), save_steps=1000)
    trainer.train(print_steps=1)
    steps = trainer.cur_train_step
    assert steps == reader.num_examples // 4 > 0

    predictor = palm.Trainer("mrc")
    pred_reader = palm.reader.MRCReader(vocab, 32, 8, 8, lang="cn", do_lower_case=True, phase="predict")
    pred_backbone = palm.backbone.ERNIE.from_config(config, phase="predict")
    pred_reader.register_with(pred_backbone)
    pred_reader.load_data(squad(tmp_path / "dev.json"), batch_size=3)
    predictor.build_predict_forward(pred_backbone, palm.head.MRC(8, 32, phase="predict"))
    predictor.load_ckpt(str(tmp_path / "ckpt" / f"ckpt.step{steps}"))
    predictor.fit_reader(pred_reader, phase="predict")
    results = predictor.predict(output_dir=str(tmp_path / "pred"))
    assert [r["id"] for r in results] == ["Q0", "Q1", "Q2"]
    assert all(r["answer"] and r["answer"] in CONTEXT for r in results)
    assert set(json.load(open(tmp_path / "pred" / "predictions.json", encoding="utf-8"))) == {"Q0", "Q1", "Q2"}

    # raw inputs: the records a Predictor gives (no question id; truncated when the question was cut)
    raw = predictor.predict(inputs=[(QAS[1][0], CONTEXT), ("哪一年" * 10, CONTEXT)])
    assert [sorted(r) for r in raw] == [["answer", "score", "truncated"]] * 2
    assert [r["truncated"] for r in raw] == [False, True]
    assert all(r["answer"] in CONTEXT for r in raw)


def _load(tmp_path, vocab, data, phase="train", strict=False):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    palm.reader.MRCReader(vocab, 32, 8, 8, lang="cn", phase=phase, strict=strict).load_data(str(path), batch_size=2)


def _one(qa, context=CONTEXT):
    return {"data": [{"paragraphs": [{"context": context, "qas": [qa]}]}]}


def test_bad_squad_input_names_file_and_question(tmp_path, vocab):
    good = {"id": "Q7", "question": "哪一年？", "answers": [{"text": "2008年", "answer_start": CONTEXT.index("2008")}]}
    with pytest.raises(palm.reader.DataFormatError, match=r"bad\.json: question id 'Q7': missing field 'question'"):
        _load(tmp_path, vocab, _one({k: v for k, v in good.items() if k != "question"}))
    with pytest.raises(palm.reader.DataFormatError, match=r"bad\.json: question id 'Q7': missing field 'answers'"):
        _load(tmp_path, vocab, _one({k: v for k, v in good.items() if k != "answers"}))
    with pytest.raises(palm.reader.DataFormatError, match=r"question id 'Q7': answer_start 3 does not point"):
        _load(tmp_path, vocab, _one(dict(good, answers=[{"text": "2008年", "answer_start": 3}])), strict=True)
    with pytest.raises(palm.reader.DataFormatError, match=r"question id 'Q7': empty context"):
        _load(tmp_path, vocab, _one(good, context="  "))
    with pytest.raises(palm.reader.DataFormatError, match=r"question id 'Q7': training needs exactly one answer, found 2"):
        _load(tmp_path, vocab, _one(dict(good, answers=good["answers"] * 2)))
    with pytest.raises(palm.reader.DataFormatError, match=r"bad\.json: article 0 paragraph 0: missing field 'context'"):
        _load(tmp_path, vocab, {"data": [{"paragraphs": [{"qas": []}]}]})
    _load(tmp_path, vocab, _one(dict(good, answers=good["answers"] * 2)), phase="eval")  # several gold answers are fine
