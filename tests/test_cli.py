"""``palm`` as a user runs it (subprocesses): train the joint example into a run directory, then
eval, export, predict and plot it; an interrupted ``palm train`` resumed with ``--resume`` ends
identical to the uninterrupted run; every example config trains a few steps."""
import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from paddlepalm import checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "examples", "configs")
KILL_JOB = os.path.join(REPO, "tests", "reliability", "cli_kill_job.py")
ENV = dict(os.environ, PYTHONPATH=REPO, MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
TINY_ERNIE = ["-o", "backbone.config.hidden_size=32", "-o", "backbone.config.num_hidden_layers=1",
              "-o", "backbone.config.num_attention_heads=2", "-o", "backbone.config.intermediate_size=64"]
# the joint example, tiny: 36 updates (18 batches per task), a checkpoint every 10, evaluations at 20 and 36
JOINT = [os.path.join(CONFIGS, "multi-task.yaml"), *TINY_ERNIE, "-o", "train.epochs=1", "-o", "train.print_steps=5",
         "-o", "train.save_steps=10", "-o", "train.eval_steps=20", "-o", "train.report_to=visualdl"]


def palm(*args, job=None, timeout=600):
    command = [sys.executable, job] if job else [sys.executable, "-m", "paddlepalm.cli"]
    return subprocess.run(command + [str(a) for a in args], capture_output=True, text=True, env=ENV, cwd=REPO,
                          timeout=timeout)


def ok(result):
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def joint_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    ok(palm("train", *JOINT, "-s", run, "--no-progress"))
    return run


def _records(run, event):
    with open(run / "metrics.jsonl", encoding="utf-8") as f:
        return [r for r in map(json.loads, f) if r["event"] == event]


def test_train_writes_the_run_directory(joint_run):
    names = set(os.listdir(joint_run))
    assert {"config.yaml", "env.json", "metrics.jsonl", "checkpoints", "best", "data", "visualdl"} <= names
    assert sorted(os.listdir(joint_run / "checkpoints")) == [f"ckpt.step{n}" for n in (10, 20, 30, 36)]
    env = json.load(open(joint_run / "env.json"))
    assert env["command"].startswith("palm train ") and env["paddle"] and env["paddlepalm"] and env["device"]
    from paddlepalm.cli import config

    resolved = config.load(str(joint_run / "config.yaml"), run_dir=str(joint_run))
    assert resolved["train"]["epochs"] == 1.0 and resolved["backbone"]["config"]["hidden_size"] == 32
    assert resolved.tasks["slot"]["head"]["num_classes"] == 14  # derived from the label map, recorded
    assert resolved.tasks["slot"]["train_file"] == str(joint_run / "data" / "slot" / "train.tsv")
    train = _records(joint_run, "train")
    assert [r["step"] for r in train] == [5, 10, 15, 20, 25, 30, 35, 36]
    assert sum(r["tasks"]["slot"]["updates"] for r in train) == 18  # each task's budget, in updates
    assert all(r["samples_per_s"] > 0 for r in train) and train[-1]["lr"] < train[0]["lr"]  # triangular: to 0
    assert all(abs(sum(t["share"] for t in r["tasks"].values()) - 1) < 1e-9 for r in train)  # one task per update
    evals = _records(joint_run, "eval")
    assert [r["step"] for r in evals] == [20, 36]
    assert set(evals[0]["tasks"]) == {"slot", "intent"} and 0 <= evals[0]["tasks"]["intent"]["accuracy"] <= 1
    from visualdl import LogReader

    (log,) = os.listdir(joint_run / "visualdl")
    reader = LogReader(file_path=str(joint_run / "visualdl" / log))
    assert {"train/slot/loss", "train/intent/share", "lr", "eval/intent/accuracy"} <= set(reader.get_tags()["scalar"])
    losses = [d.value for d in reader.get_data("scalar", "train/slot/loss")]
    assert np.allclose(losses, [r["tasks"]["slot"]["loss"] for r in train if r["tasks"]["slot"]["loss"] is not None])


def test_eval_scores_the_best_checkpoint(joint_run):
    out = ok(palm("eval", joint_run, "--split", "test"))
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [line["task"] for line in lines] == ["slot", "intent"]
    assert lines[0]["checkpoint"] == str(joint_run / "best")
    assert 0 <= lines[0]["entity_f1"] <= 1 and 0 <= lines[1]["accuracy"] <= 1
    best = [r for r in _records(joint_run, "eval") if r["step"] == r["best_step"]][-1]
    dev = [json.loads(line) for line in ok(palm("eval", joint_run, "--task", "intent")).stdout.splitlines()
           if line.startswith("{")]
    assert dev[0]["accuracy"] == pytest.approx(best["tasks"]["intent"]["accuracy"], abs=1e-6)  # the same weights


def test_export_then_predict_raw_text(joint_run, tmp_path):
    out = ok(palm("export", joint_run))
    assert out.stdout.strip().endswith(str(joint_run / "export" / "joint"))
    meta = json.load(open(joint_run / "export" / "joint" / "palm_meta.json"))
    assert [t["name"] for t in meta["tasks"]] == ["slot", "intent"]
    sentences = tmp_path / "in.txt"
    sentences.write_text("show me flights from boston to denver\nwhich airlines fly from dallas to miami\n")
    predicted = tmp_path / "out.jsonl"
    ok(palm("predict", joint_run, "--input", sentences, "--output", predicted))
    records = [json.loads(line) for line in predicted.read_text().splitlines()]
    assert [r["input"] for r in records] == sentences.read_text().splitlines()
    assert len(records[0]["slot"]["tags"]) == 7 and records[0]["intent"]["label_name"].startswith("atis_")
    only = ok(palm("predict", joint_run / "export" / "joint", "--input", sentences, "--task", "intent"))
    assert [set(json.loads(line)) for line in only.stdout.splitlines()] == [{"input", "intent"}] * 2


def test_export_runtime_auto_records_its_choice_and_predict_runs_it(joint_run, tmp_path):
    target = tmp_path / "auto"
    out = ok(palm("export", joint_run, "--runtime", "auto", "--output", target))
    assert out.stdout.strip() == f"palm export: {target}"  # the measurements are logged on stderr
    record = json.load(open(target / "palm_meta.json"))["runtime"]
    assert record["chosen_by"] == "auto" and "chosen: " in out.stderr
    assert not any(record["candidates"][name].get("accepted") for name in ("paddle-bf16", "onnxruntime-int8"))
    refused = palm("export", joint_run, "--runtime", "paddle", "--allow-lower-precision", "--output", tmp_path / "x")
    assert refused.returncode == 2 and "--allow-lower-precision applies to --runtime auto" in refused.stderr
    sentences = tmp_path / "in.txt"
    sentences.write_text("show me flights from boston to denver\n")
    verbose = ok(palm("predict", target, "--input", sentences, "--verbose"))
    assert f"runtime {record['choice']['large_batches']}" in verbose.stderr and "(recorded: " in verbose.stderr
    given = ok(palm("predict", target, "--input", sentences, "--runtime", "paddle-no-onednn"))
    assert json.loads(given.stdout)["slot"]["tags"] == json.loads(verbose.stdout)["slot"]["tags"]


def test_plot_writes_readable_pngs(joint_run):
    out = ok(palm("plot", joint_run))
    written = out.stdout.split()
    assert sorted(os.path.basename(p) for p in written) == ["eval.png", "loss.png", "lr.png", "mix.png"]
    import matplotlib.image

    for path in written:
        height, width = matplotlib.image.imread(path).shape[:2]
        assert width >= 800 and height >= 300


def test_resume_after_a_kill_ends_identical_to_the_uninterrupted_run(joint_run, tmp_path):
    run = tmp_path / "run"
    killed = palm("--die_after_step", 17, "train", *JOINT, "-s", run, "--no-progress", job=KILL_JOB)
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-2000:] + killed.stderr[-2000:]
    assert sorted(os.listdir(run / "checkpoints")) == ["ckpt.step10"]
    refused = palm("train", *JOINT, "-s", run)
    assert refused.returncode == 2 and "--resume" in refused.stderr and "Traceback" not in refused.stderr
    resumed = ok(palm("train", *JOINT, "-s", run, "--resume", "--no-progress"))
    trained = re.findall(r"^global step: (\d+), \w+: step", resumed.stderr, re.M)
    assert trained[0] == "15" and f"loaded checkpoint {run / 'checkpoints' / 'ckpt.step10'}" in resumed.stderr
    ref = checkpoint.read_checkpoint(str(joint_run / "checkpoints" / "ckpt.step36"))
    got = checkpoint.read_checkpoint(str(run / "checkpoints" / "ckpt.step36"))
    different = [k for k in ref.model_state if not np.array_equal(ref.model_state[k], got.model_state[k])]
    assert not different, different[:3]
    assert checkpoint.read_checkpoint(str(run / "best")).global_step == checkpoint.read_checkpoint(
        str(joint_run / "best")).global_step
    for event in ("train", "eval"):  # metrics.jsonl as if never interrupted (timings aside)
        strip = [{k: v for k, v in r.items() if k not in ("time", "steps_per_s", "samples_per_s")}
                 for r in _records(run, event)]
        assert strip == [{k: v for k, v in r.items() if k not in ("time", "steps_per_s", "samples_per_s")}
                         for r in _records(joint_run, event)]
    env = json.load(open(run / "env.json"))
    assert env["launches"][0]["resumed_from"] == str(run / "checkpoints" / "ckpt.step10")


