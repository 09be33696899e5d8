"""ELMo: character ids, the LSTMP recurrence, per-task scalar mixes, the BiLM head,
the streamed corpus reader and training under Trainer / MultiHeadTrainer."""
import json
import os

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from paddlepalm.pretrained import load_pretrained_backbone
from paddlepalm.reader.elmo_chars import batch_to_char_ids, word_to_char_ids
from paddlepalm.utils.lstmp import BiLSTMP
from paddlepalm.utils.scalar_mix import ScalarMix

TINY = {"cell_size": 24, "projection_size": 16, "dropout": 0.0,
        "char_embedding_dim": 8, "char_filters": [[1, 8], [2, 8], [3, 16]], "num_highway": 1}


# ------------------------------------------------------------------ characters
def test_char_ids_follow_allennlp_elmo_scheme():
    pads = [261] * 47
    assert word_to_char_ids("<S>") == [259, 257, 260] + pads
    assert word_to_char_ids("</S>") == [259, 258, 260] + pads
    assert word_to_char_ids("a") == [259, 98, 260] + [261] * 47
    assert word_to_char_ids("中") == [259, 0xE4 + 1, 0xB8 + 1, 0xAD + 1, 260] + [261] * 45
    long = word_to_char_ids("x" * 60)  # cut to 48 bytes between the word markers
    assert len(long) == 50 and long[0] == 259 and long[1:49] == [ord("x") + 1] * 48 and long[49] == 260
    batch = batch_to_char_ids([["<S>", "a", "</S>"], ["<S>", "</S>"]], 3)
    assert batch.shape == (2, 3, 50) and batch.max() < 262
    assert (batch[1, 2] == 0).all()  # padded word


# ----------------------------------------------------------------------- LSTMP
def _reference_direction(x, cell_mod, cell_clip, proj_clip):
    """One direction over one unpadded sequence, step by step in numpy."""
    w_in, w_rec = cell_mod.input_weight.numpy(), cell_mod.recurrent_weight.numpy()
    b, w_proj = cell_mod.bias.numpy(), cell_mod.projection_weight.numpy()
    h = w_proj.shape[0]
    r, c, out = np.zeros(w_proj.shape[1]), np.zeros(h), []
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    for x_t in x:
        g = x_t @ w_in + r @ w_rec + b
        c = np.clip(sig(g[2 * h:3 * h]) * c + sig(g[h:2 * h]) * np.tanh(g[:h]), -cell_clip, cell_clip)
        r = np.clip((sig(g[3 * h:]) * np.tanh(c)) @ w_proj, -proj_clip, proj_clip)
        out.append(r)
    return np.array(out)


def test_bilstmp_matches_stepwise_reference_with_padding_and_clipping():
    paddle.seed(0)
    lstm = BiLSTMP(6, 5, 4, num_layers=2, cell_clip=0.5, proj_clip=0.3, residual=True)
    for p in lstm.parameters():
        p.set_value(paddle.uniform(p.shape, min=-0.8, max=0.8))
    x = paddle.randn([2, 5, 6])
    lengths = paddle.to_tensor([5, 3])
    outputs = lstm(x, lengths)
    for row, n in enumerate([5, 3]):
        fw_in = bw_in = x.numpy()[row, :n]
        for layer, (fw, bw) in enumerate(outputs):
            fw_ref = _reference_direction(fw_in, lstm.fw[layer], 0.5, 0.3)
            bw_ref = _reference_direction(bw_in[::-1], lstm.bw[layer], 0.5, 0.3)[::-1]
            if layer > 0:
                fw_ref, bw_ref = fw_ref + fw_in, bw_ref + bw_in
            np.testing.assert_allclose(fw.numpy()[row, :n], fw_ref, atol=1e-5)
            np.testing.assert_allclose(bw.numpy()[row, :n], bw_ref, atol=1e-5)
            fw_in, bw_in = fw_ref, bw_ref


