"""A target task plus an auxiliary masked-LM task on the same text (PALM's "auxiliary task" scenario).

    python examples/multi-task-aux/run.py                                   # generated sample, target + aux
    python examples/multi-task-aux/run.py --mode target                     # the target task alone
    python examples/multi-task-aux/run.py --data_dir $PALM_DATA_ROOT/chnsenticorp --max_train 2000

The target is ChnSentiCorp sentiment classification (``reader.ClassifyReader`` +
``head.Classify``). With ``--mode aux`` a second task, masked LM (``reader.MaskLMReader`` +
``head.MaskLM`` with an output layer of its own, ``Trainer.set_as_aux()``), reads
the target's training text (without labels) and shares the backbone in a ``MultiHeadTrainer``;
``--aux_unlabeled`` adds in-domain text that has no labels (the unused rest of ChnSentiCorp's
``train.tsv`` and its unlabeled ``test.tsv``; ``unlabeled.tsv`` in the sample). ``--mode target``
trains the target alone through the same ``MultiHeadTrainer`` code path. ``--mlm_output tied``
ties the masked LM's output layer to the shared token embeddings (BERT's and PALM's choice):
from scratch its softmax then pulls every token embedding onto one direction and the target
does not learn (docs/results.md, "Auxiliary masked LM alongside a target task").

Both modes train the target for the same number of steps (``--epochs`` over its training set):
the auxiliary task is drawn in between with probability ``aux_ratio / (1 + aux_ratio)`` and
never extends the run. Both evaluate on the held-out dev split the same number of times
(every ``--eval_steps`` *target* steps), keep the best checkpoint by dev accuracy and report
test accuracy/macro-F1 from it. ChnSentiCorp's test split has no labels, so the last
``--dev_size`` training examples are the dev split and the official dev split is the test set.
The small ERNIE is trained from scratch (no pretrained weights can be downloaded here).
"""
import json
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import paddle  # noqa: E402

import paddlepalm as palm  # noqa: E402
from paddlepalm import metrics  # noqa: E402

import common  # noqa: E402  (examples/common.py)
from make_sample import make_sample  # noqa: E402  (examples/multi-task-aux/make_sample.py)

TARGET, AUX = "sentiment", "mlm"


def read_rows(path):
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        return [dict(zip(header, line.rstrip("\n").split("\t"))) for line in f if line.strip()]


def split_data(args, work):
    """(train, dev, test, unlabeled) rows of the real data set or of the generated sample."""
    if args.data_dir:
        rows = read_rows(os.path.join(args.data_dir, "train.tsv"))
        pool, dev = rows[:-args.dev_size], rows[-args.dev_size:]
        train = pool[:args.max_train] if args.max_train else pool
        test = read_rows(os.path.join(args.data_dir, "dev.tsv"))
        unlabeled = pool[len(train):] + read_rows(os.path.join(args.data_dir, "test.tsv"))
    else:
        raw = make_sample(os.path.join(work, "sample_data"))
        train, dev, test, unlabeled = (read_rows(os.path.join(raw, f"{s}.tsv"))
                                       for s in ("train", "dev", "test", "unlabeled"))
        train = train[:args.max_train] if args.max_train else train
    return train, dev, test, unlabeled


def prepare(args, work):
    """Writes the target's splits, the masked-LM text and a vocabulary of the training text."""
    train, dev, test, unlabeled = split_data(args, work)
    data_dir = os.path.join(work, "data")
    files = {}
    for split, rows in (("train", train), ("dev", dev), ("test", test)):
        files[split] = os.path.join(data_dir, f"{split}.tsv")
        common.write_tsv(files[split], ["label", "text_a"], ((r["label"], r["text_a"]) for r in rows))
    aux_rows = train + (unlabeled if args.aux_unlabeled else [])
    files["aux"] = os.path.join(data_dir, "aux_text.tsv")
    common.write_tsv(files["aux"], ["text_a"], ((r["text_a"],) for r in aux_rows))
    files["vocab"] = os.path.join(data_dir, "vocab.txt")  # the same in both modes: the labelled text only
    files["vocab_size"] = common.make_vocab((r["text_a"] for r in train), files["vocab"])
    files["aux_examples"] = len(aux_rows)
    return files


def classify_reader(args, vocab, phase):
    return palm.reader.ClassifyReader(vocab, args.max_seqlen, lang="cn", do_lower_case=True, seed=args.seed,
                                      phase=phase)


