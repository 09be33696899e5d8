"""A tiny joint slot + intent job run by tests/test_distributed.py, as one process or under
``python -m paddle.distributed.launch --nproc_per_node 2``. The script is the same either way."""
import argparse
import json
import os
import sys

import numpy as np

import paddlepalm as palm
import paddle

p = argparse.ArgumentParser()
p.add_argument("--data", required=True)
p.add_argument("--out", required=True)
p.add_argument("--batch_size", type=int, default=8, help="per device")
p.add_argument("--epochs", type=float, default=1)
p.add_argument("--single_task", action="store_true")
p.add_argument("--joint", action="store_true", help="joint batches: both heads on the same examples")
p.add_argument("--tasks_per_update", default="1")
p.add_argument("--balancer", default=None, help="a palm.balancing class name (default: static weights)")
p.add_argument("--save_steps", type=int, default=0)
p.add_argument("--resume", default=None)
p.add_argument("--predict", default=None, help="checkpoint to predict from")
p.add_argument("--fail_at_step", type=int, default=0, help="rank 1 raises at this step")
p.add_argument("--evaluate", action="store_true", help="evaluate both tasks on the test split every 6 steps")
p.add_argument("--schedule", default="fixed", choices=["fixed", "dynamic_loss", "dynamic_dev"],
               help="dynamic_loss: Dynamic(by='loss', every=3); dynamic_dev: Dynamic by dev gap (with --evaluate); "
                    "writes draws.rank{R}.json (each update's units, the decisions)")
args = p.parse_args()

d = args.data
vocab = os.path.join(d, "vocab.txt")
sizes = json.load(open(os.path.join(d, "sizes.json")))
config = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
          "vocab_size": sum(1 for _ in open(vocab, encoding="utf-8")), "hidden_dropout_prob": 0.0,
          "attention_probs_dropout_prob": 0.0}
rank = int(os.environ.get("PADDLE_TRAINER_ID", "0"))
paddle.seed(1 + rank)  # different inits per rank: the trainer must synchronise them


def readers(phase, split):
    slot = palm.reader.SequenceLabelReader(vocab, 32, os.path.join(d, "label_map.json"), seed=1, phase=phase)
    slot.load_data(os.path.join(d, "slot", f"{split}.tsv"), batch_size=args.batch_size)
    intent = palm.reader.ClassifyReader(vocab, 32, seed=1, phase=phase)
    intent.load_data(os.path.join(d, "intent", f"{split}.tsv"), batch_size=args.batch_size,
                     num_epochs=args.epochs)
    return slot, intent


if args.predict:
    backbone = palm.backbone.ERNIE.from_config(config, phase="predict")
    slot, intent = palm.Trainer("slot"), palm.Trainer("intent")
    slot.build_predict_forward(backbone, palm.head.SequenceLabel(sizes["slot_classes"], 16, phase="predict"))
    intent.build_predict_forward(backbone, palm.head.Classify(sizes["intent_classes"], 16, phase="predict"))
    multi = palm.MultiHeadTrainer([slot, intent])
    multi.build_predict_forward()
    multi.load_ckpt(args.predict)
    multi.merge_inference_readers(list(readers("predict", "test")))
    multi.predict(output_dir=args.out)
    sys.exit(0)

backbone = palm.backbone.ERNIE.from_config(config)
slot_reader, intent_reader = readers("train", "train")
intent = palm.Trainer("intent")
intent.build_forward(backbone, palm.head.Classify(sizes["intent_classes"], 16))
if args.single_task:
    trainer = intent
    trainer.build_backward(palm.optimizer.Adam(intent.model, 3e-3), weight_decay=0.01)
    trainer.fit_reader(intent_reader)
else:
    slot = palm.Trainer("slot")
    slot.build_forward(backbone, palm.head.SequenceLabel(sizes["slot_classes"], 16, learning_rate=1.0))
    schedule = {"fixed": None, "dynamic_loss": palm.sampling.Dynamic(by="loss", every=3, temperature=0.05),
                "dynamic_dev": palm.sampling.Dynamic({"slot": 1.0, "intent": 1.0})}[args.schedule]
    balancer = getattr(palm.balancing, args.balancer)() if args.balancer else None
    trainer = palm.MultiHeadTrainer([slot, intent], seed=5, schedule=schedule, balancer=balancer)
    loss_var = trainer.build_forward()
    trainer.build_backward(palm.optimizer.Adam(loss_var, 3e-3), weight_decay=0.01)
    per_update = args.tasks_per_update if args.tasks_per_update == "all" else int(args.tasks_per_update)
    trainer.fit_readers_with_mixratio([slot_reader, intent_reader], "slot", args.epochs, joint=args.joint or None,
                                      tasks_per_update=per_update)
if args.evaluate:
    slot_dev, intent_dev = readers("eval", "test")
    slot.fit_reader(slot_dev, phase="eval")
    slot.set_evaluator()
    intent.fit_reader(intent_dev, phase="eval")
    intent.set_evaluator()
    trainer.set_evaluator(eval_steps=6, save_best=False)
if args.save_steps:
    trainer.set_saver(os.path.join(args.out, "ckpt"), save_steps=args.save_steps)
if args.resume:
    trainer.load_ckpt(args.resume)
if args.fail_at_step and rank == 1:
    engine_step = palm.update.train_update

    def failing_step(*step_args, _count=[0], **step_kwargs):
        _count[0] += 1
        if _count[0] == args.fail_at_step:
            raise RuntimeError(f"injected failure on rank 1 at step {_count[0]}")
        return engine_step(*step_args, **step_kwargs)

    palm.update.train_update = failing_step
trainer.train(print_steps=4)
model = trainer.model
if args.evaluate:
    with open(os.path.join(args.out, f"eval.rank{rank}.json"), "w") as f:
        json.dump(trainer.evaluation.history, f)
if args.schedule != "fixed":
    plan = trainer.plan
    with open(os.path.join(args.out, f"draws.rank{rank}.json"), "w") as f:
        json.dump({"updates": plan.updates[:len(plan)].tolist(), "decisions": plan.blocks.decisions}, f)
np.savez(os.path.join(args.out, f"params.rank{rank}.npz"), **{k: v.numpy() for k, v in model.state_dict().items()})