# ------------------------------------------------------------------- scalar mix
def test_scalar_mix_is_gamma_times_softmax_weighted_sum():
    mix = ScalarMix(3)
    mix.weights.set_value(paddle.to_tensor([0.5, -1.0, 2.0]))
    mix.gamma.set_value(paddle.to_tensor([1.7]))
    layers = paddle.randn([3, 2, 4, 6])
    w = np.exp([0.5, -1.0, 2.0]) / np.exp([0.5, -1.0, 2.0]).sum()
    expected = 1.7 * np.tensordot(w, layers.numpy(), axes=1)
    np.testing.assert_allclose(mix(layers).numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mix.normalized_weights().numpy().sum(), 1.0, rtol=1e-6)
    normed = ScalarMix(3, layer_norm=True)(layers * 100 + 5, paddle.ones([2, 4]))
    assert float(normed.abs().max()) < 10  # each layer normalized before mixing


# ----------------------------------------------------------------- BiLM head
def test_bilm_targets_are_next_and_previous_tokens():
    head = palm.head.BiLM(vocab_size=7, input_dim=3)
    ids = paddle.to_tensor([[0, 4, 5, 1], [0, 6, 1, 1]])  # second row has length 3
    lengths = paddle.to_tensor([4, 3])
    fw, bw = paddle.randn([2, 4, 3]), paddle.randn([2, 4, 3])
    loss = head({"token_ids": ids, "seq_lens": lengths}, {"lm_forward": fw, "lm_backward": bw})["loss"]
    W, b = head.softmax_weight.numpy(), head.softmax_bias.numpy()

    def nll(h, y):
        logits = h @ W.T + b
        return np.log(np.exp(logits).sum()) - logits[y]
    terms = []
    for row, n in enumerate([4, 3]):
        for t in range(n - 1):
            terms.append(nll(fw.numpy()[row, t], int(ids[row, t + 1])))
            terms.append(nll(bw.numpy()[row, t + 1], int(ids[row, t])))
    np.testing.assert_allclose(float(loss), np.mean(terms), rtol=1e-5)


def test_sampled_softmax_approaches_full_softmax_with_many_samples():
    paddle.seed(1)
    ids = paddle.randint(0, 50, [4, 9])
    inputs = {"token_ids": ids, "seq_lens": paddle.to_tensor([9, 9, 7, 5])}
    outputs = {"lm_forward": paddle.randn([4, 9, 8]), "lm_backward": paddle.randn([4, 9, 8])}
    full = palm.head.BiLM(50, 8)
    sampled = palm.head.BiLM(50, 8, num_samples=49, seed=3)
    sampled.set_state_dict(full.state_dict())
    full_loss = float(full(inputs, outputs)["loss"])
    sampled_losses = [float(sampled(inputs, outputs)["loss"]) for _ in range(5)]
    assert all(0 < s < full_loss + 1e-4 for s in sampled_losses)  # a subset of the partition function
    assert abs(np.mean(sampled_losses) - full_loss) < 0.35 * full_loss
    with pytest.raises(ValueError):
        palm.head.BiLM(50, 8, num_samples=50)


# -------------------------------------------------------------- corpus reader
def _write(path, text, mode="w"):
    with open(path, mode, encoding=None if "b" in mode else "utf-8") as f:
        f.write(text)
    return str(path)


def _corpus(tmp_path, lines):
    corpus = _write(tmp_path / "corpus.txt", "\n".join(lines) + "\n")
    vocab = str(tmp_path / "vocab.txt")
    palm.reader.write_word_vocab(palm.reader.build_vocab_from_corpus(corpus), vocab)
    return corpus, vocab


