"""Pretraining loss against CPU time, one figure for several runs (issue 26's equal-compute runs).

    python examples/pretrain/plot_losses.py --out docs/results-pretrain-loss.png \\
        "masked LM=/work/runs/i26/mlm/mlm_loss.jsonl" "ELECTRA=/work/runs/i26/electra/electra_loss.jsonl" \\
        "ALBERT=/work/runs/i26/albert/albert_loss.jsonl"

Each run is ``LABEL=LOSS_JSONL`` (the log the pretraining examples write: ``step``, ``loss``,
``cpu_seconds`` per line). The objectives' losses are not on one scale (ELECTRA's is the generator's
masked-LM loss plus 50 times the replaced-token-detection loss; ALBERT's adds sentence order), so each
run has its own panel; the x axis, CPU-hours of the pretraining process, is shared.
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from paddlepalm.cli.plot import smooth  # noqa: E402
from paddlepalm.utils.fileio import atomic_open, read_json_lines  # noqa: E402


def parse_run(text: str):
    label, sep, path = text.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LABEL=LOSS_JSONL")
    return label, path


def plot(runs, out: str, weight: float = 0.8) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 1, figsize=(8, 2.4 * len(runs) + 0.8), sharex=True, squeeze=False)
    fig.suptitle("Pretraining loss against CPU time (one thread)", fontsize=12)
    for (label, path), (axis,) in zip(runs, axes):
        records = read_json_lines(path)
        hours = [r["cpu_seconds"] / 3600 for r in records]
        losses = [r["loss"] for r in records]
        axis.plot(hours, losses, alpha=0.3, linewidth=0.8)
        axis.plot(hours, smooth(losses, weight), linewidth=1.5)
        axis.set_ylabel(f"{label}\nloss")
        axis.grid(alpha=0.3)
        axis.annotate(f"{records[-1]['step']} updates, {losses[-1]:.2f}", (hours[-1], losses[-1]),
                      textcoords="offset points", xytext=(-110, 12), fontsize=8)
    axes[-1][0].set_xlabel("CPU-hours of the pretraining process")
    fig.tight_layout()
    with atomic_open(out, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=parse_run, help="LABEL=LOSS_JSONL")
    p.add_argument("--out", required=True, help="the PNG to write")
    a = p.parse_args(argv)
    print(plot(a.runs, a.out))


if __name__ == "__main__":
    main()
