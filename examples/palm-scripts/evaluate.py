#  -*- coding: utf-8 -*-
"""Scores the scripts' predictions, reading the files as PALM 2.x's evaluate scripts do
(PALM's examples/tagging/evaluate.py, multi-task/evaluate_slot.py, classification/evaluate.py).

- slot filling: ``predictions.json`` holds one JSON list of tag ids per line, one id per word;
  gold tags come from the test TSV (``\\x02``-joined, empty pieces dropped) through
  ``label_map.json``. Prints entity-level (chunk) precision, recall and F1: a chunk counts when
  its type, start and end all match. (PALM's scripts printed per-token figures under that name.)
- intent: ``predictions.json`` holds one JSON object per line; its ``label`` is compared with
  the test TSV's ``label`` column. Prints accuracy.

Uses nothing but ``json``: it reads the files, not paddlepalm.
"""
import json
import os


def load_label_map(map_dir="./data/atis/atis_slot/label_map.json"):
    return json.load(open(map_dir, "r", encoding="utf-8"))


def read_tsv_column(data_dir, column):
    values = []
    with open(data_dir, "r", encoding="utf-8") as file:
        header = file.readline().rstrip("\n").split("\t")
        for line in file:
            line = line.rstrip("\n")
            if len(line) == 0:
                continue
            values.append(line.split("\t")[header.index(column)])
    return values


def get_chunks(tags):
    """(type, start, end) of each B-/I- chunk; an I- without a B- of its type starts one."""
    chunks, kind, start = set(), None, 0
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, tag_kind = (tag.split("-", 1) + [None])[:2] if tag != "O" else ("O", None)
        if kind is not None and (prefix != "I" or tag_kind != kind):
            chunks.add((kind, start, i))
            kind = None
        if prefix == "B" or (prefix == "I" and kind is None):
            kind, start = tag_kind, i
    return chunks


def cal_chunk(total_res, total_label):
    assert len(total_label) == len(total_res), "prediction result doesn't match to labels"
    num_labels = num_infers = num_corr = 0
    for res, label in zip(total_res, total_label):
        assert len(res) == len(label), "prediction result doesn't match to labels"
        res_chunks, label_chunks = get_chunks(res), get_chunks(label)
        num_corr += len(res_chunks & label_chunks)
        num_infers += len(res_chunks)
        num_labels += len(label_chunks)
    precision = num_corr * 1.0 / num_infers if num_infers > 0 else 0.0
    recall = num_corr * 1.0 / num_labels if num_labels > 0 else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1


def res_evaluate_slot(res_dir="./outputs/multi-task/predict-slot/predictions.json",
                      data_dir="./data/atis/atis_slot/test.tsv"):
    id_to_tag = {v: k for k, v in load_label_map().items()}
    total_label = [[t for t in tags.split("\x02") if t] for tags in read_tsv_column(data_dir, "label")]
    total_res = []
    with open(res_dir, "r", encoding="utf-8") as file:
        for line in file:
            if line.strip():
                total_res.append([id_to_tag[i] for i in json.loads(line)])
    precision, recall, f1 = cal_chunk(total_res, total_label)
    print("data num: {}".format(len(total_label)))
    print("precision: {:.4f}, recall: {:.4f}, f1: {:.4f}".format(precision, recall, f1))


def res_evaluate_intent(res_dir, data_dir="./data/atis/atis_intent/test.tsv"):
    labels = [int(label) for label in read_tsv_column(data_dir, "label")]
    preds = []
    with open(res_dir, "r", encoding="utf-8") as file:
        for line in file:
            if line.strip():
                preds.append(json.loads(line)["label"])
    assert len(labels) == len(preds), "prediction result doesn't match to labels"
    print("data num: {}".format(len(labels)))
    print("accuracy: {:.4f}".format(sum(int(p == l) for p, l in zip(preds, labels)) * 1.0 / len(labels)))


if __name__ == "__main__":
    for name, res_dir, evaluate in (
            ("slot (joint_predict.py)", "./outputs/multi-task/predict-slot/predictions.json", res_evaluate_slot),
            ("intent (joint_predict.py)", "./outputs/multi-task/predict-intent/predictions.json", res_evaluate_intent),
            ("intent (train_with_eval.py)", "./outputs/train_with_eval/predict/predictions.json", res_evaluate_intent),
            ("intent (predict.py, released params)", "./outputs/predict/predictions.json", res_evaluate_intent),
            ("intent (predict.py, checkpoint)", "./outputs/predict-ckpt/predictions.json", res_evaluate_intent)):
        print("== {}: {}".format(name, res_dir))
        if not os.path.exists(res_dir):
            print("not found: run the script first")
            continue
        evaluate(res_dir)
