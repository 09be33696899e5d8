"""Mean and spread of the ``test results:`` lines of several runs, per setting.

    python examples/multi-task-aux/summarize.py runs/*.log

Runs are grouped by mode, aux text, mix ratio and learning rate where the results
name them; pass one setting's logs at a time when they do not.
"""
import collections
import json
import statistics
import sys

KEYS = ("dev_accuracy", "dev_accuracy_last", "test_accuracy", "test_macro_f1", "target_steps", "aux_steps",
        "total_seconds", "cpu_seconds")


def read_results(paths):
    for path in paths:
        with open(path, encoding="utf-8") as f:
            lines = [l for l in f if l.startswith("test results: ")]
        if lines:
            yield json.loads(lines[-1][len("test results: "):])


def setting(result):
    lr = f", lr {result['lr']}" if "lr" in result else ""
    if result["mode"] == "target":
        return "target alone" + lr
    ratio = f", aux ratio {result['aux_ratio']}" if "aux_ratio" in result else ""
    weight = f", MLM loss weight {result['aux_loss_weight']}" if result.get("aux_loss_weight", 1.0) != 1.0 else ""
    untied = f", MLM output {result['mlm_output']}" if result.get("mlm_output") else ""  # older runs: tied
    return ("target + MLM" + (" (+ unlabeled text)" if result.get("aux_unlabeled") else "") + ratio + weight + untied
            + lr)


def main(paths):
    groups = collections.defaultdict(list)
    for result in read_results(paths):
        groups[setting(result)].append(result)
    for name, runs in sorted(groups.items()):
        print(f"{name}: {len(runs)} runs, seeds {sorted(r['seed'] for r in runs)}")
        for key in KEYS:
            values = [r[key] for r in runs]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            print(f"  {key}: mean {statistics.mean(values):.2f}, sd {spread:.2f}, "
                  f"min {min(values)}, max {max(values)}  {values}")


if __name__ == "__main__":
    main(sys.argv[1:])
