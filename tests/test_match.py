import os

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from conftest import tiny_config
from paddlepalm.head.match import pairwise_hinge_loss
from paddlepalm.model import to_tensors
from paddlepalm.utils.vocab import build_vocab, write_vocab

TRIPLES = [("花呗怎么还款", "花呗如何还钱", "借呗额度多少"),
           ("如何开通借呗", "借呗怎么开通", "花呗可以分期吗"),
           ("余额宝收益", "余额宝每天收益多少", "怎么注销账户"),
           ("账户被冻结了", "为什么账户冻结", "快递到哪了")]


def _write(path, header, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\t".join(header) + "\n")
        for row in rows:
            f.write("\t".join(row) + "\n")
    return str(path)


@pytest.fixture
def vocab(tmp_path):
    path = str(tmp_path / "vocab.txt")
    write_vocab(build_vocab(t for triple in TRIPLES for t in triple), path)
    return path


def test_pairwise_loss_equals_hand_computation(tmp_path, vocab):
    train = _write(tmp_path / "pair.tsv", ["text_a", "text_b", "text_b_neg"], TRIPLES)
    reader = palm.reader.MatchReader(vocab, 32, lang="cn", learning_strategy="pairwise", seed=0)
    paddle.seed(0)
    backbone = palm.backbone.ERNIE.from_config(tiny_config(sum(1 for _ in open(vocab, encoding="utf-8"))),
                                               phase="predict")
    reader.register_with(backbone)
    reader.load_data(train, batch_size=4, shuffle_train=False)
    head = palm.head.Match(2, 32, learning_strategy="pairwise", margin=0.8)
    batch = next(reader.iter_epoch(0))
    assert batch["token_ids"].shape[0] == 8  # 4 positive pairs, then the 4 negative pairs
    order = batch["example_ids"][:4]
    for row, index in enumerate(order):
        a, pos, neg = TRIPLES[index]
        assert reader.features_of([(a, pos)])[0]["token_ids"] == [t for t in batch["token_ids"][row] if t != 0]
        assert reader.features_of([(a, neg)])[0]["token_ids"] == [t for t in batch["token_ids"][row + 4] if t != 0]
    tensors = to_tensors(batch)
    embedding = backbone(tensors)["sentence_pair_embedding"]
    loss = float(head(tensors, {"sentence_pair_embedding": embedding})["loss"])
    w = head.classifier.weight.numpy()[:, 0]
    b = float(head.classifier.bias.numpy()[0])
    scores = 1 / (1 + np.exp(-(embedding.numpy() @ w + b)))
    hand = np.mean([max(0.0, 0.8 - scores[i] + scores[i + 4]) for i in range(4)])
    assert loss == pytest.approx(hand, rel=1e-5)


def test_pairwise_hinge_clips_at_zero():
    scores = paddle.to_tensor([0.9, 0.2, 0.1, 0.6])  # positives 0.9, 0.2; negatives 0.1, 0.6
    # max(0, 0.5 - 0.9 + 0.1) = 0 ; max(0, 0.5 - 0.2 + 0.6) = 0.9
    assert float(pairwise_hinge_loss(scores, 0.5)) == pytest.approx(0.45)


def test_missing_negative_text_is_reported_with_file_and_line(tmp_path, vocab):
    no_column = _write(tmp_path / "a.tsv", ["text_a", "text_b"], [t[:2] for t in TRIPLES])
    reader = palm.reader.MatchReader(vocab, 32, lang="cn", learning_strategy="pairwise")
    with pytest.raises(palm.reader.DataFormatError, match=r"a\.tsv:1: header lacks column\(s\) \['text_b_neg'\]"):
        reader.load_data(no_column, batch_size=2)
    empty = _write(tmp_path / "b.tsv", ["text_a", "text_b", "text_b_neg"], [TRIPLES[0], ("问", "答", " ")])
    with pytest.raises(palm.reader.DataFormatError, match=r"b\.tsv:3: empty text_b_neg"):
        reader.load_data(empty, batch_size=2)
    pointwise = palm.reader.MatchReader(vocab, 32, lang="cn")
    no_b = _write(tmp_path / "c.tsv", ["text_a", "label"], [("问", "1")])
    with pytest.raises(palm.reader.DataFormatError, match=r"c\.tsv:1: header lacks column\(s\) \['text_b'\]"):
        pointwise.load_data(no_b, batch_size=2)


@pytest.mark.parametrize("strategy", ["pointwise", "pairwise"])
def test_match_trains_and_predicts(tmp_path, vocab, strategy):
    if strategy == "pairwise":
        train = _write(tmp_path / "train.tsv", ["text_a", "text_b", "text_b_neg"], TRIPLES * 4)
    else:
        rows = [(a, p, "1") for a, p, _ in TRIPLES] + [(a, n, "0") for a, _, n in TRIPLES]
        train = _write(tmp_path / "train.tsv", ["text_a", "text_b", "label"], rows * 2)
    test = _write(tmp_path / "test.tsv", ["text_a", "text_b"], [t[:2] for t in TRIPLES] + [(t[0], t[2]) for t in TRIPLES])
    config = tiny_config(sum(1 for _ in open(vocab, encoding="utf-8")))
    reader = palm.reader.MatchReader(vocab, 32, lang="cn", learning_strategy=strategy, seed=1)
    backbone = palm.backbone.ERNIE.from_config(config)
    reader.register_with(backbone)
    reader.load_data(train, batch_size=4, num_epochs=2)
    trainer = palm.Trainer("match")
    loss_var = trainer.build_forward(backbone, palm.head.Match(2, 32, 0.1, learning_strategy=strategy))
    trainer.build_backward(palm.optimizer.Adam(loss_var, 1e-3))
    trainer.fit_reader(reader)
    trainer.set_saver(str(tmp_path / "ckpt"), save_steps=1000)
    trainer.train(print_steps=2)
    steps = trainer.cur_train_step
    assert steps == 2 * reader.num_examples // 4

    predictor = palm.Trainer("match")
    pred_reader = palm.reader.MatchReader(vocab, 32, lang="cn", learning_strategy=strategy, phase="predict")
    pred_backbone = palm.backbone.ERNIE.from_config(config, phase="predict")
    pred_reader.register_with(pred_backbone)
    pred_reader.load_data(test, batch_size=3)
    predictor.build_predict_forward(pred_backbone, palm.head.Match(2, 32, learning_strategy=strategy, phase="predict"))
    predictor.load_ckpt(str(tmp_path / "ckpt" / f"ckpt.step{steps}"))
    predictor.fit_reader(pred_reader, phase="predict")
    results = predictor.predict(output_dir=str(tmp_path / "pred"))
    assert [r["index"] for r in results] == list(range(8))
    key = "score" if strategy == "pairwise" else "label"
    assert all(key in r for r in results)
    assert sum(1 for _ in open(tmp_path / "pred" / "predictions.json")) == 8
