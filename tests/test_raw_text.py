"""Raw text in, the right answers out (issue 23): for each tokenizer (whitespace, char, jieba,
wordpiece) and each kind of text people type (English, Chinese without spaces, Chinese with
spaces, Chinese mixed with Latin words), every prediction path (``Trainer.predict``, ``Predictor``,
``palm predict``) gives on raw text the answer it gives on the same text pre-tokenized: one tag
per token of the model's own tokenizer, and spans that slice the raw input to the entity's text.

The expected tokens are written out here (and jieba's are jieba's own ``lcut``), not computed by
the code under test."""
import json
import os
import random
import subprocess
import sys

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from conftest import REPO, tiny_config

HIDDEN = 32
TOKENIZERS = ("whitespace", "char", "jieba", "wordpiece")
TEXTS = {
    "english": "show me flights from boston to denver",
    "chinese": "明天北京天气怎么样",
    "chinese_spaced": "明 天 北 京 天 气 怎 么 样",
    "mixed": "播放Taylor Swift的歌",
}


def expected_tokens(tokenizer: str, text: str):
    if tokenizer == "whitespace":
        return text.split()
    if tokenizer == "jieba":
        import jieba

        return [w for w in jieba.lcut(text) if w.strip()]
    if tokenizer == "char":
        return [c for c in text if c != " "]
    return {"show me flights from boston to denver": text.split(),
            "明天北京天气怎么样": list(text), "明 天 北 京 天 气 怎 么 样": text.split(),
            "播放Taylor Swift的歌": ["播", "放", "Taylor", "Swift", "的", "歌"]}[text]


# ---------------------------------------------------------------- a small bilingual joint data set
DATES, CITIES = ["明天", "后天", "今天"], ["北京", "上海", "深圳", "广州"]
EN_CITIES, SINGERS = ["boston", "denver", "dallas", "atlanta"], [["Taylor", "Swift"], ["Adele"], ["周", "杰", "伦"]]


def _examples(rng: random.Random, count: int):
    rows = []
    for _ in range(count):
        kind = rng.randrange(3)
        if kind == 0:
            date, city = rng.choice(DATES), rng.choice(CITIES)
            tokens = list(date) + list(city) + list("天气怎么样")
            tags = ["B-date", "I-date", "B-city", "I-city"] + ["O"] * 5
            rows.append((tokens, tags, "weather"))
        elif kind == 1:
            a, b = rng.sample(EN_CITIES, 2)
            tokens = ["show", "me", "flights", "from", a, "to", b]
            rows.append((tokens, ["O"] * 4 + ["B-fromloc", "O", "B-toloc"], "flight"))
        else:
            singer = rng.choice(SINGERS)
            tokens = ["播", "放"] + singer + ["的", "歌"]
            tags = ["O", "O", "B-singer"] + ["I-singer"] * (len(singer) - 1) + ["O", "O"]
            rows.append((tokens, tags, "music"))
    return rows


def _write_data(folder: str, tokenizer: str):
    import jieba

    typed_rows = rows = _examples(random.Random(5), 96)
    if tokenizer == "char":  # character-level data sets tag Latin letters one by one
        rows = [_letters(tokens, tags) + (intent,) for tokens, tags, intent in rows]
    tags = sorted({t for _, ts, _ in rows for t in ts} - {"O"})
    label_map = {"O": 0, **{t: i + 1 for i, t in enumerate(tags)}}
    intents = sorted({intent for *_, intent in rows})
    words = {t for tokens, _, _ in rows for t in tokens}
    words |= {w for text in TEXTS.values() for w in jieba.lcut(text) if w.strip()}  # jieba's units too
    words |= set("".join(TEXTS.values()).replace(" ", "")) | {"Taylor", "Swift"} | set("TaylorSwift")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] if tokenizer == "wordpiece" else ["<S>", "</S>", "<UNK>"]
    with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(specials + sorted(words)) + "\n")
    with open(os.path.join(folder, "label_map.json"), "w", encoding="utf-8") as f:
        json.dump(label_map, f, ensure_ascii=False)
    with open(os.path.join(folder, "slot.tsv"), "w", encoding="utf-8") as f:
        f.write("text_a\tlabel\n" + "".join("\x02".join(t) + "\t" + "\x02".join(g) + "\n" for t, g, _ in rows))
    with open(os.path.join(folder, "intent.tsv"), "w", encoding="utf-8") as f:
        # classification reads raw text: Chinese without spaces, as typed
        f.write("label\ttext_a\n" + "".join(f"{intents.index(i)}\t{_typed(t)}\n" for t, _, i in typed_rows))
    return len(label_map), intents


