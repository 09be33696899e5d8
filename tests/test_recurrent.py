"""Issue 16: the recurrent backbones (BiLSTM, BiGRU) under every head, Trainer and MultiHeadTrainer
(joint batches), with a character CNN, self-attention and ELMo features (frozen or fine-tuned, one
scalar mix per task); checkpoints; export and Paddle-inference parity; ONNX refused; the readers'
arrays (sequence length = sum of input_mask); ``ELMo.from_pretrained(...).embed_sentences``."""
import json
import os
import re

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from paddlepalm.evaluation import prediction_mode
from paddlepalm.export import ExportError
from paddlepalm.model import to_tensors

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ELMO_PACKAGE = os.path.join(REPO, "pretrain_models", "elmo-zh-tiny")
HIDDEN = 32
KINDS = {"BiLSTM": palm.backbone.BiLSTM, "BiGRU": palm.backbone.BiGRU}
TINY_ELMO = {"input_type": "word", "cell_size": 24, "projection_size": 8, "num_layers": 2, "dropout": 0.0}


def vocab_size(path):
    return sum(1 for _ in open(path, encoding="utf-8"))


def rnn_config(d, **extra):
    return {"vocab_size": vocab_size(os.path.join(d, "vocab.txt")), "embedding_size": 16, "hidden_size": HIDDEN,
            "num_layers": 1, "dropout": 0.0, **extra}


def sentences(d, n=40):
    return [line.rstrip("\n").split("\t")[1] for line in open(os.path.join(d, "intent", "test.tsv"),
                                                             encoding="utf-8")][1:n + 1]


def write_match(d, tmp_path):
    texts = sentences(d, 48)
    path = tmp_path / "match.tsv"
    rows = [f"{a}\t{a if i % 2 else b}\t{1 - i % 2}\n" for i, (a, b) in enumerate(zip(texts, texts[1:] + texts[:1]))]
    path.write_text("text_a\ttext_b\tlabel\n" + "".join(rows), encoding="utf-8")
    return str(path)


