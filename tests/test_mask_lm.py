"""Masking statistics, n-gram and whole-word masking, MaskLMReader + MaskLM under the trainers."""
import collections
import os

import jieba
import numpy as np
import paddle
import pytest

import paddlepalm as palm
from conftest import tiny_config
from paddlepalm.utils.masking import Masker
from paddlepalm.utils.vocab import build_vocab, write_vocab

ZH_SENTENCES = [
    "我们在北京大学学习自然语言处理。", "今天的天气非常好，适合出去散步。", "人工智能技术正在改变我们的生活方式。",
    "中国科学院的研究人员发表了新的论文。", "这家餐厅的服务态度很好，菜也很好吃。", "上海是一个国际化的大都市。",
    "他每天早上都去公园跑步锻炼身体。", "机器学习模型需要大量的训练数据。", "这本小说讲述了一个感人的爱情故事。",
    "明天我们一起去图书馆看书吧。", "经济发展和环境保护应该同时进行。", "手机屏幕太小了，看视频不方便。",
]


def test_masking_statistics_over_10k_tokens():
    special = {0, 1, 2, 3, 4}
    masker = Masker(mask_id=4, vocab_size=500, special_ids=special)
    rng = np.random.RandomState(2024)
    data = np.random.RandomState(7)
    chosen = mask_count = kept = random = total = 0
    for _ in range(250):  # 250 sequences x 40 tokens = 10,000 maskable tokens
        ids = [2] + list(data.randint(5, 500, size=40)) + [3]
        out = masker.mask(ids, rng)
        total += 40
        assert out.positions and all(ids[p] not in special for p in out.positions), "never a special token"
        assert out.labels == [ids[p] for p in out.positions], "labels are the original tokens"
        unchosen = set(range(len(ids))) - set(out.positions)
        assert all(out.token_ids[p] == ids[p] for p in unchosen)
        for p in out.positions:
            chosen += 1
            if out.token_ids[p] == 4:
                mask_count += 1
            elif out.token_ids[p] == ids[p]:
                kept += 1
            else:
                random += 1
                assert out.token_ids[p] not in special
    assert total == 10000
    assert chosen == 250 * 6  # round(0.15 * 40) per sequence
    # 80/10/10 of 1500 draws: binomial std of the 10% shares is 0.8 points
    assert abs(mask_count / chosen - 0.8) < 0.03
    assert abs(kept / chosen - 0.1) < 0.025
    assert abs(random / chosen - 0.1) < 0.025


def test_ngram_masking_masks_consecutive_spans():
    masker = Masker(mask_id=4, vocab_size=100, special_ids={0, 1, 2, 3, 4}, max_ngram=3)
    rng = np.random.RandomState(0)
    span_lengths = collections.Counter()
    masked = total = 0
    for _ in range(200):
        ids = [2] + list(range(5, 45)) + [3]
        positions = masker.choose(masker.token_units(ids), rng)
        masked += len(positions)
        total += 50
        runs, run = [], 1
        for a, b in zip(positions, positions[1:]):
            if b == a + 1:
                run += 1
            else:
                runs.append(run)
                run = 1
        runs.append(run)
        span_lengths.update(runs)
    assert masked == 200 * 6  # exactly round(0.15 * 40) per sequence
    assert span_lengths[2] + span_lengths[3] > 0.2 * sum(span_lengths.values())


@pytest.fixture(scope="module")
def zh_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("zh_mlm")
    vocab = root / "vocab.txt"
    write_vocab(build_vocab(ZH_SENTENCES), str(vocab))
    rng = np.random.RandomState(0)
    with open(root / "train.tsv", "w", encoding="utf-8") as f:
        f.write("text_a\ttext_b\n")
        for _ in range(64):
            a, b = rng.choice(len(ZH_SENTENCES), 2)
            f.write(f"{ZH_SENTENCES[a]}\t{ZH_SENTENCES[b]}\n")
    return {"vocab": str(vocab), "train": str(root / "train.tsv"),
            "vocab_size": sum(1 for _ in open(vocab, encoding="utf-8"))}