def test_corpus_reader_streams_and_counts_bad_input(tmp_path):
    lines = ["the cat sat", "", "a dog ran far away"] * 30 + [" ".join(["w"] * 25)]
    corpus, vocab = _corpus(tmp_path, lines)
    tokens = open(vocab, encoding="utf-8").read().split("\n")
    assert tokens[:3] == ["<S>", "</S>", "<UNK>"]
    reader = palm.reader.LMCorpusReader(vocab, max_len=12, seed=1)
    reader.load_data(corpus, batch_size=8, num_epochs=1)
    stats = reader.stats()
    assert stats["lines"] == 61 and stats["split_lines"] == 1  # the 25-word line -> pieces of 10: 3 examples
    assert reader.num_examples == 63 and reader.num_examples == stats["sentences"]
    batches = list(reader.iter_epoch(0))
    assert len(batches) == reader.steps_per_epoch == 63 // 8
    assert all(b["token_ids"].shape[1] <= 12 for b in batches)
    assert (batches[0]["token_ids"][:, 0] == 0).all()  # every sentence starts with <S>
    tail = list(reader.iter_epoch(0, skip_batches=3))
    assert [b["example_ids"].tolist() for b in tail] == [b["example_ids"].tolist() for b in batches[3:]]

    oov_file = _write(tmp_path / "oov.txt", "the zebra sat\n")
    reader.load_data(oov_file, batch_size=1)
    assert reader.stats()["oov_tokens"] == 1 and reader.stats()["tokens"] == 3

    with pytest.raises(palm.reader.DataFormatError, match="empty"):
        reader.load_data(_write(tmp_path / "empty.txt", "\n  \n"), batch_size=2)
    with pytest.raises(palm.reader.DataFormatError, match=r"bad\.txt:2: bytes are not valid UTF-8"):
        reader.load_data(_write(tmp_path / "bad.txt", b"ok line\n\xff\xfe\n", "wb"), batch_size=2)
    with pytest.raises(ValueError, match="lacks special tokens"):
        palm.reader.LMCorpusReader(_write(tmp_path / "v2.txt", "a\nb\n"), 10)


def test_char_tokenizer_splits_chinese_per_character(tmp_path):
    corpus, _ = _corpus(tmp_path, ["我爱北京"])
    vocab = palm.reader.build_vocab_from_corpus(corpus, split="char")
    assert vocab[3:] == ["我", "爱", "北", "京"]
    words = palm.reader.build_vocab_from_corpus(corpus, split="jieba")
    assert "北京" in words and len(words) < 3 + 4  # jieba groups characters into words


# ------------------------------------------------------- training with heads
def _word_vocab(joint_data, tmp_path):
    d = joint_data["dir"]
    texts = [line.split("\t")[1] for line in open(os.path.join(d, "intent", "train.tsv"), encoding="utf-8")][1:]
    vocab = str(tmp_path / "elmo_vocab.txt")
    palm.reader.write_word_vocab(palm.reader.build_vocab_from_corpus(_write(tmp_path / "lm.txt", "".join(texts))),
                                 vocab)
    return vocab, str(tmp_path / "lm.txt")


@pytest.mark.parametrize("input_type", ["word", "char"])
def test_elmo_trains_with_classify_and_sequence_label(joint_data, tmp_path, input_type):
    paddle.seed(0)
    d = joint_data["dir"]
    vocab, _ = _word_vocab(joint_data, tmp_path)
    vocab_size = sum(1 for _ in open(vocab, encoding="utf-8"))
    elmo = palm.backbone.ELMo.from_config(dict(TINY, vocab_size=vocab_size, input_type=input_type))
    cls_reader = palm.reader.ClassifyReader(vocab, 24, tokenizer="whitespace", seed=1)
    cls_reader.load_data(os.path.join(d, "intent", "train.tsv"), batch_size=16, num_epochs=1)
    intent = palm.Trainer("intent")
    model = intent.build_forward(elmo, palm.head.Classify(joint_data["intent_classes"], elmo.hidden_size))
    intent.build_backward(palm.optimizer.Adam(model, 5e-3))
    intent.fit_reader(cls_reader)
    first = intent.get_one_batch()
    assert ("char_ids" in first) == (input_type == "char")
    before = intent.train_one_step(first)["loss"]
    intent.train(print_steps=0)
    mix = elmo.scalar_mix["intent"]
    assert float(mix.weights.abs().sum()) > 0 and abs(mix.gamma.numpy()[0] - 1) > 0  # the task's mix learned

    slot_reader = palm.reader.SequenceLabelReader(vocab, 24, os.path.join(d, "label_map.json"),
                                                  tokenizer="whitespace", seed=1)
    slot_reader.load_data(os.path.join(d, "slot", "train.tsv"), batch_size=16, num_epochs=1)
    slot = palm.Trainer("slot")
    model = slot.build_forward(elmo, palm.head.SequenceLabel(joint_data["slot_classes"], elmo.hidden_size))
    slot.build_backward(palm.optimizer.Adam(model, 5e-3))
    slot.fit_reader(slot_reader)
    slot.train(print_steps=0)
    assert np.isfinite(before)
    assert set(elmo.scalar_mix.keys()) == {"intent", "slot"}


