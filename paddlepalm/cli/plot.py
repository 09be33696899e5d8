"""``palm plot RUN_DIR``: PNG figures of a run's ``metrics.jsonl`` (matplotlib, no display needed).

- ``loss.png``: each task's training loss (mean over each log window, faint) and its exponential
  smoothing, one panel per task (their scales differ: a CRF's summed loss vs a cross-entropy);
- ``eval.png``: each task's dev metrics over the steps, the best checkpoint's step marked;
- ``lr.png``: the learning rate and the training throughput (examples per second);
- ``mix.png``: the realized task mix (each task's fraction of the task batches of each log
  window) against the mix ratios' expectation;
- ``affinity.png``: with ``train.affinity_every`` on, the inter-task affinity Z[i->j] (how a step on
  task i changes task j's loss, :mod:`paddlepalm.affinity`) over the steps, one panel per target task
  j, each source task i a line; zero (no effect) marked.
"""
import os
from typing import Any, Dict, List, Optional, Sequence

from paddlepalm.cli.run_dir import read_metrics


def smooth(values: Sequence[float], weight: float) -> List[float]:
    """Exponential moving average, bias-corrected (TensorBoard's smoothing)."""
    out, last, norm = [], 0.0, 0.0
    for value in values:
        last = weight * last + (1 - weight) * value
        norm = weight * norm + (1 - weight)
        out.append(last / norm if norm else value)
    return out


def _figure(rows: int, title: str, width: float = 8.0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, 1, figsize=(width, 2.6 * rows + 0.8), sharex=True, squeeze=False)
    fig.suptitle(title, fontsize=12)
    return plt, fig, [a[0] for a in axes]


