"""What the single-task examples share: arguments, a from-scratch backbone, train-evaluate-predict.

Each example (``classification``, ``matching``, ``tagging``, ``mrc``) defines a
:class:`Task`: how to build its reader and head for a phase, which files are its
train/dev/test splits, and how to score predictions. :func:`run` then

1. trains on ``train`` with evaluation on ``dev`` every ``--eval_steps`` steps
   (best checkpoint kept in ``<work_dir>/ckpt/best``, early stopping with
   ``--patience``),
2. loads the best checkpoint into a prediction model and predicts every test
   split, printing one ``test results: {...}`` JSON line.

Backbones are small ERNIEs trained from scratch: no pretrained weights can be
downloaded here. Pass ``--pretrain DIR`` to start from a checkpoint instead.
"""
import argparse
import json
import os
import time
from typing import Any, Callable, Dict, Iterable, List, Optional

import paddle

import paddlepalm as palm
from paddlepalm.utils.vocab import build_vocab, write_vocab


def base_parser(description: str, **defaults) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=None, help="the real data set's folder (default: a generated sample)")
    p.add_argument("--work_dir", default=None, help="outputs (default: <example>/outputs)")
    p.add_argument("--epochs", type=float, default=defaults.get("epochs", 3))
    p.add_argument("--batch_size", type=int, default=defaults.get("batch_size", 32))
    p.add_argument("--lr", type=float, default=defaults.get("lr", 1e-3))
    p.add_argument("--max_seqlen", type=int, default=defaults.get("max_seqlen", 128))
    p.add_argument("--hidden", type=int, default=defaults.get("hidden", 128))
    p.add_argument("--layers", type=int, default=defaults.get("layers", 2))
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--weight_decay", type=float, default=0.01)
    p.add_argument("--eval_steps", type=int, default=defaults.get("eval_steps", 100))
    p.add_argument("--patience", type=int, default=defaults.get("patience", 5))
    p.add_argument("--max_train", type=int, default=None, help="use only the first N training examples")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--pretrain", default=None)
    p.add_argument("--print_steps", type=int, default=50)
    return p


def backbone_config(args, vocab_size: int) -> Dict[str, Any]:
    return {"hidden_size": args.hidden, "num_hidden_layers": args.layers, "num_attention_heads": args.heads,
            "intermediate_size": 4 * args.hidden, "vocab_size": vocab_size, "max_position_embeddings": 512,
            "type_vocab_size": 2, "hidden_act": "gelu", "hidden_dropout_prob": args.dropout,
            "attention_probs_dropout_prob": args.dropout, "initializer_range": 0.02}


def make_vocab(texts: Iterable[str], path: str, max_size: int = 20000) -> int:
    """Characters (and frequent words) of the training text; returns the vocabulary size."""
    tokens = build_vocab(texts, lowercase=True, max_size=max_size)
    write_vocab(tokens, path)
    return len(tokens)


def write_tsv(path: str, header: List[str], rows: Iterable[Iterable[Any]]) -> int:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    count = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write("\t".join(header) + "\n")
        for row in rows:
            f.write("\t".join(str(c).replace("\t", " ").replace("\n", " ") for c in row) + "\n")
            count += 1
    return count


class Task:
    """Subclasses fill in the task-specific parts."""

    name = "task"
    target_metric = "accuracy"

    def __init__(self, args, data: Dict[str, Any]):
        self.args, self.data = args, data  # data: files (train, dev, tests{name: path}), vocab, sizes

    def reader(self, phase: str) -> palm.reader.Reader:
        raise NotImplementedError

    def head(self, phase: str) -> palm.head.Head:
        raise NotImplementedError

    def score(self, split: str, predictions: List[Dict[str, Any]]) -> Dict[str, float]:
        raise NotImplementedError


def run(args, task: Task, example_dir: str) -> Dict[str, Any]:
    paddle.seed(args.seed)
    work = args.work_dir or os.path.join(example_dir, "outputs")
    config = backbone_config(args, task.data["vocab_size"])
    start = time.time()

    backbone = palm.backbone.ERNIE.from_config(config)
    train_reader = task.reader("train")
    train_reader.register_with(backbone)
    train_reader.load_data(task.data["train"], batch_size=args.batch_size, num_epochs=args.epochs)
    dev_reader = task.reader("eval")
    dev_reader.register_with(backbone)
    dev_reader.load_data(task.data["dev"], batch_size=64)
    trainer = palm.Trainer(task.name)
    loss_var = trainer.build_forward(backbone, task.head("train"))
    n_steps = int(args.epochs * train_reader.steps_per_epoch)
    sched = palm.lr_sched.TriangularSchedualer(int(0.1 * n_steps), n_steps)
    trainer.build_backward(palm.optimizer.Adam(loss_var, args.lr, sched), weight_decay=args.weight_decay)
    trainer.fit_reader(train_reader)
    trainer.fit_reader(dev_reader, phase="eval")
    if args.pretrain:
        trainer.load_pretrain(args.pretrain)
    save_dir = os.path.join(work, "ckpt")
    trainer.set_saver(save_path=save_dir, save_steps=10 ** 9)
    trainer.set_evaluator(target=task.target_metric, eval_steps=args.eval_steps, patience=args.patience)
    print(f"{task.name}: {train_reader.num_examples} training examples, {n_steps} steps at most, "
          f"dev {dev_reader.num_examples}", flush=True)
    trainer.train(print_steps=args.print_steps)
    train_seconds = time.time() - start
    evaluation = trainer.evaluation
    results: Dict[str, Any] = {"task": task.name, "steps": trainer.cur_train_step,
                               "stopped_early": evaluation.stopped_early, "best_step": evaluation.best_step,
                               f"dev_{task.target_metric}": round(100 * evaluation.best_score, 2),
                               "train_seconds": round(train_seconds, 1)}

    pred_backbone = palm.backbone.ERNIE.from_config(config, phase="predict")
    predictor = palm.Trainer(task.name)
    predictor.build_predict_forward(pred_backbone, task.head("predict"))
    predictor.load_ckpt(os.path.join(save_dir, "best"))
    for split, path in task.data["tests"].items():
        reader = task.reader("predict")
        reader.register_with(pred_backbone)
        reader.load_data(path, batch_size=64)
        predictor.fit_reader(reader, phase="predict")
        predictions = predictor.predict(output_dir=os.path.join(work, "predict", split), print_steps=0)
        for key, value in task.score(split, predictions).items():
            results[f"{split}_{key}"] = round(100 * value, 2) if isinstance(value, float) else value
    results["total_seconds"] = round(time.time() - start, 1)
    print("test results: " + json.dumps(results, ensure_ascii=False), flush=True)
    return results


def read_labels(path: str, column: str = "label") -> List[int]:
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        index = header.index(column)
        return [int(line.rstrip("\n").split("\t")[index]) for line in f if line.strip()]
