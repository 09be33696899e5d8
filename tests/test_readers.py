"""Reader behaviour: tokenization, batching by length, sharding, word-level tags."""
import os

import numpy as np

import paddlepalm as palm


def test_sequence_label_tags_one_per_original_token(joint_data):
    d = joint_data["dir"]
    reader = palm.reader.SequenceLabelReader(os.path.join(d, "vocab.txt"), 64, os.path.join(d, "label_map.json"),
                                             phase="predict")
    reader.load_data(os.path.join(d, "slot", "test.tsv"), batch_size=8)
    with open(os.path.join(d, "slot", "test.tsv"), encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f.readlines()[1:]]
    batch = next(reader.iter_epoch())
    for row, ids in enumerate(batch["example_ids"]):
        words = rows[ids][0].split("\x02")
        assert batch["word_counts"][row] == len(words)
        starts = batch["word_starts"][row, :len(words)]
        assert starts[0] == 1 and np.all(np.diff(starts) >= 1)  # first piece of each word, after [CLS]


def test_length_grouping_cuts_padding(joint_data):
    d = joint_data["dir"]
    reader = palm.reader.ClassifyReader(os.path.join(d, "vocab.txt"), 64, seed=3)
    reader.load_data(os.path.join(d, "intent", "train.tsv"), batch_size=8)
    padded = sum(b["token_ids"].size for b in reader.iter_epoch(0))
    real = sum(int(b["seq_lens"].sum()) for b in reader.iter_epoch(0))
    lengths = np.array([len(f["token_ids"]) for f in reader.features])
    rng = np.random.RandomState(0)
    random_padded = sum(len(chunk) * lengths[chunk].max()
                        for chunk in np.array_split(rng.permutation(len(lengths)), len(lengths) // 8))
    assert padded < random_padded and padded - real < 0.5 * (random_padded - real)


def test_train_drops_last_incomplete_batch_and_predict_keeps_order(joint_data):
    d = joint_data["dir"]
    path = os.path.join(d, "intent", "test.tsv")  # 48 examples
    train = palm.reader.ClassifyReader(os.path.join(d, "vocab.txt"), 64, seed=1)
    train.load_data(path, batch_size=10)
    assert [len(b["label_ids"]) for b in train.iter_epoch(0)] == [10] * 4
    assert train.steps_per_epoch == 4
    predict = palm.reader.ClassifyReader(os.path.join(d, "vocab.txt"), 64, phase="predict")
    predict.load_data(path, batch_size=10)
    ids = np.concatenate([b["example_ids"] for b in predict.iter_epoch(0)])
    assert sorted(ids.tolist()) == list(range(48))


def test_epochs_reshuffle_with_seed(joint_data):
    d = joint_data["dir"]
    reader = palm.reader.ClassifyReader(os.path.join(d, "vocab.txt"), 64, seed=5)
    reader.load_data(os.path.join(d, "intent", "train.tsv"), batch_size=8)
    first = np.concatenate([b["example_ids"] for b in reader.iter_epoch(0)])
    again = np.concatenate([b["example_ids"] for b in reader.iter_epoch(0)])
    second = np.concatenate([b["example_ids"] for b in reader.iter_epoch(1)])
    assert np.array_equal(first, again) and not np.array_equal(first, second)


def test_shards_partition_each_global_batch(joint_data):
    d = joint_data["dir"]
    path = os.path.join(d, "intent", "train.tsv")
    whole = palm.reader.ClassifyReader(os.path.join(d, "vocab.txt"), 64, seed=2)
    whole.load_data(path, batch_size=8)
    shards = []
    for rank in range(2):
        reader = palm.reader.ClassifyReader(os.path.join(d, "vocab.txt"), 64, seed=2)
        reader.load_data(path, batch_size=4)
        reader.shard(rank, 2)
        shards.append([b["example_ids"] for b in reader.iter_epoch(0)])
    assert whole.steps_per_epoch == len(shards[0]) == len(shards[1])
    for full, a, b in zip(whole.iter_epoch(0), shards[0], shards[1]):
        assert sorted(full["example_ids"].tolist()) == sorted(a.tolist() + b.tolist())


def test_register_with_limits_outputs_to_backbone_inputs(joint_data):
    d = joint_data["dir"]
    reader = palm.reader.ClassifyReader(os.path.join(d, "vocab.txt"), 64)
    reader.load_data(os.path.join(d, "intent", "train.tsv"), batch_size=4)
    bert = palm.backbone.BERT.from_config({"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
                                           "vocab_size": 1000})
    reader.register_with(bert)
    batch = next(reader.iter_epoch())
    assert "task_ids" not in batch
    assert {"token_ids", "position_ids", "segment_ids", "input_mask", "label_ids"} <= set(batch)
    assert batch["input_mask"].shape[-1] == 1
