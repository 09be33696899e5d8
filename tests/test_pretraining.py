"""Pretraining readers and heads: RTD labels, SOP swaps, bad corpora, objectives as auxiliary tasks."""
import os

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from conftest import tiny_config
from paddlepalm.reader.errors import DataFormatError
from paddlepalm.utils.vocab import build_vocab, write_vocab


def electra_config(vocab_size: int) -> dict:
    config = tiny_config(vocab_size)
    config["embedding_size"] = 16
    return config


@pytest.fixture(scope="module")
def en_corpus(joint_data, tmp_path_factory):
    """A corpus of documents of 3 sentences from the joint sample's intent texts."""
    root = tmp_path_factory.mktemp("corpus")
    with open(os.path.join(joint_data["dir"], "intent", "train.tsv"), encoding="utf-8") as f:
        texts = [line.rstrip("\n").split("\t")[1] for line in f][1:]
    with open(root / "corpus.txt", "w", encoding="utf-8") as f:
        for start in range(0, len(texts) - 2, 3):
            f.write("\n".join(texts[start:start + 3]) + "\n\n")
    return str(root / "corpus.txt")


def _vocab(joint_data):
    path = os.path.join(joint_data["dir"], "vocab.txt")
    return path, sum(1 for _ in open(path, encoding="utf-8"))


def test_rtd_labels_are_one_exactly_where_the_sample_differs(tmp_path):
    # a 10-token vocabulary makes the generator sample the original token often
    write_vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "d", "e"], str(tmp_path / "v.txt"))
    rng = np.random.RandomState(0)
    with open(tmp_path / "c.txt", "w") as f:
        for _ in range(40):
            f.write(" ".join(rng.choice(list("abcde"), 30)) + "\n\n")
    reader = palm.reader.MaskedCorpusReader(str(tmp_path / "v.txt"), 32, lang="en", seed=3, mask_prob=0.3)
    reader.load_data(str(tmp_path / "c.txt"), batch_size=40)
    paddle.seed(0)
    backbone = palm.backbone.ELECTRA.from_config(electra_config(10))
    reader.register_with(backbone)
    head = palm.head.ReplacedTokenDetection.from_config(electra_config(10))
    batch = {k: paddle.to_tensor(v) for k, v in next(reader.iter_epoch(0)).items()}
    original = batch["token_ids"].numpy().reshape(-1).copy()
    original[batch["mask_pos"].numpy()] = batch["mask_label"].numpy()
    inputs = head.prepare_inputs(dict(batch), backbone)
    corrupted = inputs["token_ids"].numpy().reshape(-1)
    labels = inputs["rtd_labels"].numpy().reshape(-1)
    np.testing.assert_array_equal(labels, (corrupted != original).astype(labels.dtype))
    masked = batch["mask_pos"].numpy()
    unmasked = np.setdiff1d(np.arange(len(original)), masked)
    assert (corrupted[unmasked] == original[unmasked]).all()
    same = (corrupted[masked] == original[masked]).sum()
    assert 0 < same < len(masked), "both cases (sample equals / differs from the original) must occur"

    # the generator gets no gradient from the RTD loss; the shared embeddings get the MLM's
    outputs = head(inputs, backbone(inputs))
    outputs["rtd_loss"].backward()
    assert all(p.grad is None or not p.grad.numpy().any() for p in head.generator.parameters())
    backbone.clear_gradients()
    head.clear_gradients()
    head.prepare_inputs(dict(batch), backbone)["generator_loss"].backward()
    assert backbone.word_embedding_layer().weight.grad.numpy().any()


def test_train_one_step_reports_the_heads_loss_terms(joint_data, en_corpus):
    """ELECTRA's total loss hides which part learns: train_one_step returns the generator's and
    the detection loss beside it, and they make it up (MLM + 50 x RTD)."""
    vocab, size = _vocab(joint_data)
    reader = palm.reader.MaskedCorpusReader(vocab, 32, lang="en", seed=1)
    reader.load_data(en_corpus, batch_size=8)
    paddle.seed(1)
    backbone = palm.backbone.ELECTRA.from_config(electra_config(size))
    head = palm.head.ReplacedTokenDetection.from_config(electra_config(size))
    trainer = palm.Trainer("electra")
    loss_var = trainer.build_forward(backbone, head)
    trainer.build_backward(palm.optimizer.Adam(loss_var, 1e-3))
    trainer.fit_reader(reader)
    for _ in range(2):
        step = trainer.train_one_step(trainer.get_one_batch())
        assert set(step) == {"loss", "generator_loss", "rtd_loss"}
        assert step["loss"] == pytest.approx(step["generator_loss"] + 50 * step["rtd_loss"], rel=1e-5)
        assert 0 < step["rtd_loss"] < 1 < step["generator_loss"]