# every example's config trains a few steps (multi-task: joint_run above); tiny sizes and data
EXAMPLE_RUNS = {
    "classification": [*TINY_ERNIE, "-o", "prepare.args=[classification, --max_train, 64]"],
    "matching": [*TINY_ERNIE, "-o", "prepare.args=[matching, --max_train, 64]"],
    "tagging": [*TINY_ERNIE, "-o", "prepare.args=[tagging, --max_train, 64]"],
    "mrc": [*TINY_ERNIE, "-o", "prepare.args=[mrc, --max_train, 1]", "-o", "tasks.mrc.reader.max_len=64",
            "-o", "tasks.mrc.reader.doc_stride=24", "-o", "tasks.mrc.reader.max_query_len=16", "-o", "train.epochs=0.3"],
    "multi-task-aux": [*TINY_ERNIE, "-o", "prepare.args=[multi-task-aux, --max_train, 64]", "-o", "train.epochs=1"],
    "elmo-transfer": ["-o", "train.epochs=0.1"],
    "palm-scripts-multitask": ["-o", "train.epochs=0.2"],
    "palm-scripts-train-with-eval": ["-o", "train.epochs=0.2"],
    "pretrain-electra": [*TINY_ERNIE, "-o", "backbone.config.embedding_size=16", "-o", "train.epochs=0.2"],
    "pretrain-albert": [*TINY_ERNIE, "-o", "backbone.config.embedding_size=16", "-o", "train.epochs=0.2"],
    "pretrain-elmo": ["-o", "backbone.config.cell_size=32", "-o", "backbone.config.projection_size=16",
                      "-o", "tasks.bilm.head.input_dim=16", "-o", "backbone.config.static_graph=false",
                      "-o", "train.epochs=0.02"],
    "finetune": ["-o", "prepare.args=[finetune, --max_train, 64]"],
    "zh-mixture": [*TINY_ERNIE, "-o", "train.epochs=1"],
    "bilstm-crf": ["-o", "prepare.args=[tagging, --max_train, 64]", "-o", "backbone.config.hidden_size=32",
                   "-o", "backbone.config.embedding_size=16", "-o", "train.epochs=1"],
    "bilstm-joint": ["-o", "backbone.config.hidden_size=32", "-o", "backbone.config.embedding_size=16",
                     "-o", "backbone.config.char_size=8", "-o", "train.epochs=1"],
    "zh-ner": ["-o", "backbone.config.hidden_size=32", "-o", "backbone.config.embedding_size=16",
               "-o", f"backbone.config.elmo={os.path.join(REPO, 'pretrain_models', 'elmo-zh-tiny')}",
               "-o", "train.epochs=1"],
    "zh-ner-aux": ["-o", "backbone.config.hidden_size=32", "-o", "backbone.config.embedding_size=16",
                   "-o", "train.epochs=1", "-o", "train.affinity_every=10"],
    "reviews": ["-o", "backbone.config.hidden_size=32", "-o", "backbone.config.embedding_size=16",
                "-o", "train.epochs=1"],
}


