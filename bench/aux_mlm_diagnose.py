"""Why does the auxiliary masked LM stall the target in examples/multi-task-aux? (docs/results.md)

    MKL_NUM_THREADS=1 python bench/aux_mlm_diagnose.py --data_dir $PALM_DATA_ROOT/chnsenticorp \\
        --max_train 2000 --epochs 4 --steps 100 --probe_every 25 \\
        --variants "--mode target;--mode aux --mlm_output tied;--mode aux --mlm_output untied"
    python bench/aux_mlm_diagnose.py --plot bench/results/aux_mlm_diagnose.json --runs 'RUN_DIR/*.log' \\
        --png docs/results-aux-mlm.png

(docs/results.md, "Auxiliary masked LM alongside a target task", has the commands of its figures.)

The same setup as ``examples/multi-task-aux/run.py`` (its own functions build it), then:

1. *bug checks*: the masked-LM batches' token ids within the vocabulary, ``[MASK]`` an id of
   it, segment/position ids and the input mask as the target's, the loss at step 0 near
   ``ln V``, the target head untouched by a masked-LM update, the learning rate at each
   target step in both modes;
2. *gradient scales*: every ``--probe_every`` global steps of the first ``--steps``, each task's
   gradient (on fixed probe batches, dropout off) on the word-embedding table, the other
   embeddings, the encoder, the pooler and its head: global norms, the cosine of the two tasks'
   backbone gradients, and the size of a target update in Adam's units, ``rms(g_target /
   sqrt(v_hat))`` (1 when the second moment holds only target gradients of the same size), for
   each setting of ``--variants`` (run.py arguments); and the mean cosine of two rows of the
   word-embedding table (how far the token embeddings have collapsed onto one direction).

``--plot`` draws a report's probes and the dev and test accuracy of run.py logs (docs/results-aux-mlm.png).

``--smoke`` (seconds): both modes on run.py's generated sample (64 training sentences, hidden 16, 1 layer),
2 steps probed at each, the report and its plot written into a temporary folder.
"""
import argparse
import glob
import json
import math
import os
import re
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples", "multi-task-aux"))

import paddle  # noqa: E402

import run as example  # noqa: E402  (examples/multi-task-aux/run.py)
import common  # noqa: E402
import summarize  # noqa: E402  (examples/multi-task-aux/summarize.py)
import paddlepalm as palm  # noqa: E402
from paddlepalm.utils.fileio import read_json, write_json  # noqa: E402
from paddlepalm.model import to_tensors  # noqa: E402

GROUPS = ("word_emb", "other_emb", "encoder", "pooler", "head")


def group_of(name):
    if name.startswith("heads."):
        return "head"
    if "word_embeddings" in name:
        return "word_emb"
    if ".embeddings." in name:
        return "other_emb"
    return "pooler" if "pooler" in name else "encoder"


def build(argv):
    args = example.parse_args(argv)
    work = args.work_dir or os.path.join(tempfile.gettempdir(), "aux_mlm_diagnose")
    data = example.prepare(args, work)
    paddle.seed(args.seed)
    backbone = palm.backbone.ERNIE.from_config(common.backbone_config(args, data["vocab_size"]))
    trainer, target, _ = example.build_trainer(args, data, backbone)
    return args, data, trainer