def test_elmo_multihead_with_bilm_aux_task_learns_separate_mixes(joint_data, tmp_path):
    paddle.seed(0)
    d = joint_data["dir"]
    vocab, lm_text = _word_vocab(joint_data, tmp_path)
    vocab_size = sum(1 for _ in open(vocab, encoding="utf-8"))
    elmo = palm.backbone.ELMo.from_config(dict(TINY, vocab_size=vocab_size, input_type="word"))
    slot_reader = palm.reader.SequenceLabelReader(vocab, 24, os.path.join(d, "label_map.json"),
                                                  tokenizer="whitespace", seed=1)
    slot_reader.load_data(os.path.join(d, "slot", "train.tsv"), batch_size=16)
    cls_reader = palm.reader.ClassifyReader(vocab, 24, tokenizer="whitespace", seed=1)
    cls_reader.load_data(os.path.join(d, "intent", "train.tsv"), batch_size=16)
    lm_reader = palm.reader.LMCorpusReader(vocab, 24, seed=1)
    lm_reader.load_data(lm_text, batch_size=16)
    slot, intent, lm = palm.Trainer("slot"), palm.Trainer("intent"), palm.Trainer("lm", mix_ratio=0.5)
    lm.set_as_aux()
    slot.build_forward(elmo, palm.head.SequenceLabel(joint_data["slot_classes"], elmo.hidden_size))
    intent.build_forward(elmo, palm.head.Classify(joint_data["intent_classes"], elmo.hidden_size))
    lm.build_forward(elmo, palm.head.BiLM(vocab_size, 16, num_samples=8))
    trainer = palm.MultiHeadTrainer([slot, intent, lm])
    loss_var = trainer.build_forward()
    trainer.build_backward(palm.optimizer.Adam(loss_var, 5e-3))
    trainer.fit_readers_with_mixratio([slot_reader, cls_reader, lm_reader], "slot", 1)
    trainer.set_saver(str(tmp_path / "out"), save_steps=1000)
    trainer.train(print_steps=0)
    w_slot = elmo.scalar_mix["slot"].normalized_weights().numpy()
    w_intent = elmo.scalar_mix["intent"].normalized_weights().numpy()
    assert not np.allclose(w_slot, 1 / 3) and not np.allclose(w_intent, 1 / 3)
    assert not np.allclose(w_slot, w_intent)
    state = paddle.load(str(tmp_path / "out" / f"ckpt.step{trainer.overall_train_steps}" / "model.pdparams"))
    assert {"backbone.scalar_mix.slot.weights", "backbone.scalar_mix.intent.gamma"} <= set(state)


def test_frozen_elmo_only_learns_its_scalar_mix(tmp_path):
    corpus, vocab = _corpus(tmp_path, ["a b c d", "b c d a", "c d a b"] * 10)
    elmo = palm.backbone.ELMo.from_config(dict(TINY, vocab_size=7, input_type="word", frozen=True))
    elmo.add_task("t")
    before = {k: v.numpy().copy() for k, v in elmo.state_dict().items()}
    batch = {"token_ids": paddle.to_tensor([[0, 3, 4, 5, 1]]), "seq_lens": paddle.to_tensor([5])}
    opt = paddle.optimizer.Adam(1e-1, parameters=[p for p in elmo.parameters() if not p.stop_gradient])
    feats = elmo.features(batch, "t")
    assert feats.shape == [1, 5, 32]
    (feats ** 2).mean().backward()
    opt.step()
    changed = {k for k, v in elmo.state_dict().items() if not np.allclose(v.numpy(), before[k])}
    assert changed == {"scalar_mix.t.weights", "scalar_mix.t.gamma"}