def build_trainer(args, data, backbone):
    """The target Trainer (and in aux mode the masked-LM Trainer) in one MultiHeadTrainer."""
    target_reader = classify_reader(args, data["vocab"], "train")
    target_reader.load_data(data["train"], batch_size=args.batch_size, num_epochs=args.epochs)
    dev_reader = classify_reader(args, data["vocab"], "eval")
    dev_reader.load_data(data["dev"], batch_size=64)
    target = palm.Trainer(TARGET, mix_ratio=1.0)
    target.build_forward(backbone, palm.head.Classify(2, args.hidden, args.dropout))
    trainers, readers = [target], [target_reader]
    if args.mode == "aux":
        aux_reader = palm.reader.MaskLMReader(data["vocab"], args.max_seqlen, lang="cn", do_lower_case=True,
                                              seed=args.seed, mask_prob=args.mask_prob)
        aux_reader.load_data(data["aux"], batch_size=args.batch_size)
        aux = palm.Trainer(AUX, mix_ratio=args.aux_ratio, loss_weight=args.aux_loss_weight)
        aux.set_as_aux()
        aux.build_forward(backbone, palm.head.MaskLM(args.hidden, data["vocab_size"], "gelu", args.dropout,
                                                        tie_embeddings=args.mlm_output == "tied"))
        trainers.append(aux)
        readers.append(aux_reader)
    for reader in readers + [dev_reader]:
        reader.register_with(backbone)

    trainer = palm.MultiHeadTrainer(trainers, seed=args.seed)
    loss_var = trainer.build_forward()
    trainer.fit_readers_with_mixratio(readers, TARGET, args.epochs)
    total = trainer.overall_train_steps  # target steps plus the auxiliary steps drawn in between
    sched = palm.lr_sched.TriangularSchedualer(max(1, int(0.1 * total)), total)
    trainer.build_backward(palm.optimizer.Adam(loss_var, args.lr, sched), weight_decay=args.weight_decay)
    target.fit_reader(dev_reader, phase="eval")
    target.set_evaluator(metrics=["accuracy", "macro_f1"], target="accuracy")
    return trainer, target, int(args.epochs * target_reader.steps_per_epoch)


def parse_args(argv=None):
    parser = common.base_parser(__doc__, epochs=3, max_seqlen=128, eval_steps=50, patience=None)
    parser.add_argument("--mode", choices=["aux", "target"], default="aux",
                        help="'aux': target + auxiliary masked LM; 'target': the target task alone")
    parser.add_argument("--aux_ratio", type=float, default=1.0, help="mix ratio of the masked-LM task")
    parser.add_argument("--mask_prob", type=float, default=0.15)
    parser.add_argument("--aux_unlabeled", action="store_true",
                        help="masked LM also on in-domain text without labels")
    parser.add_argument("--dev_size", type=int, default=800, help="training examples held out for evaluation")
    parser.add_argument("--aux_loss_weight", type=float, default=1.0, help="loss weight of the masked-LM task")
    parser.add_argument("--mlm_output", choices=["untied", "tied"], default="untied",
                        help="the masked LM's output layer: its own weight (default), or the shared token "
                             "embeddings (PALM's; stalls the target here: docs/results.md)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    work = args.work_dir or os.path.join(HERE, "outputs")
    data = prepare(args, work)
    paddle.seed(args.seed)
    start, cpu_start = time.time(), time.process_time()
    config = common.backbone_config(args, data["vocab_size"])

    backbone = palm.backbone.ERNIE.from_config(config)
    trainer, target, target_steps = build_trainer(args, data, backbone)
    total = trainer.overall_train_steps
    save_dir = os.path.join(work, "ckpt")
    trainer.set_saver(save_path=save_dir, save_steps=10 ** 9)
    # the same number of evaluations in both modes: every eval_steps target steps, in global steps
    eval_every = max(1, round(args.eval_steps * total / target_steps))
    trainer.set_evaluator(eval_steps=eval_every, patience=args.patience)
    print(f"mode {args.mode}: {target.num_examples} target training examples, {target_steps} target steps, "
          f"{total} steps in all, masked-LM text {data['aux_examples'] if args.mode == 'aux' else 0} examples, "
          f"evaluation every {eval_every} steps", flush=True)
    trainer.train(print_steps=args.print_steps)
    evaluation = trainer.evaluation
    results = {"mode": args.mode, "aux_unlabeled": args.mode == "aux" and args.aux_unlabeled,
               "aux_examples": data["aux_examples"] if args.mode == "aux" else 0,
               "aux_ratio": args.aux_ratio if args.mode == "aux" else 0, "lr": args.lr,
               "aux_loss_weight": args.aux_loss_weight if args.mode == "aux" else 0,
               "mlm_output": args.mlm_output if args.mode == "aux" else None,
               "seed": args.seed, "target_steps": target.cur_train_step,
               "aux_steps": trainer.trainers[-1].cur_train_step if args.mode == "aux" else 0, "best_step": evaluation.best_step,
               "dev_accuracy": round(100 * evaluation.best_score, 2),
               "dev_accuracy_last": round(100 * evaluation.history[-1]["tasks"][TARGET]["accuracy"], 2),
               "train_seconds": round(time.time() - start, 1)}

    pred_backbone = palm.backbone.ERNIE.from_config(config, phase="predict")
    predictor = palm.Trainer(TARGET)
    predictor.build_predict_forward(pred_backbone, palm.head.Classify(2, args.hidden, phase="predict"))
    predictor.load_ckpt(os.path.join(save_dir, "best"))  # holds the masked-LM head too; only ours is read
    reader = classify_reader(args, data["vocab"], "predict")
    reader.register_with(pred_backbone)
    reader.load_data(data["test"], batch_size=64)
    predictor.fit_reader(reader, phase="predict")
    predictions = predictor.predict(output_dir=os.path.join(work, "predict"), print_steps=0)
    labels, gold = [p["label"] for p in predictions], common.read_labels(data["test"])
    results["test_accuracy"] = round(100 * metrics.accuracy(labels, gold), 2)
    results["test_macro_f1"] = round(100 * metrics.macro_f1(labels, gold), 2)
    results["total_seconds"] = round(time.time() - start, 1)
    results["cpu_seconds"] = round(time.process_time() - cpu_start, 1)
    results["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print("test results: " + json.dumps(results), flush=True)
    return results


if __name__ == "__main__":
    main()