def test_every_example_has_a_config():
    configs = {name[:-5] for name in os.listdir(CONFIGS) if name.endswith(".yaml")}
    # multi-task: the joint run of this file; finetune-zh-small: tests/test_shipped_models.py trains it
    assert configs == set(EXAMPLE_RUNS) | {"multi-task", "finetune-zh-small"}
    examples = {name for name in os.listdir(os.path.join(REPO, "examples"))
                if os.path.isfile(os.path.join(REPO, "examples", name, "run.py"))}
    examples |= {"pretrain-" + name for name in os.listdir(os.path.join(REPO, "examples", "pretrain"))
                 if os.path.isfile(os.path.join(REPO, "examples", "pretrain", name, "run.py"))}
    assert examples | {"finetune", "finetune-zh-small", "palm-scripts-multitask", "palm-scripts-train-with-eval", "zh-mixture",
                       "bilstm-crf", "bilstm-joint", "zh-ner", "zh-ner-aux", "reviews"} == configs


@pytest.fixture(scope="module")
def example_runs(tmp_path_factory):
    """Every example config trained through ``paddlepalm.cli.main`` in one subprocess (see
    tests/cli_train_many.py); ``{name: (exit status, run directory, output)}``."""
    folder = tmp_path_factory.mktemp("examples")
    plan = {name: ["train", os.path.join(CONFIGS, f"{name}.yaml"), *argv, "-s", str(folder / name), "--no-progress"]
            for name, argv in EXAMPLE_RUNS.items()}
    (folder / "plan.json").write_text(json.dumps(plan))
    ok(palm(folder / "plan.json", job=os.path.join(REPO, "tests", "cli_train_many.py"), timeout=1200))
    codes = json.loads((folder / "results.json").read_text())
    return {name: (codes[name], folder / name, (folder / f"{name}.log").read_text()) for name in plan}


@pytest.mark.parametrize("name", sorted(EXAMPLE_RUNS))
def test_example_config_trains(name, example_runs):
    code, run, output = example_runs[name]
    assert code == 0, output[-3000:]
    steps = int(output.split("palm train: done at global step ")[1].split()[0].rstrip(",;"))
    assert steps >= 1
    assert os.path.isdir(run / "checkpoints" / f"ckpt.step{steps}")
    assert os.path.isfile(run / "config.yaml") and os.path.getsize(run / "metrics.jsonl") > 0


def test_install_puts_palm_on_the_path():
    """``pip install -e .`` (the README's install) writes the ``palm`` console script beside the
    interpreter; it runs the same CLI as ``python -m paddlepalm.cli``."""
    script = os.path.join(os.path.dirname(sys.executable), "palm")
    assert os.path.isfile(script), f"{script} missing: install paddlepalm with pip install -e . (setup.py entry_points)"
    result = subprocess.run([script, "--help"], capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert all(name in result.stdout for name in ("train", "eval", "predict", "export", "plot", "ls", "download"))