def test_whole_word_masking_masks_jieba_words_together(zh_data):
    reader = palm.reader.MaskLMReader(zh_data["vocab"], 64, lang="cn", seed=5, whole_word_mask=True)
    reader.load_data(zh_data["train"], batch_size=8, num_epochs=1)
    vocab = reader.tokenizer.vocab.token_to_idx
    inverse = {i: t for t, i in vocab.items()}
    multi_char_words_masked = 0
    for batch in reader.iter_epoch(0):
        width = batch["token_ids"].shape[1]
        masked = collections.defaultdict(dict)
        for pos, label in zip(batch["mask_pos"], batch["mask_label"]):
            masked[pos // width][pos % width] = label
        for row in range(batch["token_ids"].shape[0]):
            original = list(batch["token_ids"][row])
            for p, label in masked[row].items():
                original[p] = label
            text = "".join(inverse[t] for t in original[:batch["seq_lens"][row]])
            assert "##" not in text, "labels are plain characters, never ##-prefixed"
            # walk the jieba words of each segment and check all-or-nothing masking
            first, second = text[len("[CLS]"):].split("[SEP]")[:2]
            position = 1
            for segment in (first, second):
                for word in jieba.lcut(segment):
                    span = range(position, position + len(word))
                    hits = [p in masked[row] for p in span]
                    assert all(hits) or not any(hits), f"word {word} partly masked"
                    if all(hits) and len(word) > 1:
                        multi_char_words_masked += 1
                        assert [inverse[masked[row][p]] for p in span] == list(word)
                    position += len(word)
                position += 1  # [SEP]
    assert multi_char_words_masked > 10


def test_masks_change_every_epoch_and_repeat_on_resume(zh_data):
    reader = palm.reader.MaskLMReader(zh_data["vocab"], 64, lang="cn", seed=5)
    reader.load_data(zh_data["train"], batch_size=8)
    epoch0 = [b["mask_pos"] for b in reader.iter_epoch(0)]
    again = [b["mask_pos"] for b in reader.iter_epoch(0)]
    resumed = [b["mask_pos"] for b in reader.iter_epoch(0, skip_batches=3)]
    epoch1 = [b["mask_pos"] for b in reader.iter_epoch(1)]
    assert all(np.array_equal(a, b) for a, b in zip(epoch0, again))
    assert all(np.array_equal(a, b) for a, b in zip(epoch0[3:], resumed))
    assert not all(len(a) == len(b) and np.array_equal(a, b) for a, b in zip(epoch0, epoch1))


@pytest.mark.parametrize("kind", ["ernie", "albert"])
def test_mask_lm_trains_and_predicts(kind, zh_data, tmp_path):
    paddle.seed(0)
    config = tiny_config(zh_data["vocab_size"])
    embedding_size = None
    backbone_cls = palm.backbone.ERNIE
    if kind == "albert":
        config["embedding_size"] = embedding_size = 16
        backbone_cls = palm.backbone.ALBERT
    backbone = backbone_cls.from_config(config)
    reader = palm.reader.MaskLMReader(zh_data["vocab"], 64, lang="cn", seed=1)
    reader.load_data(zh_data["train"], batch_size=8, num_epochs=25)
    head = palm.head.MaskLM(32, zh_data["vocab_size"], "gelu", 0.0, embedding_size=embedding_size)
    trainer = palm.Trainer("mlm")
    loss_var = trainer.build_forward(backbone, head)
    trainer.build_backward(palm.optimizer.Adam(loss_var, 5e-3))
    trainer.fit_reader(reader)
    batch = trainer.get_one_batch()
    first = trainer.train_one_step(batch)["loss"]
    for _ in range(15):
        last = trainer.train_one_step(batch)["loss"]
    assert last < first - 0.5
    trainer.set_saver(str(tmp_path), save_steps=1000)
    trainer.train(print_steps=0)

    pred_reader = reader.clone("predict")
    pred_reader.load_data(zh_data["train"], batch_size=16)
    predictor = palm.Trainer("mlm")
    predictor.build_predict_forward(backbone_cls.from_config(config, phase="predict"),
                                    palm.head.MaskLM(32, zh_data["vocab_size"], "gelu", phase="predict",
                                                     embedding_size=embedding_size))
    predictor.load_ckpt(str(tmp_path / f"ckpt.step{25 * reader.steps_per_epoch}"))
    predictor.fit_reader(pred_reader, phase="predict")
    results = predictor.predict(output_dir=str(tmp_path / "pred"))
    assert [r["index"] for r in results] == list(range(64))
    assert all(len(r["labels"]) == len(r["predictions"]) >= 1 for r in results)
    labels = [l for r in results for l in r["labels"]]
    accuracy = np.mean([p == l for r in results for p, l in zip(r["predictions"], r["labels"])])
    majority = collections.Counter(labels).most_common(1)[0][1] / len(labels)
    assert accuracy > 2 * majority, f"accuracy {accuracy} not above twice the majority-token rate {majority}"
    assert os.path.exists(tmp_path / "pred" / "predictions.json")


def test_mask_lm_rejects_a_mismatched_embedding_table(zh_data):
    config = tiny_config(zh_data["vocab_size"])
    config["embedding_size"] = 16
    backbone = palm.backbone.ELECTRA.from_config(config)
    reader = palm.reader.MaskLMReader(zh_data["vocab"], 64, lang="cn", seed=1)
    reader.load_data(zh_data["train"], batch_size=8)
    reader.register_with(backbone)
    batch = {k: paddle.to_tensor(v) for k, v in next(reader.iter_epoch(0)).items()}
    head = palm.head.MaskLM(32, zh_data["vocab_size"], "gelu")  # no projection to 16
    with pytest.raises(ValueError, match="embedding_size"):
        head(batch, backbone(batch))


@pytest.mark.parametrize("tied", [True, False])
def test_untied_mask_lm_leaves_unseen_token_embeddings_alone(zh_data, tied):
    """Tied, the vocabulary softmax moves every row of the shared embedding table (the rows of
    tokens absent from the batch too); untied, the head has its own output weight and the table
    gets gradient only at the batch's input tokens."""
    paddle.seed(3)
    backbone = palm.backbone.ERNIE.from_config(tiny_config(zh_data["vocab_size"]))
    reader = palm.reader.MaskLMReader(zh_data["vocab"], 64, lang="cn", seed=1)
    reader.load_data(zh_data["train"], batch_size=8)
    reader.register_with(backbone)
    head = palm.head.MaskLM(32, zh_data["vocab_size"], "gelu", tie_embeddings=tied)
    assert ("output_weight" in dict(head.named_parameters())) is not tied
    assert ("embedding_table" in head.inputs_attrs["backbone"]) is tied
    batch = next(reader.iter_epoch(0))
    head(batch_tensors := {k: paddle.to_tensor(v) for k, v in batch.items()}, backbone(batch_tensors))["loss"].backward()
    table = backbone.model.embeddings.word_embeddings.weight
    unseen = sorted(set(range(zh_data["vocab_size"])) - set(batch["token_ids"].ravel().tolist()))
    assert unseen
    unseen_grad = float(np.abs(table.grad.numpy()[unseen]).max())
    assert (unseen_grad > 0) is tied
    if not tied:
        assert head.output_weight.grad is not None and float(paddle.abs(head.output_weight.grad).max()) > 0
