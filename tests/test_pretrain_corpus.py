"""Issue 26's pretraining corpus and pretraining runs: the corpus maker leaves evaluation text and
duplicates out and keeps a held-out slice; packed masked-LM sequences; a pretraining run killed and
started again continues exactly (same losses as one run straight through), its CPU time carried on."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import paddlepalm as palm
from paddlepalm.prepare import pretrain_corpus
from paddlepalm.utils.fileio import read_json_lines, read_lines

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=REPO, MKL_NUM_THREADS="1")

EVAL_LONG = "这是一段出现在测试集中的很长的文字内容用来检查是否被过滤掉"
DOCS = [["今天天气很好。", "我们去公园散步了。"],
        ["他说" + EVAL_LONG[2:20] + "。", "这句话应该保留。"],     # shares a 16-character window with EVAL_LONG
        ["很好。"],                                                  # equals a short evaluation text
        ["今天天气很好。", "我们去公园散步了。"],                      # a duplicate of the first document
        ] + [[f"第{i}篇文档的第一句。", f"第{i}篇文档的第二句。"] for i in range(300)]


def build(tmp_path):
    sources = [("a", lambda: iter(DOCS[:2])), ("b", lambda: iter(DOCS[2:]))]
    return pretrain_corpus.build("unused", str(tmp_path), vocab_size=500, min_freq=1, log=lambda m: None,
                                 sources=sources, evaluation=[EVAL_LONG, "很好。"])


def documents(path):
    text = open(path, encoding="utf-8").read()
    return [d.split("\n") for d in text.split("\n\n") if d.strip()]


def test_the_corpus_leaves_out_evaluation_text_and_duplicates(tmp_path):
    stats = build(tmp_path)
    train, heldout = documents(tmp_path / "train.txt"), documents(tmp_path / "heldout.txt")
    everything = [s for d in train + heldout for s in d]
    assert not any(EVAL_LONG[2:18] in s for s in everything) and "很好。" not in everything
    assert "这句话应该保留。" in everything  # the rest of the document stays
    assert sum(d == DOCS[0] for d in train + heldout) == 1
    assert stats["sources"]["a"]["sentences_dropped_as_evaluation_text"] == 1
    assert stats["sources"]["b"]["sentences_dropped_as_evaluation_text"] == 1
    assert stats["sources"]["b"]["documents_dropped_as_duplicates"] == 1
    assert stats["total"]["train_documents"] + stats["total"]["heldout_documents"] == len(train) + len(heldout) == 302
    # the held-out slice is chosen by the text, so it is the same whatever the order of the sources
    assert 0 < len(heldout) < 20
    assert all(pretrain_corpus.is_heldout("\n".join(d)) for d in heldout)
    again = tmp_path / "again"
    pretrain_corpus.build("unused", str(again), vocab_size=500, min_freq=1, log=lambda m: None,
                          sources=[("b", lambda: iter(DOCS[2:])), ("a", lambda: iter(DOCS[:2]))],
                          evaluation=[EVAL_LONG, "很好。"])
    assert sorted(map(tuple, documents(again / "heldout.txt"))) == sorted(map(tuple, heldout))
    assert "天" in read_lines(str(tmp_path / "vocab.txt"))


def test_packed_sequences_fill_max_len_without_splitting_a_sentence(tmp_path):
    build(tmp_path)
    vocab = str(tmp_path / "vocab.txt")
    corpus = str(tmp_path / "train.txt")
    plain = palm.reader.MaskedCorpusReader(vocab, 64, lang="cn", seed=1)
    plain.load_data(corpus, batch_size=4)
    packed = palm.reader.MaskedCorpusReader(vocab, 64, lang="cn", seed=1, pack_documents=True, whole_word_mask=True)
    packed.load_data(corpus, batch_size=4)
    assert packed.num_examples < plain.num_examples / 2
    tokenizer = packed.tokenizer
    sep = tokenizer.convert_tokens_to_ids(["[SEP]"])[0]
    cls = tokenizer.convert_tokens_to_ids(["[CLS]"])[0]
    features = list(packed.epoch_features(0))
    assert all(len(f["token_ids"]) <= 64 and set(f["segment_ids"]) == {0} for f in features)
    assert all(f["token_ids"][0] == cls and f["token_ids"][-1] == sep for f in features)
    # every token of the corpus is in exactly one sequence, in order
    text = [t for f in features for t in f["token_ids"] if t not in (sep, cls)]
    expected = [t for d in documents(corpus) for s in d for t in tokenizer.convert_tokens_to_ids(tokenizer.tokenize(s))]
    assert text == expected
    # whole-word masking never picks [CLS] or [SEP]
    for batch in packed.iter_epoch(0):
        ids = batch["token_ids"].reshape(-1)
        assert not set(batch["mask_label"].tolist()) & {sep, cls}
        assert (ids[batch["mask_pos"]] != sep).all()


def pretrain(work, *args, example="electra"):
    objective = ["--objective", "mlm"] if example == "electra" else []
    done = subprocess.run([sys.executable, os.path.join(REPO, "examples", "pretrain", example, "run.py"),
                           *objective, "--hidden", "32", "--embedding_size", "16", "--layers", "1",
                           "--heads", "2", "--max_len", "32", "--batch_size", "8", "--warmup", "2",
                           "--print_steps", "2", "--save_steps", "2", "--cpu_minutes", "30", "--work_dir", str(work),
                           "--output", str(work / "out"), *args], capture_output=True, text=True, env=ENV, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_pretraining_run_started_again_continues_exactly(tmp_path):
    straight = tmp_path / "straight"
    pretrain(straight, "--max_steps", "8")
    stopped = tmp_path / "stopped"
    pretrain(stopped, "--max_steps", "4")
    out = pretrain(stopped, "--max_steps", "8")
    assert "resumed from" in out and "step 4" in out
    first = read_json_lines(str(straight / "mlm_loss.jsonl"))
    second = read_json_lines(str(stopped / "mlm_loss.jsonl"))
    assert [e["step"] for e in second] == [e["step"] for e in first] == [2, 4, 6, 8]
    np.testing.assert_allclose([e["loss"] for e in second], [e["loss"] for e in first], rtol=1e-6)
    cpu = [e["cpu_seconds"] for e in second]
    # the CPU time goes on from the checkpoint's (logged to 0.1 s: two fast updates may not move it)
    assert cpu == sorted(cpu) and cpu[1] > 0
    info = json.load(open(stopped / "out" / "pretrain_info.json", encoding="utf-8"))
    assert info["steps"] == 8


def pretrain_elmo(corpus, work, *args):
    done = subprocess.run([sys.executable, os.path.join(REPO, "examples", "pretrain", "elmo", "run.py"),
                           "--corpus", str(corpus), "--cell_size", "16", "--projection_size", "8", "--num_samples",
                           "16", "--max_len", "16", "--batch_size", "8", "--print_steps", "2", "--save_steps", "2",
                           "--cpu_minutes", "30", "--dygraph", "--work_dir", str(work), "--save_to",
                           str(work / "package"), *args], capture_output=True, text=True, env=ENV, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_an_elmo_pretraining_run_started_again_continues_exactly(tmp_path):
    corpus = tmp_path / "corpus"
    build(corpus)
    straight = tmp_path / "straight"
    pretrain_elmo(corpus, straight, "--max_steps", "8")
    stopped = tmp_path / "stopped"
    pretrain_elmo(corpus, stopped, "--max_steps", "4")
    out = pretrain_elmo(corpus, stopped, "--max_steps", "8")
    assert "resumed from" in out and "step 4" in out
    first = read_json_lines(str(straight / "bilm_loss.jsonl"))
    second = read_json_lines(str(stopped / "bilm_loss.jsonl"))
    assert [e["step"] for e in second] == [e["step"] for e in first] == [2, 4, 6, 8]
    assert set(first[0]) == {"step", "epoch", "loss", "cpu_seconds", "wall_seconds"}
    np.testing.assert_allclose([e["loss"] for e in second], [e["loss"] for e in first], rtol=1e-6)
    cpu = [e["cpu_seconds"] for e in second]
    # the CPU time goes on from the checkpoint's (logged to 0.1 s: two fast updates may not move it)
    assert cpu == sorted(cpu) and cpu[1] > 0
    # the ELMo vocabulary is built from train.txt (the corpus folder's vocab.txt is a BERT one)
    vocab = read_lines(str(stopped / "package" / "vocab.txt"))
    assert vocab[:3] == ["<S>", "</S>", "<UNK>"] and "篇" in vocab
    elmo = palm.backbone.ELMo.from_pretrained(str(stopped / "package"))
    assert elmo.vocab_path and elmo.input_limits["vocab_size"] == len(vocab)
    vectors = elmo.embed_sentences(["第一篇文档"])
    assert vectors[0].shape == (3, 5, 16) and np.isfinite(vectors[0]).all()
    straight_elmo = palm.backbone.ELMo.from_pretrained(str(straight / "package"))
    np.testing.assert_allclose(straight_elmo.embed_sentences(["第一篇文档"])[0], vectors[0], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("example,objective", [("electra", "electra"), ("electra", "mlm"), ("albert", None)])
def test_heldout_report_of_a_pretraining_checkpoint(example, objective, tmp_path):
    """examples/pretrain/heldout.py reads a checkpoint that a pretraining example wrote and reports
    the held-out masked-LM figures; for ELECTRA the detection loss beside the prior's, for ALBERT
    the sentence-order accuracy."""
    corpus = tmp_path / "corpus"
    build(corpus)
    model = ["--hidden", "32", "--embedding_size", "16", "--layers", "1", "--heads", "2", "--max_len", "32",
             "--corpus", str(corpus)] + (["--objective", objective] if objective else [])
    pretrain(tmp_path / "run", "--max_steps", "4", *model, example=example)
    checkpoint = tmp_path / "run" / "checkpoints" / "ckpt.step4"
    assert checkpoint.is_dir()
    # the training log has the head's loss terms beside the total
    terms = {"electra": {"generator_loss", "rtd_loss"}, "mlm": set(), None: {"mlm_loss", "sop_loss"}}[objective]
    log = read_json_lines(str(tmp_path / "run" / f"{objective or 'sop'}_loss.jsonl"))
    assert [set(entry) - {"step", "epoch", "loss", "cpu_seconds", "wall_seconds"} for entry in log] == [terms] * 2
    done = subprocess.run([sys.executable, os.path.join(REPO, "examples", "pretrain", "heldout.py"), example,
                           *model, "--batch_size", "1", "--batches", "2", "--checkpoint", str(checkpoint)],
                          capture_output=True, text=True, env=ENV, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    mlm = report["mlm"]
    assert mlm["masked_tokens"] > 0 and 0 <= mlm["accuracy"] <= 1
    assert mlm["perplexity"] == pytest.approx(np.exp(mlm["loss"]))
    # four updates leave the masked LM far from a trained one: near a uniform guess over the vocabulary
    vocab_size = len(read_lines(str(corpus / "vocab.txt")))
    assert 0.3 * np.log(vocab_size) < mlm["loss"] < 2 * np.log(vocab_size)
    assert ("detection" in report) == (objective == "electra")
    assert ("sentence_order" in report) == (example == "albert")
    if example == "albert":
        assert report["sentence_order"]["pairs"] == 2 and report["sentence_order"]["accuracy"] in (0, 0.5, 1)
    if objective == "electra":
        detection = report["detection"]
        rate = detection["replaced_rate"]
        assert detection["tokens"] > 0 and 0 < rate < 1
        assert detection["prior_loss"] == pytest.approx(-(rate * np.log(rate) + (1 - rate) * np.log(1 - rate)))
        assert 0 <= detection["auc"] <= 1 and detection["loss"] > 0
