"""Issue 23: ``palm``'s contract with shells and scripts. Results on stdout (every line JSON), logs
on stderr; a config value is checked when the config loads, before ``prepare`` runs, with a
suggestion; exit status 0 (success), 1 (the run failed), 2 (usage or config error), one test per
case; a run that fails before its first step leaves nothing that blocks the same command; a
``MultiHeadTrainer``'s ``pred.step{N}/`` loads in the Predictor as all its tasks; the multi-task
example writes ``predictions.jsonl`` with names."""
import json
import os
import shutil
import subprocess
import sys

import pytest

import paddlepalm as palm
from paddlepalm import checkpoint
from paddlepalm.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=REPO, MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
SENTENCES = "show me flights from boston to denver\nwhich airlines fly from dallas to miami\n"
PIR_WARNING = "interface for pir graph mode"

# the joint example on the joint_data sample, tiny: 12 updates, a checkpoint every 4
CONFIG = """\
data_dir: {data}
backbone:
  kind: ERNIE
  config: {{hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32,
           max_position_embeddings: 64, type_vocab_size: 2}}
optimizer: {{lr: {lr}}}
train: {{epochs: 0.5, print_steps: 2, save_steps: 4, seed: 1}}
defaults:
  vocab: vocab.txt
  batch_size: 16
  reader: {{max_len: 32, do_lower_case: true}}
tasks:
  slot:
    reader: {{kind: SequenceLabelReader}}
    head: {{kind: SequenceLabel}}
    label_map: label_map.json
    train_file: slot/train.tsv
    dev_file: slot/dev.tsv
    test_file: slot/test.tsv
  intent:
    reader: {{kind: ClassifyReader}}
    head: {{kind: Classify}}
    label_map: intent_map.json
    train_file: intent/train.tsv
    dev_file: intent/dev.tsv
    test_file: intent/test.tsv
"""


def palm_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "paddlepalm.cli", *[str(a) for a in args]], capture_output=True,
                          text=True, env=ENV, cwd=REPO, timeout=timeout)


