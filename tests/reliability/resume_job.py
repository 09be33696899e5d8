"""A seeded training run with dropout 0.1 that resumes from the newest checkpoint in
``--save`` when there is one; run (and killed) by tests/test_reliability.py.

``--die_at_save K:PHASE`` makes the process SIGKILL itself inside a checkpoint write of this
launch, at a chosen point: ``model`` (right after the K-th model.pdparams is written),
``optimizer`` (right after the K-th optimizer.pdopt), ``swap`` (between the two renames that replace an
existing directory: ``best/`` in multi-task mode). ``--die_after_step N --die_delay S`` kills
it S seconds after its N-th step of this launch, wherever it then is (the test draws N and S
at random); counting steps in the process, not reading its output, keeps the moment
independent of how loaded the machine is.
"""
import argparse
import json
import os
import signal

import numpy as np
import paddle

import paddlepalm as palm
from paddlepalm import checkpoint

p = argparse.ArgumentParser()
p.add_argument("--data", required=True)
p.add_argument("--save", required=True)
p.add_argument("--out", required=True)
p.add_argument("--mode", choices=["multi", "single"], required=True)
p.add_argument("--die_at_save", default="")
p.add_argument("--print_steps", type=int, default=0)
p.add_argument("--die_after_step", type=int, default=0,
               help="SIGKILL this process --die_delay seconds after its N-th training step (a random moment)")
p.add_argument("--die_delay", type=float, default=0.0)
args = p.parse_args()


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


if args.die_at_save:
    count, phase = args.die_at_save.split(":")
    count = int(count)
    seen = {"saves": 0}
    real_save, real_rename = paddle.save, os.rename

    target = {"model": checkpoint.MODEL_FILE, "optimizer": checkpoint.OPTIMIZER_FILE}.get(phase)

    def counting_save(obj, path, *a, **k):
        real_save(obj, path, *a, **k)
        if os.path.basename(path) == target:
            seen["saves"] += 1  # the K-th time this launch writes that file (best/ writes no optimizer)
            if seen["saves"] == count:
                die()

    def rename_then_die(src, dst):
        real_rename(src, dst)
        if phase == "swap" and ".old-" in os.path.basename(dst):
            die()  # the old directory is aside, the new one not yet in place

    paddle.save = counting_save
    if phase == "swap":
        checkpoint._exchange = lambda a, b: False  # take the two-rename path
        os.rename = rename_then_die

if args.die_after_step:
    import threading

    steps_here = {"n": 0}
    engine_step = palm.update.train_update

    def step_then_arm(*step_args, **step_kwargs):
        loss = engine_step(*step_args, **step_kwargs)
        steps_here["n"] += 1
        if steps_here["n"] == args.die_after_step:  # the kill lands wherever the run is by then
            threading.Timer(args.die_delay, die).start()
        return loss

    palm.update.train_update = step_then_arm

d = args.data
vocab = os.path.join(d, "vocab.txt")
sizes = json.load(open(os.path.join(d, "sizes.json")))
config = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
          "vocab_size": sum(1 for _ in open(vocab, encoding="utf-8")), "max_position_embeddings": 64,
          "type_vocab_size": 2, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}
paddle.seed(7)
np.random.seed(7)
ernie = palm.backbone.ERNIE.from_config(config)
slot_reader = palm.reader.SequenceLabelReader(vocab, 32, os.path.join(d, "label_map.json"), seed=1)
slot_reader.load_data(os.path.join(d, "slot", "train.tsv"), batch_size=8, num_epochs=3)
slot = palm.Trainer("slot")
slot.build_forward(ernie, palm.head.SequenceLabel(sizes["slot_classes"], 16, 0.1, learning_rate=1.0))
if args.mode == "multi":
    intent_reader = palm.reader.ClassifyReader(vocab, 32, seed=1)
    intent_reader.load_data(os.path.join(d, "intent", "train.tsv"), batch_size=8)
    intent = palm.Trainer("intent", mix_ratio=0.5)
    intent.build_forward(ernie, palm.head.Classify(sizes["intent_classes"], 16, 0.1))
    dev = palm.reader.ClassifyReader(vocab, 32, phase="eval")
    dev.load_data(os.path.join(d, "intent", "test.tsv"), batch_size=16)
    intent.fit_reader(dev, phase="eval")
    trainer = palm.MultiHeadTrainer([slot, intent], seed=3)
    loss_var = trainer.build_forward()
else:
    trainer = slot
    loss_var = slot.model
trainer.build_backward(palm.optimizer.Adam(loss_var, 2e-3, palm.lr_sched.TriangularSchedualer(4, 40)),
                       weight_decay=0.01, use_ema=args.mode == "single")
if args.mode == "multi":
    trainer.fit_readers_with_mixratio([slot_reader, intent_reader], "slot", 3)
    trainer.set_evaluator(eval_steps=7)  # re-writes best/ while training
else:
    trainer.fit_reader(slot_reader)
trainer.set_saver(args.save, save_steps=5)
latest = checkpoint.latest_checkpoint(args.save)
if latest is not None:
    trainer.load_ckpt(latest)
trainer.train(print_steps=args.print_steps)
final = {k: v.numpy() for k, v in trainer.model.state_dict().items()}
np.savez(args.out + ".tmp.npz", **final)
os.replace(args.out + ".tmp.npz", args.out)
print("FINISHED", flush=True)