def _letters(tokens, tags):
    out_tokens, out_tags = [], []
    for token, tag in zip(tokens, tags):
        for index, char in enumerate(token):
            out_tokens.append(char)
            out_tags.append(tag if index == 0 or tag == "O" else "I-" + tag[2:])
    return out_tokens, out_tags


def _typed(tokens):
    """Tokens as a person types them: spaces between Latin words only."""
    text = ""
    for token in tokens:
        if text and token.isascii() and text[-1].isascii():
            text += " "
        text += token
    return text


@pytest.fixture(scope="module", params=TOKENIZERS)
def model(request, tmp_path_factory):
    """A tiny slot + intent model per tokenizer, trained on the bilingual sample, its exported
    joint model, and the per-task Trainers (with prediction models sharing the weights)."""
    tokenizer = request.param
    folder = str(tmp_path_factory.mktemp(f"raw-{tokenizer}"))
    num_tags, intents = _write_data(folder, tokenizer)
    vocab = os.path.join(folder, "vocab.txt")
    conf = tiny_config(sum(1 for _ in open(vocab, encoding="utf-8")), hidden=HIDDEN)
    paddle.seed(0)
    slot_reader = palm.reader.SequenceLabelReader(vocab, 64, os.path.join(folder, "label_map.json"),
                                                  tokenizer=tokenizer, seed=1)
    slot_reader.load_data(os.path.join(folder, "slot.tsv"), batch_size=16)
    intent_reader = palm.reader.ClassifyReader(vocab, 64, tokenizer=tokenizer, seed=1)
    intent_reader.load_data(os.path.join(folder, "intent.tsv"), batch_size=16)
    backbone = palm.backbone.ERNIE.from_config(conf)
    slot, intent = palm.Trainer("slot"), palm.Trainer("intent")
    slot.build_forward(backbone, palm.head.SequenceLabel(num_tags, HIDDEN, learning_rate=10.0))
    intent.build_forward(backbone, palm.head.Classify(len(intents), HIDDEN))
    trainer = palm.MultiHeadTrainer([slot, intent], seed=2)
    trainer.build_backward(palm.optimizer.Adam(trainer.build_forward(), 1e-2))
    trainer.fit_readers_with_mixratio([slot_reader, intent_reader], "slot", 8)
    trainer.train(print_steps=0)
    pred_backbone = palm.backbone.ERNIE.from_config(conf, phase="predict")
    slot.build_predict_forward(pred_backbone, palm.head.SequenceLabel(num_tags, HIDDEN, phase="predict"))
    intent.build_predict_forward(pred_backbone, palm.head.Classify(len(intents), HIDDEN, phase="predict"))
    export = os.path.join(folder, "export")
    trainer.export(export, label_names={"intent": intents})
    return {"tokenizer": tokenizer, "export": export, "trainers": {"slot": slot, "intent": intent},
            "folder": folder}


def _check(raw, pretokenized, tokenizer, text):
    """One raw-text record against the same text's pre-tokenized record."""
    tokens = expected_tokens(tokenizer, text)
    assert raw["slot"]["tokens"] == tokens
    assert len(raw["slot"]["tags"]) == len(tokens)
    assert raw["slot"]["tags"] == pretokenized["slot"]["tags"]
    assert raw["intent"]["label"] == pretokenized["intent"]["label"]
    assert [(s["type"], s["token_start"], s["token_end"]) for s in raw["slot"]["spans"]] == \
           [(s["type"], s["token_start"], s["token_end"]) for s in pretokenized["slot"]["spans"]]
    for span in raw["slot"]["spans"]:
        assert text[span["start"]:span["end"]] == span["text"]
        inside = tokens[span["token_start"]:span["token_end"]]
        assert span["text"].replace(" ", "") == "".join(inside)


