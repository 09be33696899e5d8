"""Joint slot filling + intent detection with paddlepalm (PALM's multi-task example).

    python examples/multi-task/run.py                                  # bundled generated sample
    python examples/multi-task/run.py --data_dir ../shared/data/atis   # ATIS (or snips)
    python examples/multi-task/run.py --mode slot                      # one task alone
    python examples/multi-task/run.py --mode alternating               # PALM's one task per step
                                                                       # (default: joint batches)

The backbone is a small ERNIE trained from scratch (no pretrained weights are
downloadable here); pass --pretrain DIR to start from a checkpoint instead.
Prints intent accuracy and slot entity-level F1 on the test split (each task's predictions in
``outputs/predict_<mode>/<task>/predictions.jsonl``: one JSON object per line, with tag and class
names), then exports the joint model (``outputs/export_<mode>``) and predicts a few raw test
sentences with ``palm.Predictor``.
"""
import argparse
import json
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import paddlepalm as palm  # noqa: E402
import paddle  # noqa: E402
from paddlepalm import metrics  # noqa: E402
from paddlepalm.utils.fileio import write_json_lines  # noqa: E402

import prepare_data  # noqa: E402
from make_sample import make_sample  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=None, help="folder with train/valid/test seq.in, seq.out, label "
                                                     "(default: a generated sample)")
    p.add_argument("--work_dir", default=os.path.join(HERE, "outputs"))
    p.add_argument("--mode", choices=["jointbatch", "alternating", "joint", "slot", "intent"], default="jointbatch",
                   help="jointbatch: slot and intent losses on the same batch, one backbone pass per batch; "
                        "alternating (alias joint): PALM's one task per step, drawn 1:1")
    p.add_argument("--epochs", type=float, default=15)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--max_seqlen", type=int, default=64)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--crf_lr", type=float, default=1.0, help="learning-rate multiplier of the CRF transitions")
    p.add_argument("--weight_decay", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--pretrain", default=None)
    p.add_argument("--print_steps", type=int, default=50)
    return p.parse_args(argv)


def backbone_config(args, vocab_size: int) -> dict:
    return {"hidden_size": args.hidden, "num_hidden_layers": args.layers, "num_attention_heads": args.heads,
            "intermediate_size": 4 * args.hidden, "vocab_size": vocab_size, "max_position_embeddings": 512,
            "type_vocab_size": 2, "hidden_act": "gelu", "hidden_dropout_prob": args.dropout,
            "attention_probs_dropout_prob": args.dropout, "initializer_range": 0.02}


def main(argv=None):
    args = parse_args(argv)
    paddle.seed(args.seed)
    raw = args.data_dir or make_sample(os.path.join(args.work_dir, "sample_raw"))
    data = os.path.join(args.work_dir, "data")
    sizes = prepare_data.convert(raw, data)
    print(f"data: {raw} -> {data}: {json.dumps(sizes)}", flush=True)
    vocab = os.path.join(data, "vocab.txt")
    with open(vocab, encoding="utf-8") as f:
        vocab_size = sum(1 for _ in f)
    config = backbone_config(args, vocab_size)
    if args.mode == "joint":
        args.mode = "alternating"
    tasks = ["slot", "intent"] if args.mode in ("jointbatch", "alternating") else [args.mode]
    start = time.time()

    # ---- training: a reader, a head and a Trainer per task, one shared backbone
    ernie = palm.backbone.ERNIE.from_config(config)
    readers, trainers = {}, {}
    if "slot" in tasks:
        readers["slot"] = palm.reader.SequenceLabelReader(vocab, args.max_seqlen, os.path.join(data, "label_map.json"),
                                                          do_lower_case=True, seed=args.seed)
        readers["slot"].load_data(os.path.join(data, "slot", "train.tsv"), batch_size=args.batch_size)
        head = palm.head.SequenceLabel(sizes["slot_classes"], args.hidden, args.dropout, learning_rate=args.crf_lr)
        trainers["slot"] = palm.Trainer("slot", mix_ratio=1.0)
        trainers["slot"].build_forward(ernie, head)
    if "intent" in tasks:
        readers["intent"] = palm.reader.ClassifyReader(vocab, args.max_seqlen, do_lower_case=True, seed=args.seed)
        readers["intent"].load_data(os.path.join(data, "intent", "train.tsv"), batch_size=args.batch_size)
        head = palm.head.Classify(sizes["intent_classes"], args.hidden, args.dropout)
        trainers["intent"] = palm.Trainer("intent", mix_ratio=1.0)
        trainers["intent"].build_forward(ernie, head)
    for reader in readers.values():
        reader.register_with(ernie)

    trainer = palm.MultiHeadTrainer([trainers[t] for t in tasks], seed=args.seed)
    loss_var = trainer.build_forward()
    steps_per_epoch = readers[tasks[0]].num_examples // args.batch_size
    n_steps = int(steps_per_epoch * (2 if args.mode == "alternating" else 1) * args.epochs)
    sched = palm.lr_sched.TriangularSchedualer(int(0.1 * n_steps), n_steps)
    adam = palm.optimizer.Adam(loss_var, args.lr, sched)
    trainer.build_backward(optimizer=adam, weight_decay=args.weight_decay)
    trainer.fit_readers_with_mixratio([readers[t] for t in tasks], tasks[0], args.epochs,
                                      joint=args.mode == "jointbatch" or None)
    if args.pretrain:
        trainer.load_pretrain(args.pretrain)
    save_dir = os.path.join(args.work_dir, f"ckpt_{args.mode}")
    trainer.set_saver(save_path=save_dir, save_steps=10 ** 9)
    trainer.train(print_steps=args.print_steps)
    train_time = time.time() - start
    ckpt = os.path.join(save_dir, f"ckpt.step{trainer.overall_train_steps}")

    # ---- prediction on the test split, one single-task Trainer per task
    with open(os.path.join(data, "intent_map.json"), encoding="utf-8") as f:
        intent_names = [name for name, _ in sorted(json.load(f).items(), key=lambda item: item[1])]
    gold = prepare_data.gold(data, "test")
    results = {"mode": args.mode, "train_seconds": round(train_time, 1), "steps": trainer.overall_train_steps}
    pred_ernie = palm.backbone.ERNIE.from_config(config, phase="predict")
    predicted = {}
    for task in tasks:
        predictor = palm.Trainer(task)
        if task == "slot":
            reader = palm.reader.SequenceLabelReader(vocab, args.max_seqlen, os.path.join(data, "label_map.json"),
                                                     do_lower_case=True, phase="predict")
            head = palm.head.SequenceLabel(sizes["slot_classes"], args.hidden, phase="predict")
        else:
            reader = palm.reader.ClassifyReader(vocab, args.max_seqlen, do_lower_case=True, phase="predict")
            head = palm.head.Classify(sizes["intent_classes"], args.hidden, phase="predict")
        reader.load_data(os.path.join(data, task, "test.tsv"), batch_size=64)
        reader.register_with(pred_ernie)
        predictor.build_predict_forward(pred_ernie, head)
        predictor.load_ckpt(ckpt)
        predictor.fit_reader(reader, phase="predict")
        if task == "intent":
            head.set_label_names(intent_names)  # records get a label_name (the slot tags come from the label map)
        predictions = predictor.predict()
        write_json_lines(os.path.join(args.work_dir, f"predict_{args.mode}", task, "predictions.jsonl"), predictions)
        predicted[task] = predictions
        if task == "slot":
            scores = metrics.chunk_f1([p["tags"] for p in predictions], gold["tags"])
            results["slot_f1"] = round(100 * scores["f1"], 2)
            results["slot_precision"] = round(100 * scores["precision"], 2)
            results["slot_recall"] = round(100 * scores["recall"], 2)
        else:
            results["intent_accuracy"] = round(100 * metrics.accuracy([p["label"] for p in predictions],
                                                                      gold["intents"]), 2)
    if len(predicted) == 2:  # sentence accuracy: the intent and every slot tag right
        right = [p["label"] == i and p_tags["tags"] == tags for p, p_tags, i, tags
                 in zip(predicted["intent"], predicted["slot"], gold["intents"], gold["tags"])]
        results["sentence_accuracy"] = round(100 * sum(right) / len(right), 2)

    # ---- deployment: one inference model of all tasks (one backbone pass), then raw text in
    export_dir = os.path.join(args.work_dir, f"export_{args.mode}")
    trainer.export(export_dir, label_names={"intent": intent_names})
    with open(os.path.join(raw, "test", "seq.in"), encoding="utf-8") as f:
        sentences = [line.strip() for _, line in zip(range(3), f)]
    for sentence, record in zip(sentences, palm.Predictor(export_dir).predict(sentences)):
        shown = {"intent": record["intent"]["label_name"]} if "intent" in record else {}
        if "slot" in record:
            shown["slots"] = [(s["type"], s["text"]) for s in record["slot"]["spans"]]
        print(f"predictor: {sentence!r} -> {json.dumps(shown)}", flush=True)
    results["exported"] = export_dir
    results["total_seconds"] = round(time.time() - start, 1)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    results["cpu_minutes"] = round((usage.ru_utime + usage.ru_stime) / 60, 1)
    print("test results: " + json.dumps(results), flush=True)
    return results


if __name__ == "__main__":
    main()