def test_detection_metrics_against_brute_force():
    from paddlepalm.head.rtd import detection_metrics

    rng = np.random.RandomState(3)
    labels = rng.rand(400) < 0.15
    logits = np.round(rng.randn(400) + 1.5 * labels, 1)  # rounded: ties between the classes occur
    got = detection_metrics(logits, labels)
    pos, neg = logits[labels], logits[~labels]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert got["auc"] == pytest.approx(wins / (len(pos) * len(neg)))
    p = labels.mean()
    assert got["prior_loss"] == pytest.approx(-(p * np.log(p) + (1 - p) * np.log(1 - p)))
    bce = -np.mean(labels * np.log(1 / (1 + np.exp(-logits))) + (~labels) * np.log(1 - 1 / (1 + np.exp(-logits))))
    assert got["loss"] == pytest.approx(bce)
    assert got["recall"] == pytest.approx((logits[labels] > 0).mean())
    assert got["precision"] == pytest.approx(labels[logits > 0].mean())


def test_detection_metrics_of_a_discriminator_that_reads_nothing():
    """Predicting the replaced fraction everywhere: the loss is the prior's, the AUC one half."""
    from paddlepalm.head.rtd import detection_metrics

    labels = np.array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0])
    got = detection_metrics(np.full(10, np.log(0.2 / 0.8)), labels)
    assert got["loss"] == pytest.approx(got["prior_loss"])
    assert got["auc"] == pytest.approx(0.5)
    assert got["recall"] == 0.0 and got["precision"] is None  # nothing flagged: no precision to give
    perfect = detection_metrics(np.where(labels == 1, 3.0, -3.0), labels)
    assert perfect["auc"] == 1.0 and perfect["recall"] == 1.0 and perfect["precision"] == 1.0


def test_generator_is_a_fraction_of_the_discriminator():
    config = electra_config(50)
    head = palm.head.ReplacedTokenDetection.from_config(config, generator_size=0.5)
    assert head.generator.electra.config.hidden_size == 16
    assert head.generator.electra.config.num_attention_heads == 1
    assert not any("word_embeddings" in name for name, _ in head.named_parameters())


def test_sop_swaps_half_of_10k_pairs(tmp_path):
    sentences = ["甲乙丙丁", "戊己庚辛"]
    write_vocab(build_vocab(sentences), str(tmp_path / "v.txt"))
    with open(tmp_path / "c.txt", "w", encoding="utf-8") as f:
        f.write("\n\n".join("\n".join(sentences) for _ in range(1000)) + "\n")
    reader = palm.reader.SentenceOrderReader(str(tmp_path / "v.txt"), 16, seed=11)
    reader.load_data(str(tmp_path / "c.txt"), batch_size=100)
    first = reader.tokenizer.vocab.token_to_idx["甲"]
    labels = []
    for epoch in range(10):
        for batch in reader.iter_epoch(epoch):
            for row, label in enumerate(batch["label_ids"]):
                a_first = batch["token_ids"][row, 1]
                if a_first != reader.masker.mask_id and (batch["mask_pos"] != row * batch["token_ids"].shape[1] + 1).all():
                    assert (a_first == first) == (label == 0), "label 1 exactly when B comes first"
            labels.extend(batch["label_ids"].tolist())
    assert len(labels) == 10000
    assert abs(np.mean(labels) - 0.5) < 0.015  # 3 standard deviations


