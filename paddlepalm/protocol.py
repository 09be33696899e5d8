"""Does training tasks together help? Single- vs multi-task runs under one protocol.

    python -m paddlepalm.protocol bench/protocols/atis.yaml --work runs/protocol --jobs 2

A protocol file names a multi-task ``palm`` config, the seeds, and the multi-task settings
(*variants*) to compare, each a set of config overrides::

    config: ../../examples/configs/multi-task.yaml     # relative to the protocol file
    overrides: {prepare.source: "{data_root}/atis"}     # every run; {data_root}: PALM_DATA_ROOT, {work}: --work
    seeds: [1, 2, 3, 4, 5]
    match: [updates]                                    # the single-task baselines (see below)
    variants:
      jointbatch: {train.joint: true}
      alternating: {}
      target-and-seg: {train_tasks: [slot, seg]}          # train only these tasks of the config

A variant's ``train_tasks`` (a list of the config's task names) is ``palm train --tasks``: the
other tasks are dropped, so one config serves "the target alone", "+ each auxiliary task" and
"+ all of them".

For each seed it trains every variant (``palm train CONFIG -o ... -o train.seed=S``) and every
task alone (``palm train CONFIG --tasks T -o train.max_steps=N``), at

- **matched updates**: N = the multi-task run's total updates (each task alone gets as many
  optimizer steps as the whole multi-task run), and/or
- **matched compute**: N = the updates the task entered in the multi-task run (the tasks alone,
  together, make as many task batches as the multi-task run),

where the multi-task run is the ``compare_to`` variant's (default: the first) of the same seed.
Every run selects its checkpoint on the dev files only (``best/``: a multi-task run by the mean of
its tasks' target metrics) and is scored on the test files (``palm eval --split test``).
Single-task runs are cached under ``WORK/single/`` by everything that decides them (the config
file's text, the overrides, the task, the updates, the seed), so adding a variant, or another
protocol over the same config, does not retrain them. ``WORK/results.jsonl`` holds one record
per run; an interrupted protocol continues where it stopped.

A variant's override value ``$single_dev`` is replaced by ``{task: mean best dev score of the
task alone}`` over the seeds (the reference scores of ``Dynamic(by='dev_gap')``); such variants
run after the single-task baselines.

The report (``WORK/summary.md``, and ``--plot``) gives each task's test metric as mean ± sample
std over the seeds per setting, each variant's difference to the single-task baselines and to the
``compare_to`` variant, whether
that difference is **beyond the seed spread** (|difference| > std of the variant + std of the
baseline: the mean ± std intervals do not overlap), and the worst task (the largest loss
against its baseline).
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from paddlepalm.utils.fileio import read_json, read_json_lines, read_text, write_text, write_with

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SINGLE_DEV = "$single_dev"
TRAIN_TASKS = "train_tasks"
MATCHES = ("updates", "compute")


class ProtocolError(ValueError):
    """A protocol file that cannot be run: names the file (and line) and what is wrong."""


def data_root() -> str:
    return os.environ.get("PALM_DATA_ROOT", os.path.join(os.path.dirname(ROOT), "shared", "data"))


@dataclass
class Protocol:
    path: str
    config: str
    overrides: Dict[str, Any]
    seeds: List[int]
    variants: Dict[str, Dict[str, Any]]
    match: List[str] = field(default_factory=lambda: ["updates"])
    compare_to: Optional[str] = None
    metrics: Dict[str, str] = field(default_factory=dict)
    title: str = ""

    @property
    def reference(self) -> str:
        return self.compare_to or next(iter(self.variants))


def load_protocol(path: str) -> Protocol:
    from paddlepalm.cli.config import ConfigError, parse_yaml

    try:
        doc, lines = parse_yaml(read_text(path), path)
    except ConfigError as error:
        raise ProtocolError(str(error)) from None

    def fail(key: str, problem: str) -> ProtocolError:
        return ProtocolError(f"{path}:{lines.get((key,), 1)}: {key}: {problem}")

    if not isinstance(doc, dict):
        raise ProtocolError(f"{path}:1: a protocol is a mapping (config, seeds, variants, ...)")
    known = {"config", "overrides", "seeds", "variants", "match", "compare_to", "metrics", "title"}
    for key in doc:
        if key not in known:
            raise fail(key, f"unknown key; known: {', '.join(sorted(known))}")
    for key in ("config", "seeds", "variants"):
        if key not in doc:
            raise ProtocolError(f"{path}:1: {key}: required")
    config = os.path.join(os.path.dirname(os.path.abspath(path)), str(doc["config"]))
    if not os.path.isfile(config):
        raise fail("config", f"no such file {config}")
    seeds = doc["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                           for s in seeds):
        raise fail("seeds", f"expected a list of integers, got {seeds!r}")
    variants = doc["variants"]
    if not isinstance(variants, dict) or not variants or not all(isinstance(v, dict) or v is None
                                                                 for v in variants.values()):
        raise fail("variants", "expected a mapping {name: {key.path: value, ...}}")
    match = doc.get("match", ["updates"])
    if not isinstance(match, list) or any(m not in MATCHES for m in match):
        raise fail("match", f"expected a list of {MATCHES}, got {match!r}")
    compare_to = doc.get("compare_to")
    if compare_to is not None and compare_to not in variants:
        raise fail("compare_to", f"no variant named {compare_to!r}; variants: {list(variants)}")
    for name, variant in variants.items():
        chosen = (variant or {}).get(TRAIN_TASKS)
        if chosen is not None and (not isinstance(chosen, list) or not chosen
                                   or not all(isinstance(t, str) for t in chosen)):
            raise fail("variants", f"{name}: {TRAIN_TASKS}: expected a list of task names, got {chosen!r}")
    reference = compare_to or next(iter(variants))
    if _needs_singles(variants[reference] or {}):
        raise fail("compare_to", f"variant {reference!r} uses {SINGLE_DEV}, so it cannot set the baselines' updates")
    return Protocol(path, config, dict(doc.get("overrides") or {}), seeds,
                    {name: dict(v or {}) for name, v in variants.items()}, match, compare_to,
                    dict(doc.get("metrics") or {}), str(doc.get("title") or ""))


def _needs_singles(overrides: Mapping[str, Any]) -> bool:
    return SINGLE_DEV in json.dumps(overrides)


def _substitute(value: Any, single_dev: Dict[str, float]) -> Any:
    """``value`` with every ``$single_dev`` (at any depth) replaced by the single-task dev scores."""
    if value == SINGLE_DEV:
        return dict(single_dev)
    if isinstance(value, dict):
        return {k: _substitute(v, single_dev) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, single_dev) for v in value]
    return value


def _override_args(overrides: Mapping[str, Any], work: str) -> List[str]:
    out = []
    for key, value in overrides.items():
        text = json.dumps(value) if not isinstance(value, str) else value
        out += ["-o", f"{key}={text.replace('{data_root}', data_root()).replace('{work}', work)}"]
    return out


# ----------------------------------------------------------------------------------- runs
@dataclass
class Run:
    """One training run and its test evaluation."""

    kind: str  # "multi" or "single"
    name: str  # the variant, or the task trained alone
    seed: int
    run_dir: str
    args: List[str]  # palm train arguments after the run directory
    steps: Optional[int] = None  # single: the updates

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}/seed{self.seed}" + (f"/steps{self.steps}" if self.steps else "")


def _palm(*args: str) -> List[str]:
    return [sys.executable, "-m", "paddlepalm.cli", *args]


def execute(run: Run, log_dir: str) -> Dict[str, Any]:
    """Train (from scratch: ``--force``) and test one run; returns its record."""
    os.makedirs(log_dir, exist_ok=True)
    log_path = os.path.join(log_dir, run.key.replace("/", "_") + ".log")
    train = _palm("train", run.args[0], "-s", run.run_dir, "--force", "--no-progress", *run.args[1:])
    test_file = os.path.join(run.run_dir, "test.jsonl")
    evaluate = _palm("eval", run.run_dir, "--split", "test", "--output", test_file)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.time()
    cpu = 0.0
    with open(log_path, "w", encoding="utf-8") as log:
        for command in (train, evaluate):
            log.write("$ " + " ".join(command) + "\n")
            log.flush()
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=os.getcwd())
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            cpu += usage.ru_utime + usage.ru_stime
            if process.returncode != 0:
                raise RuntimeError(f"{run.key}: {' '.join(command)} failed ({process.returncode}); see {log_path}")
    record = {"kind": run.kind, "name": run.name, "seed": run.seed, "run_dir": run.run_dir,
              "command": "palm " + " ".join(train[3:]), "cpu_minutes": round(cpu / 60, 3),
              "wall_minutes": round((time.time() - start) / 60, 3), "cpu_flags": cpu_flags(),
              "test": {result["task"]: result for result in read_json_lines(test_file)}}
    record.update(_training_facts(run.run_dir))
    if run.steps:
        record["steps"] = run.steps
    return record


def _training_facts(run_dir: str) -> Dict[str, Any]:
    """The run's total and per-task updates (its last checkpoint) and each task's dev scores at the
    selected (best) evaluation."""
    ckpts = os.path.join(run_dir, "checkpoints")
    last = max((d for d in os.listdir(ckpts) if re.fullmatch(r"ckpt\.step\d+", d)), key=lambda d: int(d[9:]))
    state = read_json(os.path.join(ckpts, last, "trainer.json"))
    tasks = {name: t["steps_done"] for name, t in state["tasks"].items()}
    # the last evaluation's record names the best step (the final checkpoint is written before
    # the final evaluation, so its own evaluation state can be one evaluation behind)
    from paddlepalm.cli.run_dir import read_metrics

    evals = [e for e in read_metrics(run_dir) if e.get("event") == "eval"]
    best_step = evals[-1]["best_step"] if evals else None
    dev = next((e["tasks"] for e in evals if e["step"] == best_step), {})
    targets = {}
    from paddlepalm.cli.config import parse_yaml

    config, _ = parse_yaml(read_text(os.path.join(run_dir, "config.yaml")), "config.yaml")
    for name, task in config["tasks"].items():
        targets[name] = task.get("target_metric")
    return {"updates": state["global_step"], "task_updates": tasks, "best_step": best_step, "dev": dev,
            "target_metrics": targets}


def cpu_flags() -> str:
    try:
        text = read_text("/proc/cpuinfo")
    except OSError:
        return "unknown"
    model = re.search(r"model name\s*:\s*(.*)", text)
    flags_line = re.search(r"flags\s*:\s*(.*)", text)
    flags = set(flags_line.group(1).split()) if flags_line else set()
    shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{model.group(1).strip() if model else 'cpu'} ({' '.join(shown)}), {os.cpu_count()} cores"


# ------------------------------------------------------------------------------- the runner
class Runner:
    def __init__(self, protocol: Protocol, work: str, jobs: int = 1):
        self.protocol, self.work, self.jobs = protocol, os.path.abspath(work), jobs
        self.results_path = os.path.join(self.work, "results.jsonl")
        self.records = self._read_results()
        self._lock = threading.Lock()

    def _read_results(self) -> Dict[str, Dict[str, Any]]:
        if not os.path.exists(self.results_path):
            return {}
        return {r["key"]: r for r in read_json_lines(self.results_path)}

    def store_record(self, key: str, record: Dict[str, Any]) -> None:
        with self._lock:
            record["key"] = key
            self.records[key] = record
            lines = [json.dumps(r, sort_keys=True) for r in self.records.values()]
            write_text(self.results_path, "\n".join(lines) + "\n")

    def refresh(self) -> None:
        """Re-read what each stored run's directory says about its training (updates, best step, dev)."""
        for key, record in list(self.records.items()):
            if os.path.isdir(os.path.join(record.get("run_dir", ""), "checkpoints")):
                record.update(_training_facts(record["run_dir"]))
                self.store_record(key, record)

    # the run keys: a multi run's decides by protocol file + variant; a single's by what trains it
    def multi_key(self, variant: str, seed: int) -> str:
        digest = self._digest(self.protocol.overrides, self.protocol.variants[variant], seed)
        return f"multi/{variant}/seed{seed}/{digest}"

    def single_key(self, task: str, steps: int, seed: int) -> str:
        return f"single/{task}/steps{steps}/seed{seed}/{self._digest(self.protocol.overrides, task, steps, seed)}"

    def _digest(self, *parts: Any) -> str:
        text = read_text(self.protocol.config) + json.dumps(parts, sort_keys=True, default=str)
        return hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]

    def _multi_run(self, variant: str, seed: int, single_dev: Optional[Dict[str, float]] = None) -> Tuple[str, Run]:
        overrides = dict(self.protocol.overrides)
        for key, value in self.protocol.variants[variant].items():
            overrides[key] = _substitute(value, single_dev) if single_dev is not None else value
        chosen = overrides.pop(TRAIN_TASKS, None)
        key = self.multi_key(variant, seed)
        args = [self.protocol.config, *(["--tasks", *chosen] if chosen else []),
                *_override_args(overrides, self.work), "-o", f"train.seed={seed}"]
        return key, Run("multi", variant, seed, os.path.join(self.work, key), args)

    def _single_run(self, task: str, steps: int, seed: int) -> Tuple[str, Run]:
        key = self.single_key(task, steps, seed)
        args = [self.protocol.config, "--tasks", task, *_override_args(self.protocol.overrides, self.work),
                "-o", f"train.max_steps={steps}", "-o", f"train.seed={seed}"]
        return key, Run("single", task, seed, os.path.join(self.work, key), args, steps)

    def _run_all(self, runs: Sequence[Tuple[str, Run]]) -> None:
        todo = [(key, run) for key, run in runs if key not in self.records]
        if not todo:
            return
        print(f"protocol: {len(todo)} run(s) to do, {len(runs) - len(todo)} cached", file=sys.stderr, flush=True)

        def one(item):
            key, run = item
            record = execute(run, os.path.join(self.work, "logs"))
            self.store_record(key, record)
            print(f"protocol: {key}: {record['cpu_minutes']:.2f} CPU min, test "
                  + ", ".join(f"{t}={self.score(record, t):.4f}" for t in record["test"]), file=sys.stderr, flush=True)

        if not self.records:  # the first run alone: it may prepare data the others share (data_dir)
            one(todo.pop(0))
        with concurrent.futures.ThreadPoolExecutor(self.jobs) as pool:
            for future in [pool.submit(one, item) for item in todo]:
                future.result()

    def run(self) -> None:
        p = self.protocol
        plain = [v for v in p.variants if not _needs_singles(p.variants[v])]
        first = [self._multi_run(p.reference, s) for s in p.seeds]
        self._run_all(first)
        later = [self._multi_run(v, s) for v in plain if v != p.reference for s in p.seeds]
        self._run_all(self.single_runs() + later)
        dependent = [v for v in p.variants if v not in plain]
        if dependent:
            reference = self.single_dev_scores()
            self._run_all([self._multi_run(v, s, reference) for v in dependent for s in p.seeds])

    def single_runs(self, match: Optional[str] = None) -> List[Tuple[str, Run]]:
        out = []
        for mode in ([match] if match else self.protocol.match):
            for seed in self.protocol.seeds:
                base = self.records.get(self.multi_key(self.protocol.reference, seed))
                if base is None:  # --report-only before the multi-task run
                    continue
                for task, updates in base["task_updates"].items():
                    if task in base["test"]:  # auxiliary tasks have no test metrics
                        out.append(self._single_run(task, base["updates"] if mode == "updates" else updates, seed))
        return out

    def single_dev_scores(self) -> Dict[str, float]:
        scores: Dict[str, List[float]] = {}
        for key, _ in self.single_runs(self.protocol.match[0] if self.protocol.match else "updates"):
            record = self.records[key]
            task = record["name"]
            scores.setdefault(task, []).append(record["dev"][task][self.metric(record, task)])
        return {task: round(statistics.mean(values), 6) for task, values in scores.items()}

    # --------------------------------------------------------------------------- the report
    def metric(self, record: Dict[str, Any], task: str) -> str:
        chosen = self.protocol.metrics.get(task) or record["target_metrics"].get(task)
        if chosen:
            return chosen
        return next(k for k, v in record["test"][task].items() if isinstance(v, (int, float)))

    def score(self, record: Dict[str, Any], task: str) -> float:
        return float(record["test"][task][self.metric(record, task)])

    def settings(self) -> List[Tuple[str, Dict[str, List[Dict[str, Any]]]]]:
        """(setting name, {task: the seeds' records}) for the baselines and each variant."""
        out = []
        for mode in self.protocol.match:
            per_task: Dict[str, List[Dict[str, Any]]] = {}
            for key, _ in self.single_runs(mode):
                if key in self.records:
                    per_task.setdefault(self.records[key]["name"], []).append(self.records[key])
            out.append((f"single ({'matched ' + mode})", per_task))
        for variant in self.protocol.variants:
            records = [self.records.get(self.multi_key(variant, s)) for s in self.protocol.seeds]
            per_task = {}
            for record in filter(None, records):
                for task in record["test"]:
                    per_task.setdefault(task, []).append(record)
            out.append((variant, per_task))
        return out

    def summary(self) -> str:
        settings = self.settings()
        tasks = [t for _, per_task in settings for t in per_task]
        tasks = list(dict.fromkeys(tasks))
        baselines = {name: per_task for name, per_task in settings if name.startswith("single")}
        lines = []
        if self.protocol.title:
            lines += [f"**{self.protocol.title}**", ""]
        lines += ["| setting | seeds | updates | " + " | ".join(f"{t} ({self._metric_name(settings, t)})"
                                                         for t in tasks) + " | mean | CPU min / run |",
                  "|---|---|---|" + "---|" * len(tasks) + "---|---|"]
        for name, per_task in settings:
            cells, means = [], []
            for task in tasks:
                values = [100 * self.score(r, task) for r in per_task.get(task, [])]
                cells.append(mean_std(values))
                if values:
                    means.append(statistics.mean(values))
            records = {r["key"]: r for rs in per_task.values() for r in rs}.values()
            seeds = len({r["seed"] for r in records})
            updates = sorted({r["updates"] for r in records})
            cpu = [r["cpu_minutes"] for r in records]
            mean = f"{statistics.mean(means):.2f}" if means else "-"
            lines.append(f"| {name} | {seeds} | {_span(updates)} | {' | '.join(cells)} | {mean} | {mean_std(cpu)} |")
        lines.append("")
        for base_name, base in baselines.items():
            for name, per_task in settings:
                if name in baselines:
                    continue
                lines.append(self._difference_line(name, per_task, base_name, base, tasks))
        reference = dict(settings).get(self.protocol.reference, {})
        for name, per_task in settings:
            if name not in baselines and name != self.protocol.reference:
                lines.append(self._difference_line(name, per_task, self.protocol.reference, reference, tasks))
        lines.append("")
        lines.append(f"Beyond the seed spread: |difference| > std(variant) + std(baseline). Machine: {cpu_flags()}.")
        return "\n".join(lines)

    def _metric_name(self, settings, task: str) -> str:
        for _, per_task in settings:
            if per_task.get(task):
                return self.metric(per_task[task][0], task)
        return "?"

    def _difference_line(self, name, per_task, base_name, base, tasks) -> str:
        parts, worst, diffs = [], None, []
        for task in tasks:
            a = [100 * self.score(r, task) for r in per_task.get(task, [])]
            b = [100 * self.score(r, task) for r in base.get(task, [])]
            if not a or not b:
                continue
            diff = statistics.mean(a) - statistics.mean(b)
            spread = sample_std(a) + sample_std(b)
            verdict = "beyond spread" if len(a) > 1 and len(b) > 1 and abs(diff) > spread else "within spread"
            parts.append(f"{task} {diff:+.2f} ({verdict})")
            diffs.append(diff)
            if worst is None or diff < worst[1]:
                worst = (task, diff)
        if not parts:
            return f"- {name} vs {base_name}: no common tasks yet"
        return (f"- {name} vs {base_name}: " + "; ".join(parts) + f"; worst task: {worst[0]} ({worst[1]:+.2f}); "
                f"mean {statistics.mean(diffs):+.2f}")

    def plot(self, path: str) -> None:
        """Write :meth:`figure` as a PNG."""
        import matplotlib.pyplot as plt

        fig = self.figure()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
        plt.close(fig)

    def figure(self):
        """One panel per task: per setting a bar at the mean test score over the seeds, an error bar
        of ± one sample standard deviation and a dot per seed; a legend says so. A panel's y axis
        starts 5 points below its lowest seed, rounded down (at 0 when that is below 0); an axis
        that does not start at 0 says so in its label ("axis from 78") and has a break mark at its
        foot, since its bars are then cut too."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        single_color, multi_color = "#bbbbbb", "#4c72b0"
        settings = self.settings()
        tasks = list(dict.fromkeys(t for _, per_task in settings for t in per_task))
        width = max(3.2 * len(tasks) + 1, 1.3 * max(len(settings), 3) + 1)
        fig, axes = plt.subplots(1, len(tasks), figsize=(width, 4.2), squeeze=False)
        seed_counts, colors = set(), set()
        for ax, task in zip(axes[0], tasks):
            names = [n for n, per_task in settings if per_task.get(task)]
            lowest = None
            for x, name in enumerate(names):
                values = [100 * self.score(r, task) for r in dict(settings)[name][task]]
                color = single_color if name.startswith("single") else multi_color
                ax.bar(x, statistics.mean(values), yerr=sample_std(values), color=color, capsize=3)
                ax.plot([x] * len(values), values, "k.", markersize=4)
                seed_counts.add(len(values))
                colors.add(color)
                lowest = min(values) if lowest is None else min(lowest, *values)
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels(names, rotation=35, ha="right", fontsize=7)
            metric = self._metric_name(settings, task)
            bottom = max(0.0, float(int(lowest - 5)))  # lowest - 5 >= 0 here, so int() rounds down
            ax.set_ylim(bottom, None)
            if bottom > 0:
                ax.set_ylabel(f"{metric}, test % (axis from {bottom:g})", fontsize=8)
                _break_mark(ax)
            else:
                ax.set_ylabel(f"{metric}, test %", fontsize=8)
            ax.set_title(f"{task} ({metric}, test %)", fontsize=9)
        seeds = "/".join(str(n) for n in sorted(seed_counts))
        handles = [Patch(color=multi_color, label="bar: mean over seeds (multi-task setting)")]
        if single_color in colors:
            handles.append(Patch(color=single_color, label="bar: mean over seeds (task alone)"))
        if multi_color not in colors:
            handles.pop(0)
        handles += [Line2D([], [], color="k", marker="_", markersize=10, linestyle="-", linewidth=1,
                           label="error bar: ± sample std over seeds"),
                    Line2D([], [], color="k", marker=".", markersize=6, linestyle="None",
                           label=f"dot: one seed ({seeds} seeds)")]
        columns = len(handles) if len(tasks) > 2 else 2
        rows = -(-len(handles) // columns)
        fig.legend(handles=handles, loc="lower center", ncol=columns, fontsize=7, frameon=False)
        title = self.protocol.title or os.path.basename(self.protocol.path)
        fig.suptitle("\n".join(textwrap.wrap(title, int(width * 11))), fontsize=10)  # ~11 characters an inch
        fig.tight_layout(rect=(0, 0.045 * rows + 0.01, 1, 1))
        return fig


def _break_mark(ax) -> None:
    """Two short slanted strokes across the foot of the y axis: the axis does not start at 0."""
    for dy in (-0.012, 0.012):
        ax.plot([-0.025, 0.025], [0.0 + dy - 0.01, 0.0 + dy + 0.01], transform=ax.transAxes, color="k",
                linewidth=1, clip_on=False, gid="axis-break")


def sample_std(values: Sequence[float]) -> float:
    """The sample standard deviation; 0 for fewer than two values."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def mean_std(values: Sequence[float]) -> str:
    """``mean ± sample std`` to two decimals (one value as it is; ``-`` for none)."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _span(values: Sequence[int]) -> str:
    if not values:
        return "-"
    return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m paddlepalm.protocol", description=__doc__.split("\n\n")[0],
                                epilog="see the module docstring (python -m pydoc paddlepalm.protocol) and "
                                       "docs/multitask.md", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("protocol", help="the protocol YAML file")
    p.add_argument("--work", required=True, help="folder of the runs, the cache and results.jsonl")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (each with MKL_NUM_THREADS threads)")
    p.add_argument("--seeds", type=int, nargs="+", help="override the protocol's seeds")
    p.add_argument("--report-only", action="store_true", help="summarize what results.jsonl holds (re-reading "
                                                               "each run directory's training facts); train nothing")
    p.add_argument("--plot", help="write the comparison figure (PNG) here")
    args = p.parse_args(argv)
    try:
        protocol = load_protocol(args.protocol)
    except ProtocolError as error:
        print(f"protocol: error: {error}", file=sys.stderr)
        return 2
    if args.seeds:
        protocol.seeds = args.seeds
    runner = Runner(protocol, args.work, args.jobs)
    if args.report_only:
        runner.refresh()
    else:
        runner.run()
    text = runner.summary()
    write_text(os.path.join(runner.work, "summary.md"), text + "\n")
    print(text)
    if args.plot:
        runner.plot(args.plot)
        print(f"figure: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
