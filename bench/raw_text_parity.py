"""Raw-text prediction scored against `palm eval` on the same test split (issue 23).

A tagging data set is stored pre-tokenized (one tag per character for Chinese), but people type
Chinese without spaces. This script takes a trained run, writes each test sentence as a person
would type it (no spaces between Chinese characters, one space between Latin words), runs
`palm predict RUN --input raw.txt` on it, scores the predicted entity spans (character offsets)
against the gold spans, and prints that score beside `palm eval RUN --split test`'s, with the
difference. Classification tasks of the run are scored the same way (accuracy on the raw text
of the test file). Every stdout line of both commands must parse as JSON.

    python bench/raw_text_parity.py --run runs/resume                      # a trained run
    python bench/raw_text_parity.py --config examples/configs/zh-ner.yaml \\
        -o prepare.source=$PALM_DATA_ROOT/resume_ner -o train.epochs=1 --work /tmp/parity   # train first
    python bench/raw_text_parity.py --smoke                                # seconds: the generated sample
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import Dict, List, Sequence, Set, Tuple

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from paddlepalm.metrics import chunks  # noqa: E402
from paddlepalm.reader.tsv import read_tsv  # noqa: E402

Span = Tuple[str, int, int]


def typed(tokens: Sequence[str]) -> Tuple[str, List[Tuple[int, int]]]:
    """The tokens as typed: a space only between two tokens that both end/start with an ASCII
    letter or digit; and each token's character offsets in that text."""
    text, offsets = "", []
    for token in tokens:
        if text and token[:1].isascii() and token[:1].isalnum() and text[-1].isascii() and text[-1].isalnum():
            text += " "
        offsets.append((len(text), len(text) + len(token)))
        text += token
    return text, offsets