def ok(result):
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def write_config(folder, data_dir, lr="1e-3", extra=""):
    path = os.path.join(str(folder), "cfg.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(CONFIG.format(data=data_dir, lr=lr) + extra)
    return path


def json_lines(text):
    """Every line of ``text`` parsed as JSON (fails on any other line)."""
    return [json.loads(line) for line in text.splitlines()]


def run_main(argv, capsys):
    """``palm`` in this process: ``(exit status, stdout, stderr)``."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def trained(joint_data, tmp_path_factory):
    """A tiny joint run trained by ``palm train``: ``(run directory, config file, its output)``."""
    folder = tmp_path_factory.mktemp("contract")
    cfg = write_config(folder, joint_data["dir"])
    run = folder / "run"
    return run, cfg, ok(palm_cli("train", cfg, "-s", run, "--no-progress"))


# ------------------------------------------------------------------ A. stdout is machine-readable
def test_train_logs_on_stderr_only(trained):
    run, _, result = trained
    assert result.stdout == ""  # training has no result to print
    assert "global step: 12," in result.stderr and f"checkpoint saved to {run}" in result.stderr


def test_eval_prints_only_json_lines_on_stdout(trained):
    run = trained[0]
    result = ok(palm_cli("eval", run, "--split", "test"))
    assert [line["task"] for line in json_lines(result.stdout)] == ["slot", "intent"]
    assert f"loaded checkpoint {run / 'best'}" in result.stderr  # the log line, on stderr


def test_predict_that_exports_first_prints_only_json_lines_on_stdout(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained[0], run)
    assert not (run / "export").exists()
    sentences = tmp_path / "in.txt"
    sentences.write_text(SENTENCES)
    result = ok(palm_cli("predict", run, "--input", sentences))
    records = json_lines(result.stdout)
    assert [r["input"] for r in records] == SENTENCES.splitlines() and {"slot", "intent"} <= set(records[0])
    assert (run / "export" / "joint" / "palm_meta.json").is_file()  # exported first
    assert "loaded checkpoint" in result.stderr and PIR_WARNING not in result.stderr


def test_multi_task_example_writes_predictions_jsonl_with_names(joint_data, tmp_path):
    raw = os.path.join(os.path.dirname(joint_data["dir"]), "raw")
    ok(subprocess.run([sys.executable, os.path.join(REPO, "examples", "multi-task", "run.py"), "--data_dir", raw,
                       "--work_dir", str(tmp_path), "--hidden", "16", "--layers", "1", "--heads", "2", "--epochs", "1",
                       "--print_steps", "0"], capture_output=True, text=True, env=ENV, timeout=600))
    predicted = tmp_path / "predict_jointbatch"
    assert sorted(os.listdir(predicted / "slot")) == ["predictions.jsonl"]  # no JSON Lines under a .json name
    slot = json_lines((predicted / "slot" / "predictions.jsonl").read_text())
    intent = json_lines((predicted / "intent" / "predictions.jsonl").read_text())
    tag_names = json.load(open(os.path.join(joint_data["dir"], "label_map.json")))
    assert len(slot) == len(intent) == 48 and all(len(r["tags"]) == len(r["label"]) for r in slot)
    assert all(tag in tag_names for r in slot for tag in r["tags"])
    intent_names = json.load(open(os.path.join(joint_data["dir"], "intent_map.json")))
    assert all(intent_names[r["label_name"]] == r["label"] for r in intent)


# ------------------------------------------------------------------ B. errors early, with their exit status
def test_exit_0_on_success(trained, capsys):
    status, out, _ = run_main(["eval", trained[0], "--task", "intent"], capsys)
    assert status == 0 and json_lines(out)[0]["task"] == "intent"


def test_exit_1_when_the_loss_is_not_finite(joint_data, tmp_path, capsys):
    cfg = write_config(tmp_path, joint_data["dir"], lr="1e38")  # step 1 sends the weights to 1e38
    status, out, err = run_main(["train", cfg, "-s", tmp_path / "run", "--no-progress"], capsys)
    assert status == 1 and out == ""
    assert "NonFiniteLossError" in err and "Traceback" not in err


def test_exit_1_when_the_checkpoint_is_corrupt(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained[0], run)
    with open(run / "best" / checkpoint.MODEL_FILE, "r+b") as f:
        f.seek(100)
        f.write(b"\x00" * 64)
    status, out, err = run_main(["eval", run], capsys)
    assert status == 1 and out == "" and "is damaged" in err


def test_exit_2_for_an_unknown_task_with_a_suggestion(trained, capsys):
    status, out, err = run_main(["eval", trained[0], "--task", "slt"], capsys)
    assert status == 2 and out == ""
    assert "'slt' is not one of slot, intent; did you mean 'slot'?" in err


def test_exit_2_for_a_non_empty_run_directory(trained, capsys):
    run, cfg, _ = trained
    status, _, err = run_main(["train", cfg, "-s", run], capsys)
    assert status == 2 and "is not empty" in err and "--resume" in err


def test_exit_2_for_an_override_of_a_task_that_does_not_exist(joint_data, tmp_path, capsys):
    cfg = write_config(tmp_path, joint_data["dir"])
    status, _, err = run_main(["train", cfg, "-s", tmp_path / "run", "-o", "tasks.slt.batch_size=8"], capsys)
    assert status == 2 and "-o tasks.slt.batch_size=8: no task 'slt'; did you mean 'slot'?" in err
    assert "missing" not in err and not (tmp_path / "run").exists()


def test_exit_2_for_a_bad_choice_before_prepare_runs(tmp_path, capsys):
    """``-o defaults.reader.tokenizer=chars`` is refused when the config loads: ``prepare`` never runs."""
    prepare = tmp_path / "prepare.py"
    prepare.write_text("import os, sys\nos.makedirs(sys.argv[sys.argv.index('--out') + 1])\n")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG.format(data="null", lr="1e-3").replace("data_dir: null\n",
                                                                  f"prepare: {{script: {prepare}}}\n"))
    argv = ["train", cfg, "-s", tmp_path / "run", "-o", "defaults.reader.tokenizer=chars"]
    status, _, err = run_main([*argv, "--print-config"], capsys)
    assert status == 2 and "tokenizer: " in err
    assert "'chars' is not one of whitespace, jieba, char, wordpiece; did you mean 'char'?" in err
    status, _, err = run_main(argv, capsys)
    assert status == 2 and "did you mean 'char'?" in err and not (tmp_path / "run").exists()


@pytest.mark.parametrize("override, message", [
    ("tasks.intent.file_format=xlsx", "tasks.intent.file_format: ClassifyReader reads: 'xlsx' is not one of tsv, csv, jsonl, auto"),
    ("tasks.slot.metrics=[chunkf1]", "tasks.slot.metrics: metric 'chunkf1' is not one of"),
    ("tasks.slot.target_metric=f1", "tasks.slot.target_metric: the metrics report: 'f1' is not one of entity_f1"),
    ("tasks.intent.head.kind=Clasify", "did you mean 'Classify'?"),
    ("train.schedule=uniformm", "train.schedule: schedule 'uniformm' is not one of"),
    ("tasks.intent.reader.lang=english", "'english' is not one of en, cn, zh"),
])
def test_every_enumerated_value_is_checked_when_the_config_loads(joint_data, tmp_path, capsys, override, message):
    cfg = write_config(tmp_path, joint_data["dir"])
    status, _, err = run_main(["train", cfg, "-s", tmp_path / "run", "-o", override, "--print-config"], capsys)
    assert status == 2 and message in err, err


def test_exit_2_for_an_empty_predict_input(trained, tmp_path, capsys):
    for text in ("", "\n  \n\n"):
        empty = tmp_path / "empty.txt"
        empty.write_text(text)
        status, out, err = run_main(["predict", trained[0], "--input", empty], capsys)
        assert status == 2 and out == "" and "no input in it" in err


def test_a_run_that_fails_before_its_first_step_leaves_nothing_behind(joint_data, tmp_path, capsys):
    cfg = write_config(tmp_path, joint_data["dir"])
    run = tmp_path / "run"
    status, _, err = run_main(["train", cfg, "-s", run, "-o", "tasks.slot.label_map=missing.json"], capsys)
    assert status == 1 and "missing.json" in err and not run.exists()
    run.mkdir()  # an empty directory given is emptied again, not removed
    status, _, _ = run_main(["train", cfg, "-s", run, "-o", "tasks.slot.label_map=missing.json"], capsys)
    assert status == 1 and run.is_dir() and os.listdir(run) == []
    status, _, err = run_main(["train", cfg, "-s", run, "--no-progress", "-o", "train.epochs=0.1"], capsys)
    assert status == 0, err  # the same command, fixed, runs without --force
    assert sorted(os.listdir(run / "checkpoints")) == ["ckpt.step2"]


# ------------------------------------------------------------------ C. a multi-task pred.step{N}/ in the Predictor
def test_multi_task_pred_step_loads_in_the_predictor_as_all_its_tasks(joint_data, tmp_path):
    from test_trainer import build_joint

    trainer, _ = build_joint(joint_data["dir"], joint_data)
    trainer.set_saver(str(tmp_path), save_steps=3, save_type="ckpt,predict")
    for _ in range(3):
        trainer.train_one_step(trainer.get_one_batch())
    saved = tmp_path / "pred.step3"
    assert sorted(os.listdir(saved)) == ["intent", "slot"]  # PALM's pred.step{N}/<task>/, unchanged
    sentences = SENTENCES.splitlines()
    both = palm.Predictor(str(saved), batch_size=1)
    assert sorted(both.tasks) == ["intent", "slot"]
    records = both.predict(sentences)
    for task in ("slot", "intent"):  # each task's result is its own export's
        assert [r[task] for r in records] == [r[task] for r in palm.Predictor(str(saved / task)).predict(sentences)]
    assert both.predict([]) == []

    os.remove(saved / "intent" / "palm_meta.json")
    with pytest.raises(palm.inference.ModelFolderError, match=r"task folder intent does not load.*"
                                                              r"task folders found: intent, slot"):
        palm.Predictor(str(saved))


def test_palm_predict_takes_a_pred_step_folder(joint_data, tmp_path, capsys):
    from test_trainer import build_joint

    trainer, _ = build_joint(joint_data["dir"], joint_data)
    trainer.set_saver(str(tmp_path), save_steps=2, save_type="predict")
    for _ in range(2):
        trainer.train_one_step(trainer.get_one_batch())
    sentences = tmp_path / "in.txt"
    sentences.write_text(SENTENCES)
    status, out, err = run_main(["predict", tmp_path / "pred.step2", "--input", sentences, "--task", "intent"], capsys)
    assert status == 0, err
    assert [set(r) for r in json_lines(out)] == [{"input", "intent"}] * 2
