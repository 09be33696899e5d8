"""Fine-tune a pretrained small backbone (from examples/pretrain/{electra,albert}) on Chinese
sentence classification and report dev accuracy.

    python examples/pretrain/finetune.py --pretrain pretrain_models/electra-zh-tiny      # generated sample
    python examples/pretrain/finetune.py --pretrain pretrain_models/electra-zh-tiny \
        --data_dir $PALM_DATA_ROOT/chnsenticorp --train_examples 4000
    python examples/pretrain/finetune.py --pretrain pretrain_models/electra-zh-tiny --no_load ...  # same model, random init

The backbone kind, its config and the vocabulary come from the --pretrain folder
(config.json, vocab.txt); --no_load trains the same architecture from scratch.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import paddlepalm as palm  # noqa: E402  (before paddle: sets MKL flags)
import paddle  # noqa: E402

BACKBONES = {"electra": palm.backbone.ELECTRA, "albert": palm.backbone.ALBERT, "ernie": palm.backbone.ERNIE,
             "bert": palm.backbone.BERT}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pretrain", required=True, help="folder written by a pretraining example")
    p.add_argument("--no_load", action="store_true", help="train the same architecture from random weights")
    p.add_argument("--data_dir", default=None, help="folder with train.tsv and dev.tsv (label, text_a); "
                                                    "default: a generated sample")
    p.add_argument("--work_dir", default=os.path.join(HERE, "outputs", "finetune"))
    p.add_argument("--train_examples", type=int, default=4000, help="first N of a seeded shuffle of train.tsv")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--max_len", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


def make_sample(directory: str, seed: int = 0) -> str:
    """A generated sentiment set: train.tsv and dev.tsv with ``label<TAB>text_a``."""
    rng = np.random.RandomState(seed)
    things = ["酒店服务", "手机质量", "这本小说", "交通问题", "传统文化", "新的技术"]
    good = ["很好", "非常满意", "值得推荐", "让人喜欢"]
    bad = ["太差了", "非常失望", "不值得买", "让人生气"]
    os.makedirs(directory, exist_ok=True)
    for split, size in (("train", 400), ("dev", 100)):
        with open(os.path.join(directory, f"{split}.tsv"), "w", encoding="utf-8") as f:
            f.write("label\ttext_a\n")
            for _ in range(size):
                label = rng.randint(2)
                words = good if label else bad
                f.write(f"{label}\t{things[rng.randint(len(things))]}{words[rng.randint(len(words))]}。\n")
    return directory


def train_subset(data_dir: str, out_path: str, size: int, seed: int) -> str:
    with open(os.path.join(data_dir, "train.tsv"), encoding="utf-8") as f:
        header, *rows = f.read().splitlines()
    rows = [rows[i] for i in np.random.RandomState(seed).permutation(len(rows))[:size]]
    with open(out_path, "w", encoding="utf-8") as f:
        f.write("\n".join([header] + rows) + "\n")
    return out_path


def dev_labels(path: str):
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        column = header.index("label")
        return [int(line.rstrip("\n").split("\t")[column]) for line in f if line.strip()]


def main(argv=None):
    args = parse_args(argv)
    paddle.seed(args.seed)
    start = time.time()
    os.makedirs(args.work_dir, exist_ok=True)
    data_dir = args.data_dir or make_sample(os.path.join(args.work_dir, "sample"))
    with open(os.path.join(args.pretrain, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    vocab = os.path.join(args.pretrain, "vocab.txt")
    backbone_cls = BACKBONES[config["backbone"]]
    hidden = int(config["hidden_size"])

    reader = palm.reader.ClassifyReader(vocab, args.max_len, lang="cn", seed=args.seed)
    reader.load_data(train_subset(data_dir, os.path.join(args.work_dir, "train_subset.tsv"), args.train_examples,
                                  args.seed), batch_size=args.batch_size, num_epochs=args.epochs)
    backbone = backbone_cls.from_config(config)
    trainer = palm.Trainer("cls")
    loss_var = trainer.build_forward(backbone, palm.head.Classify(2, hidden, 0.1))
    if not args.no_load:
        trainer.load_pretrain(args.pretrain)
    steps = args.epochs * reader.steps_per_epoch
    sched = palm.lr_sched.TriangularSchedualer(int(0.1 * steps), steps)
    trainer.build_backward(palm.optimizer.AdamW(loss_var, args.lr, sched), weight_decay=0.01)
    trainer.fit_reader(reader)
    ckpt_dir = os.path.join(args.work_dir, "ckpt")
    trainer.set_saver(ckpt_dir, save_steps=steps)
    trainer.train(print_steps=50)

    dev_path = os.path.join(data_dir, "dev.tsv")
    dev_reader = palm.reader.ClassifyReader(vocab, args.max_len, lang="cn", phase="predict")
    dev_reader.load_data(dev_path, batch_size=64)
    predictor = palm.Trainer("cls")
    predictor.build_predict_forward(backbone_cls.from_config(config, phase="predict"),
                                    palm.head.Classify(2, hidden, phase="predict"))
    predictor.load_ckpt(os.path.join(ckpt_dir, f"ckpt.step{steps}"))
    predictor.fit_reader(dev_reader, phase="predict")
    predictions = [r["label"] for r in predictor.predict()]
    accuracy = float(np.mean(np.array(predictions) == np.array(dev_labels(dev_path))))
    result = {"pretrain": None if args.no_load else args.pretrain, "backbone": config["backbone"],
              "train_examples": reader.num_examples, "epochs": args.epochs, "dev_examples": len(predictions),
              "dev_accuracy": round(accuracy, 4), "wall_seconds": round(time.time() - start, 1),
              "cpu_seconds": round(time.process_time(), 1)}
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