def test_pretrain_example_checkpoint_loads_into_fine_tuning(tmp_path):
    import importlib.util
    import sys

    folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "pretrain", "elmo")
    sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location("elmo_pretrain_run", os.path.join(folder, "run.py"))
    pretrain = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pretrain)

    package = tmp_path / "pkg"
    summary = pretrain.main(["--work_dir", str(tmp_path / "work"), "--save_to", str(package), "--epochs", "0.4",
                             "--cell_size", "32", "--projection_size", "16", "--num_samples", "16",
                             "--print_steps", "5", "--batch_size", "16", "--dygraph"])
    assert summary["final_loss"] < summary["first_loss"]
    config = json.load(open(package / "elmo_config.json", encoding="utf-8"))
    elmo = palm.backbone.ELMo.from_config(config)
    trainer = palm.Trainer("ner")
    trainer.build_forward(elmo, palm.head.SequenceLabel(3, elmo.hidden_size))
    report = trainer.load_pretrain(str(package / "ckpt"))
    assert len([n for n in report.loaded if n.startswith("lstm.")]) == 16
    assert "word_embedding.weight" in report.loaded and report.mismatched == []


def test_compiled_bilstmp_matches_eager_and_trains():
    paddle.seed(2)
    eager = BiLSTMP(4, 6, 3, num_layers=2)
    compiled = BiLSTMP(4, 6, 3, num_layers=2)
    compiled.set_state_dict(eager.state_dict())
    compiled.compile(time_bucket=8)
    x, lengths = paddle.randn([2, 5, 4]), paddle.to_tensor([5, 2])
    for (ef, eb), (cf, cb) in zip(eager(x, lengths), compiled(x, lengths)):
        np.testing.assert_allclose(cf.numpy()[0], ef.numpy()[0], atol=1e-6)
        np.testing.assert_allclose(cb.numpy()[1, :2], eb.numpy()[1, :2], atol=1e-6)
    loss = sum(f.sum() + b.sum() for f, b in compiled(x, lengths))
    loss.backward()
    assert compiled.fw[0].recurrent_weight.grad is not None


def test_shipped_elmo_package_loads():
    package = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pretrain_models",
                           "elmo-zh-tiny")
    config = json.load(open(os.path.join(package, "elmo_config.json"), encoding="utf-8"))
    vocab = palm.reader.WordTokenizer(os.path.join(package, "vocab.txt"), split="char")
    assert len(vocab) == config["vocab_size"]
    elmo = palm.backbone.ELMo.from_config(dict(config, frozen=True))
    report = load_pretrained_backbone(elmo, os.path.join(package, "ckpt"))
    assert not [n for n in report.missing if not n.startswith("scalar_mix.")] and not report.mismatched
    ids = vocab.convert_tokens_to_ids(["<S>"] + vocab.tokenize("北京是中国的首都") + ["</S>"])
    elmo.add_task("probe")
    feats = elmo.features({"token_ids": paddle.to_tensor([ids]), "seq_lens": paddle.to_tensor([len(ids)])}, "probe")
    assert feats.shape == [1, len(ids), elmo.hidden_size] and bool(paddle.isfinite(feats).all())


def test_corpus_reader_folds_full_width_characters_when_asked(tmp_path):
    corpus = _write(tmp_path / "corpus.txt", "１９９８年ＡＢ\n")
    vocab = str(tmp_path / "vocab.txt")
    palm.reader.write_word_vocab(["<S>", "</S>", "<UNK>", "1", "9", "8", "年", "A", "B"], vocab)
    counts = {}
    for fold in (False, True):
        reader = palm.reader.LMCorpusReader(vocab, max_len=12, tokenizer="char", fold_width=fold, phase="predict")
        reader.load_data(corpus, batch_size=1)
        counts[fold] = reader.stats()["oov_tokens"]
        ids = next(reader.iter_epoch(0))["token_ids"][0].tolist()
    assert counts == {False: 6, True: 0}
    assert ids == [0, 3, 4, 4, 5, 6, 7, 8, 1]
