"""The single- vs multi-task protocol (``python -m paddlepalm.protocol``) and the two ``palm
train`` options it is built on (``--tasks``, ``train.max_steps``): the baselines get the updates the
protocol promises, are cached across invocations, ``$single_dev`` reaches a dynamic schedule,
and the report's verdicts follow its rule."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from paddlepalm import protocol

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "examples", "configs", "multi-task.yaml")
ENV = dict(os.environ, PYTHONPATH=REPO, MKL_NUM_THREADS="1")
TINY = {"backbone.config.hidden_size": 32, "backbone.config.num_hidden_layers": 1,
        "backbone.config.num_attention_heads": 2, "backbone.config.intermediate_size": 64,
        "train.epochs": 0.5, "train.eval_steps": 5, "train.print_steps": 0}


def run_protocol(path, work, *extra):
    done = subprocess.run([sys.executable, "-m", "paddlepalm.protocol", str(path), "--work", str(work), *extra],
                          capture_output=True, text=True, env=ENV, cwd=REPO, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def write_protocol(path, variants, seeds=(1,), match=("updates", "compute")):
    path.write_text(json.dumps({"config": CONFIG, "overrides": TINY, "seeds": list(seeds), "match": list(match),
                                "variants": variants}), encoding="utf-8")  # JSON is YAML
    return path


def records(work):
    with open(os.path.join(work, "results.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_baselines_match_the_multi_task_run_and_are_cached(tmp_path):
    dynamic = {"train.schedule": {"kind": "Dynamic", "by": "dev_gap", "reference_scores": "$single_dev"}}
    first = write_protocol(tmp_path / "p.yaml", {"alternating": {}, "dynamic": dynamic})
    work = tmp_path / "work"
    run_protocol(first, work, "--jobs", "2")
    rows = records(work)
    multi = next(r for r in rows if r["name"] == "alternating")
    assert multi["task_updates"] == {"slot": 9, "intent": 9} and multi["updates"] == 18  # PALM's 1:1
    singles = {(r["name"], r["steps"]): r for r in rows if r["kind"] == "single"}
    # matched updates: the whole multi-task run's updates; matched compute: the task's own share
    assert set(singles) == {("slot", 18), ("intent", 18), ("slot", 9), ("intent", 9)}
    assert all(r["updates"] == r["steps"] and list(r["task_updates"]) == [r["name"]] for r in singles.values())
    assert all(set(r["test"]) == {r["name"]} for r in singles.values())
    # the dynamic schedule got the tasks' single-task dev scores (matched updates, the first match mode)
    run = next(r for r in rows if r["name"] == "dynamic")["run_dir"]
    from paddlepalm.cli import config

    resolved = config.load(os.path.join(run, "config.yaml"), run_dir=run)
    expected = {t: round(singles[(t, 18)]["dev"][t][m], 6) for t, m in (("slot", "entity_f1"), ("intent", "accuracy"))}
    assert resolved["train"]["schedule"]["reference_scores"] == pytest.approx(expected)
    # a second protocol over the same config with one more variant trains only that variant
    second = write_protocol(tmp_path / "q.yaml", {"alternating": {}, "jointbatch": {"train.joint": True}},
                            match=("updates",))
    done = run_protocol(second, work)
    assert "1 run(s) to do, 2 cached" in done.stderr and done.stderr.count("run(s) to do") == 1
    assert "| jointbatch | 1 | 9 |" in done.stdout
    assert len(records(work)) == len(rows) + 1


def fake_record(kind, name, seed, scores, updates=10):
    return {"kind": kind, "name": name, "seed": seed, "updates": updates, "cpu_minutes": 1.0,
            "task_updates": {t: updates for t in scores}, "dev": {}, "target_metrics": {t: None for t in scores},
            "test": {t: {"task": t, "accuracy": v} for t, v in scores.items()}}


def test_report_verdicts_follow_the_spread_rule(tmp_path):
    path = write_protocol(tmp_path / "p.yaml", {"mix": {}}, seeds=(1, 2, 3), match=("updates",))
    runner = protocol.Runner(protocol.load_protocol(str(path)), str(tmp_path / "work"))
    # a: +3.0 points with stds 0.5 and 1.0 (beyond: 3 > 1.5); b: -1.0 with stds 1.0 and 1.0 (within: 1 < 2)
    multi = {1: (0.80, 0.60), 2: (0.81, 0.62), 3: (0.79, 0.61)}
    single = {1: (0.77, 0.61), 2: (0.775, 0.63), 3: (0.765, 0.62)}
    for seed in (1, 2, 3):
        runner.store_record(runner.multi_key("mix", seed), fake_record("multi", "mix", seed,
                                                                 dict(zip("ab", multi[seed]))))
        for task, value in zip("ab", single[seed]):
            runner.store_record(runner.single_key(task, 10, seed), fake_record("single", task, seed, {task: value}))
    text = runner.summary()
    assert "| single (matched updates) | 3 | 10 | 77.00 ± 0.50 | 62.00 ± 1.00 |" in text
    assert "| mix | 3 | 10 | 80.00 ± 1.00 | 61.00 ± 1.00 | 70.50 |" in text
    assert "a +3.00 (beyond spread); b -1.00 (within spread); worst task: b (-1.00)" in text
    runner.plot(str(tmp_path / "fig.png"))
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_figure_says_what_it_draws_and_where_its_axis_starts(tmp_path):
    import matplotlib.pyplot as plt

    path = write_protocol(tmp_path / "p.yaml", {"mix": {}}, seeds=(1, 2, 3), match=("updates",))
    runner = protocol.Runner(protocol.load_protocol(str(path)), str(tmp_path / "work"))
    # task a near 80%: a cut axis; task b near 3%: the axis starts at 0
    multi = {1: (0.80, 0.03), 2: (0.81, 0.05), 3: (0.79, 0.04)}
    single = {1: (0.77, 0.02), 2: (0.775, 0.04), 3: (0.765, 0.03)}
    for seed in (1, 2, 3):
        runner.store_record(runner.multi_key("mix", seed), fake_record("multi", "mix", seed, dict(zip("ab", multi[seed]))))
        for task, value in zip("ab", single[seed]):
            runner.store_record(runner.single_key(task, 10, seed), fake_record("single", task, seed, {task: value}))
    fig = runner.figure()
    try:
        labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
        assert any("mean over seeds" in t for t in labels), labels
        assert any("std over seeds" in t for t in labels), labels
        assert any("one seed" in t and "3 seeds" in t for t in labels), labels
        cut, zero = fig.axes[:2]
        # lowest seed 76.5, less 5, rounded down: the axis starts at 71 and says so, with a break mark
        assert cut.get_ylim()[0] == 71 and "axis from 71" in cut.get_ylabel()
        assert any(line.get_gid() == "axis-break" for line in cut.lines)
        assert zero.get_ylim()[0] == 0 and "axis from" not in zero.get_ylabel()
        assert not any(line.get_gid() == "axis-break" for line in zero.lines)
        # a bar per setting at the mean, its error bar the sample std, a dot per seed
        bars = [p for p in cut.patches]
        assert [round(b.get_height(), 6) for b in bars] == [77.0, 80.0]
        errorbars = [c for c in cut.containers if type(c).__name__ == "ErrorbarContainer"]
        spans = [c.lines[2][0].get_segments()[0][:, 1] for c in errorbars]
        assert [list(np.round(y, 6)) for y in spans] == [[76.5, 77.5], [79.0, 81.0]]  # stds 0.5 and 1.0
        dots = [line for line in cut.lines if line.get_marker() == "."]
        assert sorted(y for line in dots for y in line.get_ydata()) == pytest.approx([76.5, 77, 77.5, 79, 80, 81])
    finally:
        plt.close(fig)


def test_bad_protocol_files_name_the_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(f"config: {CONFIG}\nseeds: [1]\nvariant: {{}}\n", encoding="utf-8")
    with pytest.raises(protocol.ProtocolError, match=r"p\.yaml:3: variant: unknown key"):
        protocol.load_protocol(str(path))
    path.write_text(f"config: {CONFIG}\nseeds: [1]\nvariants:\n  d: {{train.schedule: $single_dev}}\n",
                    encoding="utf-8")
    with pytest.raises(protocol.ProtocolError, match=r"cannot set the baselines' updates"):
        protocol.load_protocol(str(path))
    path.write_text(f"config: {CONFIG}\nseeds: [one]\nvariants: {{a: {{}}}}\n", encoding="utf-8")
    with pytest.raises(protocol.ProtocolError, match=r"p\.yaml:2: seeds: expected a list of integers"):
        protocol.load_protocol(str(path))


def test_a_variant_trains_only_its_train_tasks(tmp_path):
    path = write_protocol(tmp_path / "p.yaml", {"alone": {"train_tasks": ["intent"]}, "both": {}}, match=())
    work = tmp_path / "work"
    done = run_protocol(path, work)
    rows = {r["name"]: r for r in records(work)}
    assert set(rows["alone"]["test"]) == {"intent"} and list(rows["alone"]["task_updates"]) == ["intent"]
    assert set(rows["both"]["test"]) == {"slot", "intent"}
    assert "--tasks intent" in rows["alone"]["command"]
    assert "| alone | 1 |" in done.stdout and "both vs alone: slot" not in done.stdout  # no slot to compare
    path.write_text(f"config: {CONFIG}\nseeds: [1]\nvariants:\n  a: {{train_tasks: intent}}\n", encoding="utf-8")
    with pytest.raises(protocol.ProtocolError, match=r"a: train_tasks: expected a list of task names"):
        protocol.load_protocol(str(path))


def test_palm_train_tasks_and_steps(tmp_path):
    from paddlepalm.cli import config
    from paddlepalm.cli.config import ConfigError

    alone = config.load(CONFIG, ["train.joint=true", "train.max_steps=7"], str(tmp_path), only=["intent"])
    assert list(alone.tasks) == ["intent"] and alone["train"]["joint"] is False and alone["train"]["max_steps"] == 7
    with pytest.raises(ConfigError, match=r"--tasks slot nope: no task named 'nope'"):
        config.load(CONFIG, [], str(tmp_path), only=["slot", "nope"])
    capped = config.load(CONFIG, ["train.max_steps=7"], str(tmp_path))  # several tasks: a cap on the plan
    assert capped["train"]["max_steps"] == 7
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "paddlepalm.cli", "train", CONFIG, "--tasks", "slot", "-s", str(run),
                           "--no-progress", "-o", "train.max_steps=7", *[f"-o{k}={v}" for k, v in TINY.items()]],
                          capture_output=True, text=True, env=ENV, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.load(open(run / "checkpoints" / "ckpt.step7" / "trainer.json"))
    assert state["global_step"] == 7 and list(state["tasks"]) == ["slot"]


def test_a_damaged_results_file_names_its_line(tmp_path):
    from paddlepalm.utils.fileio import FileFormatError

    path = write_protocol(tmp_path / "p.yaml", {"mix": {}})
    work = tmp_path / "work"
    work.mkdir()
    (work / "results.jsonl").write_text('{"key": "a"}\n{"key": \n', encoding="utf-8")
    with pytest.raises(FileFormatError, match=r"results\.jsonl:2: invalid JSON"):
        protocol.Runner(protocol.load_protocol(str(path)), str(work))
