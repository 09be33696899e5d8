"""The Chinese four-task mixture (examples/multi-task-zh, examples/configs/zh-mixture.yaml): its data
preparation writes what the readers load, and ``palm train`` + ``palm eval --split test`` run on the
generated sample and score every task."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from paddlepalm.reader.errors import DataFormatError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# by path, under its own name: conftest puts examples/multi-task (its own make_sample) on sys.path
_spec = importlib.util.spec_from_file_location("multi_task_zh_make_data",
                                               os.path.join(REPO, "examples", "multi-task-zh", "make_data.py"))
make_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_data)
TASKS = ("tnews", "afqmc", "senti", "weibo")
ENV = dict(os.environ, PYTHONPATH=REPO, MKL_NUM_THREADS="1")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("zh")
    out = root / "data"
    stats = make_data.convert(make_data.read_sources(make_data.sample_source(str(root))), str(out), eval_size=25)
    return out, stats


def _rows(path):
    lines = open(path, encoding="utf-8").read().splitlines()
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:]]


def test_the_files_are_in_the_readers_formats(sample):
    out, stats = sample
    assert _rows(out / "tnews" / "train.tsv")[0] == ["label", "text_a"]
    assert _rows(out / "afqmc" / "train.tsv")[0] == ["text_a", "text_b", "label"]
    assert _rows(out / "senti" / "test.tsv")[0] == ["label", "text_a"]
    header, rows = _rows(out / "weibo" / "dev.tsv")
    tags = json.load(open(out / "weibo" / "label_map.json"))
    assert header == ["text_a", "label"] and tags["O"] == 0 and len(tags) == len(set(tags.values()))
    for chars, labels in rows:
        assert len(chars.split("\x02")) == len(labels.split("\x02")) and set(labels.split("\x02")) <= set(tags)
        assert not any(c.isdigit() for c in chars)  # the sample has no digits: the word positions were dropped
    names = json.load(open(out / "tnews" / "label_map.json"))
    assert len(names) == 15 and {int(r[0]) for r in _rows(out / "tnews" / "train.tsv")[1]} <= set(names.values())
    # training sets keep their sizes (the spread); held-out dev is split into disjoint dev and test
    assert [stats[t]["train"]["examples"] for t in TASKS] == [400, 200, 100, 40]
    for task in ("tnews", "afqmc", "senti"):
        dev, test = (_rows(out / task / f"{s}.tsv")[1] for s in ("dev", "test"))
        assert len(dev) == len(test) == 25  # the sample has 120 held-out examples
    vocab = open(out / "vocab.txt", encoding="utf-8").read().split("\n")
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and "花" in vocab and "张" in vocab


def test_split_heldout_is_deterministic_and_disjoint():
    rows = [(str(i),) for i in range(100)]
    dev, test = make_data.split_heldout(rows, 30, seed=1)
    assert (dev, test) == make_data.split_heldout(rows, 30, seed=1)
    assert len(dev) == len(test) == 30 and not set(dev) & set(test)
    assert [len(part) for part in make_data.split_heldout(rows[:20], 30, seed=1)] == [10, 10]


def test_weibo_tokens_drop_the_word_position(tmp_path):
    path = tmp_path / "w.conll"
    path.write_text("10\tO\n110\tO\np10\tO\n\ufffd\ufffd0\tO\n李0\tB-PER.NAM\n"
                    "\n\n张0\tB-PER.NOM\n", encoding="utf-8")
    first, second = make_data.read_weibo(str(path))
    assert first == (["1", "1", "p", "\ufffd\ufffd", "李"], ["O", "O", "O", "O", "B-PER.NAM"])
    assert second == (["张"], ["B-PER.NOM"])
    path.write_text("李\tO\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"w.conll:1"):
        make_data.read_weibo(str(path))


def test_real_sources_parse(data_root):
    """Each real data set's format as its SOURCE.md describes it (heads of the files only)."""
    tnews = os.path.join(data_root, "tnews")
    labels = open(os.path.join(tnews, "labels.txt"), encoding="utf-8").read().split()
    assert len(labels) == 15 and len(make_data.read_tnews(os.path.join(tnews, "dev.tsv"), labels)) == 10000
    assert len(make_data.read_afqmc(os.path.join(data_root, "afqmc", "dev.txt"))) == 4316
    assert len(make_data.read_chnsenticorp(os.path.join(data_root, "chnsenticorp", "dev.tsv"))) == 1200
    weibo = make_data.read_weibo(os.path.join(data_root, "weibo_ner", "weiboNER_2nd_conll.dev"))
    assert len(weibo) == 270 and sum(len(c) for c, _ in weibo) == 14509


def test_palm_train_then_eval_test_scores_every_task(tmp_path):
    run = tmp_path / "run"
    tiny = ["-o", "backbone.config.hidden_size=32", "-o", "backbone.config.num_hidden_layers=1",
            "-o", "backbone.config.num_attention_heads=2", "-o", "backbone.config.intermediate_size=64"]
    train = subprocess.run([sys.executable, "-m", "paddlepalm.cli", "train",
                            os.path.join(REPO, "examples", "configs", "zh-mixture.yaml"), "-s", str(run), *tiny,
                            "-o", "train.schedule={kind: Uniform}", "-o", "train.epochs=0.15", "--no-progress"],
                           capture_output=True, text=True, env=ENV, cwd=REPO, timeout=300)
    assert train.returncode == 0, train.stdout[-2000:] + train.stderr[-2000:]
    assert "palm train: done at global step 3," in train.stderr  # floor(0.15 x (12 + 6 + 3 + 1) batches)
    out = subprocess.run([sys.executable, "-m", "paddlepalm.cli", "eval", str(run), "--split", "test"],
                         capture_output=True, text=True, env=ENV, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [line["task"] for line in lines] == list(TASKS)
    for line, metric in zip(lines, ("accuracy", "macro_f1", "accuracy", "entity_f1")):
        assert line["data"] == str(run / "data" / line["task"] / "test.tsv") and 0 <= line[metric] <= 1