def bug_checks(args, data, trainer):
    """What the masked-LM reader and head feed the shared model, next to the target's."""
    tgt, aux = trainer.trainers[0].train_reader, trainer.trainers[1].train_reader
    vocab = tgt.tokenizer.vocab.token_to_idx
    tb, ab = next(iter(tgt.iter_epoch(0))), next(iter(aux.iter_epoch(0)))
    pad = ab["token_ids"] == vocab["[PAD]"]
    checks = {
        "vocab_size": data["vocab_size"], "mask_id": vocab["[MASK]"], "max_token_id_mlm": int(ab["token_ids"].max()),
        "same_keys_for_backbone": sorted(k for k in tb if k in ("token_ids", "segment_ids", "position_ids",
                                                                 "input_mask")) ==
                                  sorted(k for k in ab if k in ("token_ids", "segment_ids", "position_ids",
                                                                "input_mask")),
        "segment_ids_all_zero": bool((ab["segment_ids"] == 0).all() and (tb["segment_ids"] == 0).all()),
        "input_mask_is_non_pad": bool((ab["input_mask"].reshape(pad.shape) == (~pad)).all()),
        "position_ids_are_arange": bool((ab["position_ids"] == np.arange(ab["position_ids"].shape[1])).all()),
        "masked_share": round(len(ab["mask_pos"]) / int((~pad).sum() - 2 * len(pad)), 3),
        "mask_pos_in_batch": bool(ab["mask_pos"].max() < ab["token_ids"].size),
    }
    model = trainer.model
    model.eval()
    checks["mlm_loss_at_init"] = round(float(model("mlm", to_tensors(ab))["loss"]), 3)
    checks["ln_vocab"] = round(math.log(data["vocab_size"]), 3)
    model.train()
    plan = trainer.plan
    target_steps = [s for s in range(1, len(plan) + 1) if plan.units_at(s) == [(0,)]]
    sched = palm.lr_sched.TriangularSchedualer(max(1, int(0.1 * len(plan))), len(plan))
    alone = palm.lr_sched.TriangularSchedualer(max(1, int(0.1 * len(target_steps))), len(target_steps))
    gap = max(abs(sched.multiplier(s - 1) - alone.multiplier(k)) for k, s in enumerate(target_steps))
    checks["lr_at_target_steps_max_gap_vs_target_alone"] = round(gap, 3)  # in units of the base rate
    return checks


def adam_v_hat(optimizer, param):
    acc = optimizer._accumulators
    v = acc["moment2"].get(param.name)
    b2 = acc["beta2_pow_acc"].get(param.name)
    if v is None or b2 is None:
        return None
    power = float(b2.numpy().reshape(-1)[0])
    return v.numpy() / max(1e-12, 1.0 - power)


def probe(trainer, batches):
    """Each task's gradient per parameter group (dropout off), the backbone cosine, and the size
    of a target update in the units of Adam's current second moment."""
    model, opt = trainer.model, trainer.optimizer
    named = [(n, p) for n, p in model.named_parameters() if not p.stop_gradient]
    grads = {}
    model.eval()
    for task, batch in batches.items():
        model(task, to_tensors(batch))["loss"].backward()
        grads[task] = {n: p.grad.numpy().copy() for n, p in named if p.grad is not None}
        opt.clear_grad(set_to_zero=False)
    model.train()
    out = {}
    for task, g in grads.items():
        weight = next(t.loss_weight for t in trainer.trainers if t.name == task)
        out[task] = {grp: round(weight * math.sqrt(sum(float((v ** 2).sum()) for n, v in g.items()
                                                       if group_of(n) == grp)), 5) for grp in GROUPS}
    if len(grads) == 2:
        back = [n for n, _ in named if group_of(n) != "head" and n in grads["sentiment"] and n in grads["mlm"]]
        a = np.concatenate([grads["sentiment"][n].ravel() for n in back])
        b = np.concatenate([grads["mlm"][n].ravel() for n in back])
        out["cosine_backbone"] = round(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30)), 4)
    units = {}
    for grp in GROUPS:
        num = den = 0.0
        for n, p in named:
            if group_of(n) != grp or n not in grads["sentiment"]:
                continue
            v = adam_v_hat(opt, p)
            if v is None or not np.any(v):
                continue
            num += float(((grads["sentiment"][n] / (np.sqrt(v) + 1e-6)) ** 2).sum())
            den += v.size
        units[grp] = round(math.sqrt(num / den), 4) if den else None
    out["target_step_in_adam_units"] = units
    out["embedding_mean_cosine"] = round(mean_cosine(model.backbone.model.embeddings.word_embeddings.weight), 4)
    return out