def test_corpus_bad_input(tmp_path):
    write_vocab(build_vocab(["甲乙丙丁戊己"]), str(tmp_path / "v.txt"))
    vocab = str(tmp_path / "v.txt")
    (tmp_path / "empty.txt").write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="empty.txt: corpus file is empty"):
        palm.reader.MaskedCorpusReader(vocab, 16).load_data(str(tmp_path / "empty.txt"), 2)
    (tmp_path / "flat.txt").write_text("甲乙丙\n丁戊己\n甲乙\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="flat.txt: no document boundaries"):
        palm.reader.SentenceOrderReader(vocab, 16).load_data(str(tmp_path / "flat.txt"), 2)
    (tmp_path / "bad.txt").write_bytes("甲乙\n".encode() + b"\xff\xfe\n")
    with pytest.raises(DataFormatError, match="bad.txt:2: bytes are not valid UTF-8"):
        palm.reader.MaskedCorpusReader(vocab, 16).load_data(str(tmp_path / "bad.txt"), 2)
    # long lines are cut, unknown characters counted, single-sentence documents counted
    (tmp_path / "odd.txt").write_text("甲乙丙丁戊己" * 10 + "\n丙丁\n\n子丑寅\n\n甲乙\n丙丁\n", encoding="utf-8")
    reader = palm.reader.SentenceOrderReader(vocab, 16)
    reader.load_data(str(tmp_path / "odd.txt"), 1)
    assert reader.stats["long_lines_split"] == 1
    assert reader.stats["unk_tokens"] == 3
    assert reader.stats["single_sentence_documents"] == 1
    assert all(len(f["token_ids"]) <= 16 for f in reader.epoch_features(0))


@pytest.mark.parametrize("objective", ["rtd", "sop", "mlm"])
def test_pretraining_objective_as_auxiliary_task(objective, joint_data, en_corpus, tmp_path):
    d = joint_data["dir"]
    vocab, size = _vocab(joint_data)
    config = electra_config(size)
    paddle.seed(3)
    if objective == "sop":
        backbone = palm.backbone.ALBERT.from_config(config)
        aux_reader = palm.reader.SentenceOrderReader(vocab, 48, lang="en", seed=1, max_ngram=3, whole_word_mask=True)
        aux_head = palm.head.SentenceOrder(32, size, "gelu", embedding_size=16)
    else:
        backbone = palm.backbone.ELECTRA.from_config(config)
        aux_reader = palm.reader.MaskedCorpusReader(vocab, 48, lang="en", seed=1)
        aux_head = (palm.head.ReplacedTokenDetection.from_config(config) if objective == "rtd"
                    else palm.head.MaskLM(32, size, "gelu", embedding_size=16))
    aux_reader.load_data(en_corpus, batch_size=8)
    cls_reader = palm.reader.ClassifyReader(vocab, 32, seed=1)
    cls_reader.load_data(os.path.join(d, "intent", "train.tsv"), batch_size=16)
    intent, aux = palm.Trainer("intent"), palm.Trainer(objective, mix_ratio=0.5)
    aux.set_as_aux()
    intent.build_forward(backbone, palm.head.Classify(joint_data["intent_classes"], 32, 0.1))
    aux.build_forward(backbone, aux_head)
    trainer = palm.MultiHeadTrainer([intent, aux])
    loss_var = trainer.build_forward()
    trainer.build_backward(palm.optimizer.LAMB(loss_var, 1e-2), weight_decay=0.01)
    trainer.fit_readers_with_mixratio([cls_reader, aux_reader], "intent", 2)
    trainer.set_saver(str(tmp_path), save_steps=1000)

    class Collect:
        records = []

        def log(self, step, record):
            self.records.append(record)

    trainer.train(print_steps=4, sinks=[Collect()])
    assert intent.cur_train_step == 2 * cls_reader.steps_per_epoch
    assert aux.cur_train_step > 0
    # each log record carries the auxiliary head's loss terms beside its loss (none for plain MLM)
    terms = {"rtd": {"generator_loss", "rtd_loss"}, "sop": {"mlm_loss", "sop_loss"}, "mlm": set()}[objective]
    train_records = [r for r in Collect.records if r["event"] == "train"]
    assert train_records
    base = {"loss", "updates", "share", "epoch", "batch", "steps_per_epoch"}
    assert all(set(r["tasks"]["intent"]) == base for r in train_records)
    logged = [r["tasks"][objective] for r in train_records if r["tasks"][objective]["updates"]]
    assert logged and all(set(r) - base == terms for r in logged)
    assert all(r[name] is not None and r[name] > 0 for r in logged for name in terms)

    # the pretrained backbone loads into a fresh fine-tuning trainer
    ckpt = str(tmp_path / f"ckpt.step{trainer.overall_train_steps}")
    fresh = palm.Trainer("intent")
    fresh.build_forward(type(backbone).from_config(config), palm.head.Classify(joint_data["intent_classes"], 32))
    report = fresh.load_pretrain(ckpt)
    assert not report.missing and len(report.loaded) == len(backbone.state_dict())


def test_corpus_reader_memory_does_not_grow_with_the_corpus(tmp_path):
    import tracemalloc

    write_vocab(build_vocab(["甲乙丙丁戊己庚辛"]), str(tmp_path / "v.txt"))
    peaks = []
    for documents in (200, 800):
        path = tmp_path / f"c{documents}.txt"
        path.write_text("甲乙丙丁戊己\n庚辛甲乙\n\n" * documents, encoding="utf-8")
        reader = palm.reader.MaskedCorpusReader(str(tmp_path / "v.txt"), 16, shuffle_buffer=64)
        reader.load_data(str(path), batch_size=8)
        tracemalloc.start()
        batches = sum(1 for _ in reader.iter_epoch(0))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert batches == documents // 8
    assert peaks[1] < 1.5 * peaks[0], f"peak memory grew with the corpus: {peaks}"