def _records_of(per_task):
    """``{task: [results]}`` -> one ``{task: result}`` record per input."""
    tasks = list(per_task)
    return [{task: per_task[task][i] for task in tasks} for i in range(len(per_task[tasks[0]]))]


def test_predictor_raw_equals_pretokenized(model):
    predictor = palm.Predictor(model["export"], threads=1)
    texts = list(TEXTS.values())
    tokens = [expected_tokens(model["tokenizer"], t) for t in texts]
    raw, pre = predictor.predict(texts), predictor.predict(tokens, pretokenized=True)
    for text, r, p in zip(texts, raw, pre):
        _check(r, p, model["tokenizer"], text)
    if model["tokenizer"] == "char":  # the trained tagger finds the Chinese and mixed entities in raw text
        found = {(s["type"], s["text"]) for record in raw for s in record["slot"]["spans"]}
        assert {("city", "北京"), ("date", "明天"), ("singer", "Taylor Swift")} <= found, found


def test_trainer_predict_raw_equals_pretokenized_and_the_predictor(model):
    trainers = model["trainers"]
    texts = list(TEXTS.values())
    tokens = [expected_tokens(model["tokenizer"], t) for t in texts]
    raw = _records_of({n: t.predict(inputs=texts) for n, t in trainers.items()})
    pre = _records_of({n: t.predict(inputs=tokens, pretokenized=True) for n, t in trainers.items()})
    for text, r, p in zip(texts, raw, pre):
        _check(r, p, model["tokenizer"], text)
    exported = palm.Predictor(model["export"], threads=1).predict(texts)
    for mine, theirs in zip(raw, exported):
        assert mine["slot"]["tags"] == theirs["slot"]["tags"]
        assert mine["slot"]["spans"] == theirs["slot"]["spans"]
        assert mine["intent"]["label"] == theirs["intent"]["label"]