def mean_cosine(table):
    """Mean cosine similarity of two distinct rows of ``table``: 0 for isotropic embeddings, near 1
    when every token's embedding points the same way (representation degeneration)."""
    rows = table.numpy()
    unit = rows / (np.linalg.norm(rows, axis=1, keepdims=True) + 1e-12)
    total = unit.sum(axis=0)
    n = len(unit)
    return float((total @ total - n) / (n * (n - 1)))


def diagnose(argv, steps, probe_every):
    args, data, trainer = build(argv)
    report = {"argv": argv}
    if args.mode == "aux":
        report["checks"] = bug_checks(args, data, trainer)
        print("checks:", json.dumps(report["checks"]), flush=True)
    readers = {t.name: t.train_reader for t in trainer.trainers}
    fixed = {task: next(iter(r.iter_epoch(0))) for task, r in readers.items()}
    head_param = trainer.model.heads["sentiment"].classifier.weight
    report["probes"], report["losses"] = [], []
    head_moved_on_mlm_step = False
    for step in range(1, steps + 1):
        if step % probe_every == 1 or probe_every == 1:
            record = {"step": step, "target_steps_done": trainer.trainers[0].cur_train_step,
                      **probe(trainer, {k: fixed[k] for k in fixed if k == "sentiment" or args.mode == "aux"})}
            report["probes"].append(record)
            print(json.dumps(record), flush=True)
        before = head_param.numpy().copy()
        loss, task_id = trainer.train_one_step(trainer.get_one_batch())
        if task_id == 1 and not np.array_equal(before, head_param.numpy()):
            head_moved_on_mlm_step = True
        report["losses"].append([step, int(task_id), round(loss["loss"], 4)])
    if args.mode == "aux":
        report["checks"]["target_head_moved_on_an_mlm_step"] = head_moved_on_mlm_step
    return report


def run_logs(patterns):
    """{setting: [(test accuracy, [(fraction of the run, dev accuracy), ...]), ...]} of run.py logs."""
    runs = {}
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)):
            lines = open(path, encoding="utf-8").read().splitlines()
            done = [l for l in lines if l.startswith("test results: ")]
            if not done:
                continue
            r = json.loads(done[-1][len("test results: "):])
            total = int(re.search(r"(\d+) steps in all", "\n".join(lines)).group(1))
            dev = [(int(m.group(1)) / total, 100 * float(m.group(2))) for m in
                   (re.match(r"global step: (\d+), eval sentiment.accuracy: ([\d.]+)", l) for l in lines) if m]
            key = re.sub(r", lr [0-9.e-]+$", "", summarize.setting(r))
            runs.setdefault(key, []).append((r["test_accuracy"], dev))
    return runs