def palm(*args: str) -> List[dict]:
    """A `palm` command's stdout as JSON lines (a line that does not parse fails the run)."""
    done = subprocess.run([sys.executable, "-m", "paddlepalm.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")})
    sys.stderr.write(done.stderr[-2000:])
    if done.returncode != 0:
        raise SystemExit(f"palm {args[0]} exited {done.returncode}")
    records = []
    for number, line in enumerate(done.stdout.splitlines(), start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise SystemExit(f"palm {args[0]}: stdout line {number} is not JSON: {line[:120]!r}") from None
    return records


def read_rows(path: str, required: Sequence[str], optional: Sequence[str] = ()) -> List[Dict[str, str]]:
    """The rows of a TSV with a header, read as the readers read it (a bad line names file:line)."""
    return [row for _, row in read_tsv(path, required, optional)]


def span_f1(predicted: Sequence[Set[Span]], gold: Sequence[Set[Span]]) -> float:
    correct = sum(len(p & g) for p, g in zip(predicted, gold))
    n_pred, n_gold = sum(map(len, predicted)), sum(map(len, gold))
    precision, recall = correct / max(n_pred, 1), correct / max(n_gold, 1)
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def tagging_parity(run: str, task: str, test_file: str, work: str) -> Dict[str, float]:
    rows = read_rows(test_file, ["text_a", "label"])
    texts, gold = [], []
    for row in rows:
        tokens, tags = row["text_a"].split("\x02"), row["label"].split("\x02")
        text, offsets = typed(tokens)
        texts.append(text)
        gold.append({(kind, offsets[first][0], offsets[last - 1][1]) for kind, first, last in chunks(tags)})
    raw_file = os.path.join(work, f"{task}.raw.txt")
    with open(raw_file, "w", encoding="utf-8") as f:
        f.write("\n".join(texts) + "\n")
    records = palm("predict", run, "--input", raw_file, "--task", task)
    if len(records) != len(texts):
        raise SystemExit(f"{len(records)} predictions for {len(texts)} test sentences")
    predicted = []
    for record, text in zip(records, texts):
        spans = record[task]["spans"]
        assert all(text[s["start"]:s["end"]] == s["text"] for s in spans), "a span does not slice its text"
        predicted.append({(s["type"], s["start"], s["end"]) for s in spans})
    evaluated = next(r for r in palm("eval", run, "--split", "test", "--task", task) if r.get("task") == task)
    return {"eval": 100 * evaluated["entity_f1"], "raw": 100 * span_f1(predicted, gold), "metric": "entity_f1",
            "sentences": len(texts)}


def classify_parity(run: str, task: str, test_file: str, work: str, label_names: List[str]) -> Dict[str, float]:
    rows = read_rows(test_file, ["text_a", "label"], ["text_b"])
    raw_file = os.path.join(work, f"{task}.raw.txt")
    with open(raw_file, "w", encoding="utf-8") as f:
        f.write("\n".join(row["text_a"] for row in rows) + "\n")
    records = palm("predict", run, "--input", raw_file, "--task", task)
    right = 0
    for record, row in zip(records, rows):
        result = record[task]
        right += str(result["label"]) == row["label"] or result.get("label_name") == row["label"]
    evaluated = next(r for r in palm("eval", run, "--split", "test", "--task", task) if r.get("task") == task)
    return {"eval": 100 * evaluated["accuracy"], "raw": 100 * right / len(rows), "metric": "accuracy",
            "sentences": len(rows)}


def parity(run: str, only: Sequence[str] = ()) -> Dict[str, Dict[str, float]]:
    with open(os.path.join(run, "config.yaml"), encoding="utf-8") as f:
        config = yaml.safe_load(f)
    results = {}
    with tempfile.TemporaryDirectory() as work:
        for task, spec in config["tasks"].items():
            if (only and task not in only) or not spec.get("test_file") or spec.get("aux"):
                continue
            kind = spec["head"]["kind"]
            if kind == "SequenceLabel":
                results[task] = tagging_parity(run, task, spec["test_file"], work)
            elif kind == "Classify" and "text_b" not in read_rows(spec["test_file"], ["text_a"], ["text_b"])[0]:
                results[task] = classify_parity(run, task, spec["test_file"], work, [])
    return results


def train(config: str, overrides: Sequence[str], run: str) -> None:
    args = ["train", config, "-s", run, "--force", "--no-progress"]
    for item in overrides:
        args += ["-o", item]
    done = subprocess.run([sys.executable, "-m", "paddlepalm.cli", *args], stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")})
    if done.returncode != 0:
        raise SystemExit(f"palm train exited {done.returncode}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", help="a trained run directory")
    p.add_argument("--config", help="train this config first (into --work)")
    p.add_argument("-o", "--override", action="append", default=[], help="palm train -o overrides")
    p.add_argument("--work", help="run directory for --config (default: a temporary folder)")
    p.add_argument("--task", action="append", default=[], help="only these tasks")
    p.add_argument("--smoke", action="store_true", help="train the zh-ner config on its generated sample a few "
                                                        "steps, then compare (seconds)")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = a.run
        if a.smoke:
            a.config = os.path.join(REPO, "examples", "configs", "zh-ner.yaml")
            a.override += ["train.max_steps=6", "tasks.ner.batch_size=8", "train.print_steps=0"]
        if a.config:
            run = a.work or os.path.join(tmp, "run")
            train(a.config, a.override, run)
        if run is None:
            p.error("give --run, --config or --smoke")
        results = parity(os.path.abspath(run), a.task)
    print(f"{'task':<10} {'metric':<10} {'sentences':>9} {'palm eval':>10} {'raw text':>10} {'difference':>10}")
    for task, r in results.items():
        print(f"{task:<10} {r['metric']:<10} {r['sentences']:>9} {r['eval']:>10.2f} {r['raw']:>10.2f} "
              f"{r['raw'] - r['eval']:>+10.2f}")
    if not results:
        raise SystemExit("no task with a test_file to compare")


if __name__ == "__main__":
    main()