def test_palm_predict_raw_equals_pretokenized(model, tmp_path):
    texts = list(TEXTS.values())
    raw_file, pre_file = tmp_path / "raw.txt", tmp_path / "tokens.txt"
    raw_file.write_text("\n".join(texts) + "\n", encoding="utf-8")
    # --pretokenized: one token per TAB-free, space-separated field (a pair is two TAB-separated texts)
    pre_file.write_text("\n".join(" ".join(expected_tokens(model["tokenizer"], t)) for t in texts) + "\n",
                        encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def palm_predict(*args):
        done = subprocess.run([sys.executable, "-m", "paddlepalm.cli", "predict", model["export"], *args],
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]  # stdout is JSON Lines only

    raw, pre = palm_predict("--input", str(raw_file)), palm_predict("--input", str(pre_file), "--pretokenized")
    assert [r["input"] for r in raw] == texts
    for text, r, p in zip(texts, raw, pre):
        _check(r, p, model["tokenizer"], text)


def test_whitespace_model_warns_on_unspaced_chinese(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("<S>\n</S>\n<UNK>\n北\n京\n", encoding="utf-8")
    reader = palm.reader.ClassifyReader(str(vocab), 16, tokenizer="whitespace", phase="predict")
    with pytest.warns(UserWarning, match="splits at whitespace"):
        reader.units_of("北京天气")


def test_fold_width_reads_full_width_input_as_the_folded_training_data(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("<S>\n</S>\n<UNK>\n1\n9\n8\n年\nA\n", encoding="utf-8")
    labels = {"O": 0}
    folded = palm.reader.SequenceLabelReader(str(vocab), 16, labels, tokenizer="char", fold_width=True, phase="predict")
    plain = palm.reader.SequenceLabelReader(str(vocab), 16, labels, tokenizer="char", phase="predict")
    raw, half = "１９９８年Ａ", "1998年A"
    assert folded.features_of([raw])[0]["token_ids"] == plain.features_of([half])[0]["token_ids"]
    assert plain.features_of([raw])[0]["token_ids"] != plain.features_of([half])[0]["token_ids"]
    feature = folded.features_of([raw])[0]
    assert [raw[s:e] for s, e in feature["word_spans"]] == list(raw)  # offsets into the raw text
    assert folded.settings()["fold_width"] is True  # recorded in exports


def test_palm_serve_raw_equals_pretokenized(model):
    """``palm serve``'s HTTP answers: ``{"texts": ...}`` and ``{"tokens": ...}`` (pre-tokenized)."""
    import http.client
    import urllib.parse

    from paddlepalm.serve import Service, ServerThread

    texts = list(TEXTS.values())
    tokens = [expected_tokens(model["tokenizer"], t) for t in texts]

    def post(url, body):
        parts = urllib.parse.urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        try:
            connection.request("POST", "/predict", json.dumps(body).encode("utf-8"),
                               {"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = json.loads(response.read())
            assert response.status == 200, answer
            return answer["predictions"]
        finally:
            connection.close()

    with ServerThread(Service(palm.Predictor(model["export"], threads=1))) as server:
        raw, pre = post(server.url, {"texts": texts}), post(server.url, {"tokens": tokens})
    for text, r, p in zip(texts, raw, pre):
        _check(r, p, model["tokenizer"], text)
    direct = palm.Predictor(model["export"], threads=1).predict(texts)
    assert [r["slot"]["tags"] for r in raw] == [d["slot"]["tags"] for d in direct]


def test_joint_export_predicts_a_sentence_its_tasks_cut_differently(tmp_path):
    """Longer than ``max_len``: the tagger cuts whole words, the classifier word pieces, so the two
    tasks' token arrays differ; the joint model then runs once per task, each on its own arrays, and
    gives what each task's own export gives."""
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "show", "me", "fl", "##ight",
                                "##s"]) + "\n", encoding="utf-8")
    (tmp_path / "slot.tsv").write_text("text_a\tlabel\n" + "show\x02me\x02flights\tO\x02O\x02B-x\n" * 4,
                                       encoding="utf-8")
    (tmp_path / "intent.tsv").write_text("label\ttext_a\n" + "1\tshow me flights\n" * 4, encoding="utf-8")
    paddle.seed(0)
    slot_reader = palm.reader.SequenceLabelReader(str(vocab), 8, {"O": 0, "B-x": 1}, seed=1)
    slot_reader.load_data(str(tmp_path / "slot.tsv"), batch_size=2)
    intent_reader = palm.reader.ClassifyReader(str(vocab), 8, seed=1)
    intent_reader.load_data(str(tmp_path / "intent.tsv"), batch_size=2)
    backbone = palm.backbone.ERNIE.from_config(tiny_config(10, hidden=HIDDEN))
    slot, intent = palm.Trainer("slot"), palm.Trainer("intent")
    slot.build_forward(backbone, palm.head.SequenceLabel(2, HIDDEN))
    intent.build_forward(backbone, palm.head.Classify(2, HIDDEN))
    trainer = palm.MultiHeadTrainer([slot, intent], seed=2)
    trainer.build_backward(palm.optimizer.Adam(trainer.build_forward(), 1e-2))
    trainer.fit_readers_with_mixratio([slot_reader, intent_reader], "slot", 1)
    trainer.train_one_step(trainer.get_one_batch())
    paths = {name: str(tmp_path / name) for name in ("joint", "slot", "intent")}
    trainer.export(paths["joint"])
    trainer.export(paths["slot"], tasks=["slot"])
    trainer.export(paths["intent"], tasks=["intent"])
    text = ["show me flights flights"]  # [CLS] show me fl ##ight ##s fl ... : past max_len 8 mid-word
    joint = palm.Predictor(paths["joint"], threads=1).predict(text)[0]
    alone = {task: palm.Predictor(paths[task], threads=1).predict(text)[0][task] for task in ("slot", "intent")}
    assert joint["slot"]["truncated"] and joint["intent"]["truncated"]
    assert joint["slot"]["tags"] == alone["slot"]["tags"] and len(joint["slot"]["tags"]) == 4
    assert joint["intent"]["label"] == alone["intent"]["label"]
    np.testing.assert_allclose(joint["intent"]["probs"], alone["intent"]["probs"], rtol=1e-5, atol=1e-6)