def plot(report_path, run_globs, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reports = read_json(report_path)
    fig, axes = plt.subplots(2, 3, figsize=(16, 8.5))
    (ratio_ax, grad_ax, cos_ax), (adam_ax, dev_ax, test_ax) = axes
    for name, rep in reports["settings"].items():
        probes = rep["probes"]
        steps, target_steps = [p["step"] for p in probes], [p["target_steps_done"] for p in probes]
        if "mlm" in probes[0]:
            for grp, style in (("word_emb", "-"), ("encoder", "--")):
                ratio_ax.plot(steps, [p["mlm"][grp] / max(p["sentiment"][grp], 1e-12) for p in probes], style,
                              label=f"{name}: {grp}")
        grad_ax.plot(target_steps, [p["sentiment"]["word_emb"] for p in probes], "o-", label=name)
        cos_ax.plot(steps, [p["embedding_mean_cosine"] for p in probes], "o-", label=name)
        adam_ax.plot(target_steps[1:], [p["target_step_in_adam_units"]["word_emb"] for p in probes[1:]], "o-",
                     label=name)
    ratio_ax.axhline(1, color="grey", lw=0.5)
    ratio_ax.set(yscale="log", xlabel="global step", ylabel="|g_MLM| / |g_target| (loss-weighted)",
                 title="gradient norm ratio on the shared weights")
    grad_ax.set(yscale="log", xlabel="target steps done", ylabel="|g_target| on the word embeddings",
                title="the target's gradient into the embeddings")
    cos_ax.set(xlabel="global step", ylabel="mean cosine of two embedding rows",
               title="token embeddings collapsing onto one direction")
    adam_ax.set(yscale="log", xlabel="target steps done", ylabel="rms(g_target / sqrt(v_hat)), word embeddings",
                title="size of a target step in Adam's units")
    runs = run_logs(run_globs)
    names = sorted(runs)
    for i, key in enumerate(names):
        color = f"C{i}"
        for j, (_, dev) in enumerate(runs[key]):
            dev_ax.plot([248 * f for f, _ in dev], [a for _, a in dev], "o-", color=color, alpha=0.6,
                        label=key if j == 0 else None)
        values = [t for t, _ in runs[key]]
        test_ax.scatter([i] * len(values), values, color=color)
        test_ax.errorbar(i + 0.15, np.mean(values), yerr=np.std(values, ddof=1) if len(values) > 1 else 0,
                         fmt="_k", capsize=4)
    dev_ax.set(xlabel="target steps (of 248)", ylabel="dev accuracy (%)", title="dev accuracy per seed")
    test_ax.set_xticks(range(len(names)), names, rotation=10, fontsize=7)
    test_ax.set(ylabel="test accuracy (%)", title="test accuracy per seed (bar: mean ± sd)")
    for ax in (ratio_ax, grad_ax, cos_ax, adam_ax, dev_ax):
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    print(f"wrote {png}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=120, help="global steps per setting")
    p.add_argument("--probe_every", type=int, default=10)
    p.add_argument("--variants", default="--mode target;--mode aux;--mode aux --aux_loss_weight 0.1",
                   help="';'-separated run.py arguments of each setting (added to the common ones)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "aux_mlm_diagnose.json"))
    p.add_argument("--plot", default=None, help="a report written by this script: draw it (with --runs)")
    p.add_argument("--runs", nargs="*", default=[], help="globs of run.py logs for the test-accuracy panel")
    p.add_argument("--png", default="docs/results-aux-mlm.png")
    p.add_argument("--smoke", action="store_true", help="seconds: tiny runs of both modes, then --plot of their "
                                                         "report, in a temporary folder")
    known, rest = p.parse_known_args()
    if known.smoke:
        rest += smoke(known)
    if known.plot:
        return plot(known.plot, known.runs, known.png)
    settings = {variant.strip(): rest + variant.split() for variant in known.variants.split(";")}
    report = {"settings": {}}
    for name, argv in settings.items():
        print(f"== {name}: {' '.join(argv)}", flush=True)
        report["settings"][name] = diagnose(argv, known.steps, known.probe_every)
    os.makedirs(os.path.dirname(os.path.abspath(known.out)), exist_ok=True)
    write_json(known.out, report)
    print(f"wrote {known.out}")
    if known.smoke:
        plot(known.out, known.runs, known.png)


def smoke(known) -> list:
    """Set the --smoke run in ``known``; returns its run.py arguments."""
    work = tempfile.mkdtemp(prefix="palm-bench-aux-mlm.")
    known.steps, known.probe_every, known.variants, known.plot = 2, 1, "--mode target;--mode aux", None
    known.out, known.png = os.path.join(work, "report.json"), os.path.join(work, "plot.png")
    return ["--max_train", "64", "--hidden", "16", "--layers", "1", "--max_seqlen", "32", "--batch_size", "16",
            "--epochs", "1", "--work_dir", work]


if __name__ == "__main__":
    main()