def _save(plt, fig, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_run(run_dir: str, out_dir: str, weight: float = 0.6) -> List[str]:
    records = read_metrics(run_dir)
    train = sorted((r for r in records if r.get("event") == "train"), key=lambda r: r["step"])
    evals = sorted((r for r in records if r.get("event") == "eval"), key=lambda r: r["step"])
    affinities = sorted((r for r in records if r.get("event") == "affinity"), key=lambda r: r["step"])
    if not train and not evals and not affinities:
        raise ValueError(f"{run_dir}/metrics.jsonl has no records yet (train.print_steps: 0 logs none)")
    os.makedirs(out_dir, exist_ok=True)
    mix_ratios = _mix_ratios(run_dir)
    written = []
    if train:
        written.append(plot_loss(train, os.path.join(out_dir, "loss.png"), weight))
        written.append(plot_lr(train, os.path.join(out_dir, "lr.png")))
        if len(train[0]["tasks"]) > 1:
            written.append(plot_mix(train, os.path.join(out_dir, "mix.png"), mix_ratios))
    if evals:
        written.append(plot_eval(evals, os.path.join(out_dir, "eval.png")))
    if affinities:
        written.append(plot_affinity(affinities, os.path.join(out_dir, "affinity.png")))
    return written


def _mix_ratios(run_dir: str) -> Optional[Dict[str, float]]:
    try:
        from paddlepalm.cli import config as config_mod
        from paddlepalm.cli.run_dir import config_path

        cfg = config_mod.parse_yaml(open(config_path(run_dir), encoding="utf-8").read(), "config.yaml")[0]
        if cfg["train"]["joint"] or cfg["train"]["tasks_per_update"] != 1:
            return None  # the ratios draw units, not tasks: no simple expectation per task
        return {name: float(task["mix_ratio"]) for name, task in cfg["tasks"].items()}
    except Exception:  # noqa: BLE001 (the expectation line is optional)
        return None


def plot_loss(train: List[Dict[str, Any]], path: str, weight: float) -> str:
    tasks = list(train[0]["tasks"])
    plt, fig, axes = _figure(len(tasks), "Training loss per task")
    for ax, task, color in zip(axes, tasks, _colors(len(tasks))):
        points = [(r["step"], r["tasks"][task]["loss"]) for r in train
                  if task in r["tasks"] and r["tasks"][task]["loss"] is not None]
        if not points:
            ax.text(0.5, 0.5, "no finite loss logged", transform=ax.transAxes, ha="center")
            continue
        steps, losses = zip(*points)
        ax.plot(steps, losses, color=color, alpha=0.3, linewidth=1, label="mean per log window")
        ax.plot(steps, smooth(losses, weight), color=color, linewidth=2, label=f"smoothed ({weight:g})")
        ax.set_ylabel(f"{task}\nloss")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("global step (optimizer updates)")
    return _save(plt, fig, path)


def plot_eval(evals: List[Dict[str, Any]], path: str) -> str:
    tasks = list(evals[-1]["tasks"])
    best_step = evals[-1].get("best_step")
    plt, fig, axes = _figure(len(tasks), f"Dev metrics (best checkpoint: step {best_step}, by {evals[-1].get('target')})")
    for ax, task in zip(axes, tasks):
        metrics = [m for m in evals[-1]["tasks"][task] if m != "unseen_labels"]  # a count, not a fraction
        for metric, color in zip(metrics, _colors(len(metrics))):
            points = [(r["step"], 100 * r["tasks"][task][metric]) for r in evals if metric in r["tasks"].get(task, {})]
            steps, values = zip(*points)
            ax.plot(steps, values, marker="o", markersize=3, color=color, label=metric)
            best = [v for s, v in points if s == best_step]
            if best:
                ax.plot([best_step], best, marker="*", markersize=12, color=color, markeredgecolor="black")
        if best_step is not None:
            ax.axvline(best_step, color="gray", linestyle="--", linewidth=1, label=f"best (step {best_step})")
        ax.set_ylabel(f"{task}\nmetric (%)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    axes[-1].set_xlabel("global step (optimizer updates)")
    return _save(plt, fig, path)


def plot_lr(train: List[Dict[str, Any]], path: str) -> str:
    plt, fig, (lr_ax, speed_ax) = _figure(2, "Learning rate and throughput")
    steps = [r["step"] for r in train]
    lr_ax.plot(steps, [r["lr"] for r in train], color="tab:blue", label="learning rate (next update)")
    lr_ax.set_ylabel("learning rate")
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    lr_ax.grid(alpha=0.3)
    lr_ax.legend(loc="upper right", fontsize=8)
    speed_ax.plot(steps, [r["samples_per_s"] for r in train], color="tab:green", label="examples per second")
    speed_ax.set_ylabel("examples / s")
    speed_ax.set_ylim(bottom=0)
    speed_ax.grid(alpha=0.3)
    speed_ax.legend(loc="lower right", fontsize=8)
    speed_ax.set_xlabel("global step (optimizer updates)")
    return _save(plt, fig, path)


def plot_mix(train: List[Dict[str, Any]], path: str, mix_ratios: Optional[Dict[str, float]]) -> str:
    tasks = list(train[0]["tasks"])
    plt, fig, (ax,) = _figure(1, "Realized task mix (fraction of the task batches in each log window)")
    steps = [r["step"] for r in train]
    shares = []
    for record in train:
        total = sum(record["tasks"][t]["share"] for t in tasks if t in record["tasks"]) or 1.0
        shares.append([record["tasks"].get(t, {"share": 0})["share"] / total for t in tasks])
    colors = _colors(len(tasks))
    ax.stackplot(steps, *zip(*shares), labels=tasks, colors=colors, alpha=0.75, step="pre")
    if mix_ratios and all(t in mix_ratios for t in tasks):
        total = sum(mix_ratios[t] for t in tasks)
        level = 0.0
        for task in tasks[:-1]:
            level += mix_ratios[task] / total
            ax.axhline(level, color="black", linestyle="--", linewidth=1)
        ax.plot([], [], color="black", linestyle="--", linewidth=1, label="expected from mix_ratio")
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction of task batches")
    ax.set_xlabel("global step (optimizer updates)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.grid(alpha=0.3)
    return _save(plt, fig, path)


def plot_affinity(records: List[Dict[str, Any]], path: str) -> str:
    targets = list(records[0]["affinity"])
    plt, fig, axes = _figure(len(targets), "Inter-task affinity Z[source -> target]: > 0, a step on the source "
                                           "lowers the target's loss")
    steps = [r["step"] for r in records]
    for ax, target in zip(axes, targets):
        sources = [s for s in records[0]["affinity"] if s != target]
        for source, color in zip(sources, _colors(len(sources))):
            ax.plot(steps, [r["affinity"][source][target] for r in records], marker="o", markersize=3,
                    color=color, label=f"{source} -> {target}")
        ax.axhline(0.0, color="black", linewidth=1)
        ax.set_ylabel(f"onto {target}\nZ (relative loss change)")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("global step (optimizer updates)")
    return _save(plt, fig, path)


def _colors(n: int) -> List[str]:
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive"]
    return [palette[i % len(palette)] for i in range(n)]