def write_squad(d, tmp_path):
    paragraphs = []
    for i, sentence in enumerate(sentences(d, 24)):
        words = sentence.split()
        answer = words[len(words) // 2]
        start = len(" ".join(words[:len(words) // 2])) + (1 if len(words) > 1 else 0)
        paragraphs.append({"context": sentence, "qas": [{"id": str(i), "question": "which word is in the middle",
                                                         "answers": [{"text": answer, "answer_start": start}]}]})
    path = tmp_path / "squad.json"
    path.write_text(json.dumps({"data": [{"paragraphs": paragraphs}]}), encoding="utf-8")
    return str(path)


def head_and_reader(head_kind, joint_data, tmp_path, backbone):
    d, vocab = joint_data["dir"], os.path.join(joint_data["dir"], "vocab.txt")
    if head_kind == "classify":
        reader = palm.reader.ClassifyReader(vocab, 48, seed=1)
        reader.load_data(os.path.join(d, "intent", "train.tsv"), batch_size=8)
        return palm.head.Classify(joint_data["intent_classes"], backbone.hidden_size), reader
    if head_kind == "sequence_label":
        reader = palm.reader.SequenceLabelReader(vocab, 48, os.path.join(d, "label_map.json"), seed=1)
        reader.load_data(os.path.join(d, "slot", "train.tsv"), batch_size=8)
        return palm.head.SequenceLabel(joint_data["slot_classes"], backbone.hidden_size, learning_rate=10.0), reader
    if head_kind == "match":
        reader = palm.reader.MatchReader(vocab, 64, seed=1)
        reader.load_data(write_match(d, tmp_path), batch_size=8)
        return palm.head.Match(2, backbone.hidden_size), reader
    if head_kind == "mrc":
        reader = palm.reader.MRCReader(vocab, 32, max_query_len=8, doc_stride=8, seed=1)
        reader.load_data(write_squad(d, tmp_path), batch_size=8, file_format="json")
        return palm.head.MRC(8, backbone.hidden_size, n_best_size=5), reader
    assert head_kind == "mask_lm"
    reader = palm.reader.MaskLMReader(vocab, 48, seed=1)
    reader.load_data(os.path.join(d, "intent", "train.tsv"), batch_size=8)
    return palm.head.MaskLM(backbone.hidden_size, backbone.config["vocab_size"],
                            embedding_size=backbone.embedding_size), reader


def train_on_one_batch(trainer, steps):
    batch = trainer.get_one_batch()
    return [trainer.train_one_step(batch)["loss"] for _ in range(steps)]


# ------------------------------------------------------------------ every head, both cells
@pytest.mark.parametrize("head_kind", ["classify", "sequence_label", "match", "mrc", "mask_lm"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_head_trains_on_a_recurrent_backbone(joint_data, tmp_path, kind, head_kind):
    paddle.seed(0)
    backbone = KINDS[kind].from_config(rnn_config(joint_data["dir"]))
    head, reader = head_and_reader(head_kind, joint_data, tmp_path, backbone)
    trainer = palm.Trainer(head_kind)
    trainer.build_backward(palm.optimizer.Adam(trainer.build_forward(backbone, head), 1e-2))
    trainer.fit_reader(reader)
    losses = train_on_one_batch(trainer, 20)
    assert all(np.isfinite(losses)) and losses[-1] < 0.8 * losses[0], losses


def test_the_bilm_head_is_refused_with_the_reason(joint_data):
    backbone = palm.backbone.BiLSTM.from_config(rnn_config(joint_data["dir"]))
    with pytest.raises(ValueError, match=r"BiLM head needs backbone outputs \['lm_backward', 'lm_forward'\] that "
                                         r"BiLSTM does not give"):
        palm.Trainer("lm").build_forward(backbone, palm.head.BiLM(HIDDEN, 100))
    assert "BiLM" in palm.backbone.RNNEncoder.__doc__ and "ONNX" in palm.backbone.RNNEncoder.__doc__


def test_config_errors_name_the_setting(joint_data):
    d = joint_data["dir"]
    with pytest.raises(ValueError, match="hidden_size is the width of both directions together and must be even"):
        palm.backbone.BiLSTM.from_config(rnn_config(d, hidden_size=31))
    with pytest.raises(ValueError, match="this backbone's cell is 'gru', the config says cell='lstm'"):
        palm.backbone.BiGRU.from_config(rnn_config(d, cell="lstm"))
    with pytest.raises(ValueError, match="attention_heads must be 0"):
        palm.backbone.BiLSTM.from_config(rnn_config(d, attention_heads=5))
    with pytest.raises(KeyError, match="needs 'vocab_size'"):
        palm.backbone.BiLSTM.from_config({"hidden_size": 8})


def test_the_cli_and_layer_depths_know_every_setting(joint_data):
    from paddlepalm.backbone.rnn import RNN_KEYS, rnn_kwargs
    from paddlepalm.cli.config import BACKBONE_KEYS, BACKBONES

    assert {"BiLSTM", "BiGRU"} <= set(BACKBONES)
    assert sorted(rnn_kwargs({"vocab_size": 3})) == sorted(RNN_KEYS)  # every key read is listed
    assert BACKBONE_KEYS["BiLSTM"] == BACKBONE_KEYS["BiGRU"] == [k for k in RNN_KEYS if k != "cell"]
    d = joint_data["dir"]
    backbone = palm.backbone.BiLSTM.from_config(rnn_config(
        d, num_layers=2, char_size=4, char_filters=[[2, 4]], attention_heads=2,
        elmo=dict(TINY_ELMO, vocab_size=vocab_size(os.path.join(d, "vocab.txt")))))
    depths = {name: backbone.layer_depth(name) for name, _ in backbone.named_parameters()}
    assert {n for n, k in depths.items() if k == 2} and all(depths[n] == 2 for n in depths if "_l1" in n)
    assert {depths[n] for n in depths if n.startswith(("elmo.", "char_cnn.", "word_embedding."))} == {0}
    assert {depths[n] for n in depths if n.startswith("attention")} == {3}
    assert sorted(set(depths.values())) == [0, 1, 2, 3]


# ------------------------------------------------------------------ what the backbone computes
def test_padding_changes_nothing_and_the_pooling_is_a_masked_max(joint_data):
    """``sequence_length`` = ``seq_lens``: a sentence's outputs are the same alone and padded in a
    batch (both directions, with self-attention and character CNN on); padded positions are 0 and
    ``sentence_embedding`` is the max over the valid positions."""
    d = joint_data["dir"]
    paddle.seed(3)
    backbone = palm.backbone.BiLSTM.from_config(rnn_config(d, num_layers=2, char_size=8, attention_heads=2,
                                                           char_filters=[[1, 4], [2, 4]]), phase="predict")
    reader = palm.reader.ClassifyReader(os.path.join(d, "vocab.txt"), 48, phase="predict")
    reader.register_with(backbone)
    assert set(reader.outputs_attr) >= {"token_ids", "seq_lens", "char_ids"}
    texts = sentences(d, 6)
    features = reader.features_of(texts)
    batch = reader.collate(features)
    np.testing.assert_array_equal(batch["seq_lens"], [len(f["token_ids"]) for f in features])
    outputs = backbone(to_tensors(batch))
    hidden, pooled = outputs["encoder_outputs"].numpy(), outputs["sentence_embedding"].numpy()
    for row, feature in enumerate(features):
        n = len(feature["token_ids"])
        alone = backbone(to_tensors(reader.collate([feature])))
        np.testing.assert_allclose(alone["encoder_outputs"].numpy()[0], hidden[row, :n], rtol=1e-5, atol=1e-5)
        assert not hidden[row, n:].any()
        np.testing.assert_allclose(pooled[row], hidden[row, :n].max(axis=0), rtol=1e-6)
    assert len({len(f["token_ids"]) for f in features}) > 1  # the batch did pad


def test_word_level_reader_with_whitespace_tokenizer(joint_data, tmp_path):
    """English word-level input: ``tokenizer='whitespace'`` over a word vocabulary (``<S>``, ``</S>``,
    ``<UNK>``) gives one id per word; an unknown word is ``<UNK>``, never split."""
    d = joint_data["dir"]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(sentences(d, 200)), encoding="utf-8")
    vocab = str(tmp_path / "words.txt")
    palm.reader.write_word_vocab(palm.reader.build_vocab_from_corpus(str(corpus)), vocab)
    backbone = palm.backbone.BiGRU.from_config({**rnn_config(d), "vocab_size": vocab_size(vocab)})
    reader = palm.reader.ClassifyReader(vocab, 48, tokenizer="whitespace")
    reader.register_with(backbone)
    text = sentences(d, 1)[0] + " zzunseenword"
    feature = reader.features_of([text])[0]
    tokenizer = reader.tokenizer
    assert tokenizer.convert_ids_to_tokens(feature["token_ids"]) == ["<S>"] + text.split()[:-1] + ["<UNK>", "</S>"]
    assert backbone(to_tensors(reader.collate([feature])))["encoder_outputs"].shape == [1, len(text.split()) + 2,
                                                                                       HIDDEN]


# ------------------------------------------------------------------ MultiHeadTrainer, ELMo
def build_joint(joint_data, config, kind="BiLSTM", seed=0, joint=True):
    d, vocab = joint_data["dir"], os.path.join(joint_data["dir"], "vocab.txt")
    paddle.seed(seed)
    backbone = KINDS[kind].from_config(config)
    slot, intent = palm.Trainer("slot"), palm.Trainer("intent")
    slot.build_forward(backbone, palm.head.SequenceLabel(joint_data["slot_classes"], HIDDEN, learning_rate=10.0))
    intent.build_forward(backbone, palm.head.Classify(joint_data["intent_classes"], HIDDEN))
    trainer = palm.MultiHeadTrainer([slot, intent], seed=2)
    trainer.build_backward(palm.optimizer.Adam(trainer.build_forward(), 1e-2))
    slot_reader = palm.reader.SequenceLabelReader(vocab, 48, os.path.join(d, "label_map.json"), seed=1)
    slot_reader.load_data(os.path.join(d, "slot", "train.tsv"), batch_size=8)
    intent_reader = palm.reader.ClassifyReader(vocab, 48, seed=1)
    intent_reader.load_data(os.path.join(d, "intent", "train.tsv"), batch_size=8)
    trainer.fit_readers_with_mixratio([slot_reader, intent_reader], "slot", 1, joint=joint)
    return trainer


def test_multi_head_joint_batches_train_both_heads(joint_data):
    trainer = build_joint(joint_data, rnn_config(joint_data["dir"], num_layers=2), kind="BiGRU")
    batch = trainer.get_one_batch()
    assert [list(u) for u in batch["__units"]] == [["slot", "intent"]]
    losses = [trainer.train_one_step(batch)[0]["losses"] for _ in range(12)]
    for task in ("slot", "intent"):
        assert losses[-1][task] < 0.7 * losses[0][task], [step[task] for step in losses]


@pytest.mark.parametrize("frozen", [True, False])
def test_elmo_features_frozen_or_fine_tuned_with_one_scalar_mix_per_task(joint_data, frozen):
    d = joint_data["dir"]
    elmo = dict(TINY_ELMO, vocab_size=vocab_size(os.path.join(d, "vocab.txt")))
    trainer = build_joint(joint_data, rnn_config(d, elmo=elmo, elmo_frozen=frozen))
    backbone = trainer.model.backbone
    assert sorted(backbone.elmo.scalar_mix) == ["intent", "slot"]
    before = {k: v.numpy().copy() for k, v in backbone.state_dict().items()}
    batch = trainer.get_one_batch()
    losses = [trainer.train_one_step(batch)[0]["losses"] for _ in range(8)]
    assert losses[-1]["slot"] < losses[0]["slot"] and losses[-1]["intent"] < losses[0]["intent"]
    after = {k: v.numpy() for k, v in backbone.state_dict().items()}
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    biLM = {k for k in before if k.startswith("elmo.") and not k.startswith("elmo.scalar_mix.")}
    assert {"elmo.scalar_mix.slot.weights", "elmo.scalar_mix.intent.weights"} <= changed
    assert (not changed & biLM) if frozen else biLM <= changed
    # each task's encoder reads its own mix: the two tasks' encoder outputs differ on the same batch
    with prediction_mode(trainer.model, "slot"):
        shared = backbone(to_tensors({k: batch["slot"][k] for k in ("token_ids", "seq_lens")}))
        slot_h = backbone.task_outputs("slot", shared)["encoder_outputs"].numpy()
        intent_h = backbone.task_outputs("intent", shared)["encoder_outputs"].numpy()
    assert np.abs(slot_h - intent_h).max() > 1e-6


def test_elmo_package_goes_into_the_backbone(tmp_path):
    """``elmo: <package>`` loads the pretrained biLM (the example's recipe): its weights equal the
    package's, and a word id beyond the package's vocabulary is refused at ``register_with``."""
    config = {"vocab_size": vocab_size(os.path.join(ELMO_PACKAGE, "vocab.txt")), "embedding_size": 8,
              "hidden_size": 16, "elmo": ELMO_PACKAGE}
    backbone = palm.backbone.BiGRU.from_config(config)
    reference = palm.backbone.ELMo.from_pretrained(ELMO_PACKAGE)
    for name, value in reference.state_dict().items():
        np.testing.assert_array_equal(backbone.elmo.state_dict()[name].numpy(), value.numpy())
    assert backbone.elmo.frozen and backbone.input_limits == {"vocab_size": config["vocab_size"]}
    bigger = tmp_path / "vocab.txt"
    bigger.write_text(open(os.path.join(ELMO_PACKAGE, "vocab.txt"), encoding="utf-8").read() + "新词\n",
                      encoding="utf-8")
    large = palm.backbone.BiGRU.from_config(dict(config, vocab_size=config["vocab_size"] + 1))
    with pytest.raises(ValueError, match="backbone's vocab_size is 4947"):
        palm.reader.ClassifyReader(str(bigger), 32, tokenizer="char").register_with(large)


# ------------------------------------------------------------------ checkpoints
def test_checkpoint_round_trip(joint_data, tmp_path):
    d = joint_data["dir"]
    config = rnn_config(d, char_size=8, char_filters=[[2, 8]], attention_heads=2,
                        elmo=dict(TINY_ELMO, vocab_size=vocab_size(os.path.join(d, "vocab.txt"))))
    trainer = build_joint(joint_data, config)
    trainer.set_saver(str(tmp_path), save_steps=3)
    batch = trainer.get_one_batch()
    for _ in range(3):
        trainer.train_one_step(batch)
    other = build_joint(joint_data, config, seed=7)
    other.load_ckpt(str(tmp_path / "ckpt.step3"))
    mine, theirs = trainer.model.state_dict(), other.model.state_dict()
    assert sorted(mine) == sorted(theirs)
    assert not [k for k in mine if not np.array_equal(mine[k].numpy(), theirs[k].numpy())]
    for model in (trainer.model, other.model):
        model.eval()
    tensors = to_tensors({k: v for k, v in batch["intent"].items()})
    np.testing.assert_array_equal(trainer.model("intent", tensors)["loss"].numpy(),
                                  other.model("intent", tensors)["loss"].numpy())


# ------------------------------------------------------------------ export
def tagger_and_classifier(joint_data, kind, config):
    trainer = build_joint(joint_data, config, kind=kind, joint=False)
    for _ in range(4):
        trainer.train_one_step(trainer.get_one_batch())
    return trainer


def dygraph(model, task, reader, inputs):
    reader = reader.clone("predict")
    batch = reader.collate(reader.features_of(inputs))
    with prediction_mode(model, task):
        outputs = {k: v.numpy() for k, v in model(task, to_tensors(batch)).items()}
    return model.head_of(task).batch_results({**batch, **outputs}), outputs


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_export_of_a_tagger_and_a_classifier_matches_the_dygraph_model(joint_data, tmp_path, kind):
    d = joint_data["dir"]
    trainer = tagger_and_classifier(joint_data, kind, rnn_config(d, num_layers=2, attention_heads=2))
    texts = sentences(d, 20)
    expected = {task: dygraph(trainer.model, task, trainer.get_trainer(task).train_reader, texts)
                for task in ("slot", "intent")}
    for task in ("slot", "intent"):
        meta = trainer.export(str(tmp_path / task), tasks=[task])
        assert meta["fixed_length"] is None  # the fused rnn op traces with a dynamic length
        predictor = palm.Predictor(str(tmp_path / task), batch_size=7)
        records = predictor.predict(texts)
        results, outputs = expected[task]
        if task == "slot":
            assert [r[task]["tags"] for r in records] == [e["tags"] for e in results]
            reader = trainer.get_trainer(task).train_reader.clone("predict")
            batch = reader.collate(reader.features_of(texts))
            np.testing.assert_allclose(predictor.run(batch)[task]["logits"], outputs["logits"], rtol=1e-5, atol=1e-5)
        else:
            assert [r[task]["label"] for r in records] == [e["label"] for e in results]
            np.testing.assert_allclose([r[task]["probs"] for r in records], [e["probs"] for e in results],
                                       rtol=1e-5, atol=1e-5)


def test_elmo_features_export_in_a_child_process_and_match(joint_data, tmp_path, monkeypatch):
    """With ELMo features the backbone takes ELMo's export route (a child process; the dynamic-length
    attempt that aborts is tested in test_export.py and skipped here): at the readers' max_len."""
    monkeypatch.setattr(palm.export, "_FIXED_LENGTH_ONLY", {"elmo"})
    d = joint_data["dir"]
    config = rnn_config(d, elmo=dict(TINY_ELMO, vocab_size=vocab_size(os.path.join(d, "vocab.txt"))))
    trainer = tagger_and_classifier(joint_data, "BiGRU", config)
    texts = sentences(d, 12)
    meta = trainer.export(str(tmp_path / "joint"))
    assert [t["name"] for t in meta["tasks"]] == ["slot", "intent"] and meta["fixed_length"] == 48
    records = palm.Predictor(str(tmp_path / "joint"), batch_size=5).predict(texts)
    for task, key in (("slot", "tags"), ("intent", "label")):
        results, _ = dygraph(trainer.model, task, trainer.get_trainer(task).train_reader, texts)
        assert [r[task][key] for r in records] == [e[key] for e in results]


def test_onnx_export_is_refused_with_the_reason_and_writes_nothing(joint_data, tmp_path):
    trainer = tagger_and_classifier(joint_data, "BiLSTM", rnn_config(joint_data["dir"]))
    with pytest.raises(ExportError, match="BiLSTM backbone cannot be exported to ONNX: paddle2onnx converts "
                                          "Paddle's rnn operator without its sequence_length"):
        trainer.export(str(tmp_path / "onnx"), format="onnx")
    assert not os.path.exists(tmp_path / "onnx")


# ------------------------------------------------------------------ ELMo embeddings (docs snippet)
def doc_snippet(name):
    """The ```python block after ``<!-- snippet: name -->`` in docs/backbones.md."""
    text = open(os.path.join(REPO, "docs", "backbones.md"), encoding="utf-8").read()
    found = re.search(rf"<!-- snippet: {name} -->\s*```python\n(.*?)```", text, re.S)
    assert found, f"docs/backbones.md has no snippet {name}"
    return found.group(1)


def test_embed_sentences_snippet_of_the_docs_runs(monkeypatch):
    monkeypatch.chdir(REPO)
    scope = {}
    exec(compile(doc_snippet("embed_sentences"), "docs/backbones.md", "exec"), scope)
    layers, mixed = scope["layers"], scope["mixed"]
    assert [a.shape for a in layers] == [(3, 3, 256), (3, 6, 256)] and all(a.dtype == np.float32 for a in layers)
    assert [a.shape for a in mixed] == [(3, 256), (6, 256)]
    np.testing.assert_allclose(mixed[0], layers[0].mean(axis=0), rtol=1e-5, atol=1e-6)


def test_embed_sentences_batches_tokenizes_and_mixes_per_task():
    elmo = palm.backbone.ELMo.from_pretrained(ELMO_PACKAGE)
    texts = ["今天天气很好", "我爱北京", "北京", "我"]
    batched = elmo.embed_sentences(texts, batch_size=3)
    for text, vectors in zip(texts, batched):
        alone = elmo.embed_sentences([list(text)], batch_size=1)[0]  # raw text = its characters
        np.testing.assert_allclose(vectors, alone, rtol=1e-5, atol=1e-5)
    # the token layer of a sentence is its embedding, twice (no neighbour leaks into it)
    ids = palm.reader.WordTokenizer(elmo.vocab_path).convert_tokens_to_ids(["我"])
    row = elmo.word_embedding.weight.numpy()[ids[0]]
    np.testing.assert_allclose(batched[3][0, 0], np.concatenate([row, row]), rtol=1e-6)
    elmo.add_task("ner")
    elmo.scalar_mix["ner"].weights.set_value(paddle.to_tensor([5.0, 0.0, 0.0]))
    mixed = elmo.embed_sentences(texts[:1], mix=True, task="ner")[0]
    weights = np.exp([5.0, 0, 0]) / np.exp([5.0, 0, 0]).sum()
    np.testing.assert_allclose(mixed, np.tensordot(weights, batched[0], axes=1), rtol=1e-5, atol=1e-5)
    with pytest.raises(KeyError, match="no scalar mix for task 'pos'"):
        elmo.embed_sentences(texts, mix=True, task="pos")
    with pytest.raises(TypeError, match="sentence 1 must be a string or a list of strings"):
        elmo.embed_sentences(["好", [1, 2]])
