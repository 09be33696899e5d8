"""examples/palm-scripts: the PALM 2.x-style scripts run end to end in a fresh folder, in the
order the folder's README gives, and write their files where PALM's READMEs say."""
import json
import os
import re
import shutil
import subprocess
import sys

from paddlepalm import metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(REPO, "examples", "palm-scripts")


def _run(folder, script):
    env = dict(os.environ, PYTHONPATH=REPO, MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, script], cwd=folder, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, f"{script}:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return out.stdout + out.stderr  # results and the library's log lines


def _json_lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _tsv(path, column):
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        return [line.rstrip("\n").split("\t")[header.index(column)] for line in f if line.strip()]


def _steps(directory, prefix):
    return sorted(int(name[len(prefix):]) for name in os.listdir(directory) if name.startswith(prefix))


def test_palm_scripts_run_in_order_and_evaluate_reads_their_files(tmp_path):
    for name in os.listdir(SCRIPTS):
        if name.endswith(".py"):
            shutil.copy(os.path.join(SCRIPTS, name), tmp_path / name)
    out = tmp_path / "outputs"

    # train_with_eval.py: generates the sample, trains in its own loop, evaluates, predicts
    log = _run(tmp_path, "train_with_eval.py")
    assert (tmp_path / "pretrain" / "ERNIE-tiny" / "params" / "word_embedding").is_file()
    assert _steps(out / "train_with_eval", "ckpt.step") == [25, 50]  # every eval_steps, from train_one_step
    assert len(re.findall(r"dev accuracy \d", log)) == 2
    intent_gold = [int(v) for v in _tsv(tmp_path / "data" / "atis" / "atis_intent" / "test.tsv", "label")]
    trained = _json_lines(out / "train_with_eval" / "predict" / "predictions.json")
    assert [p["index"] for p in trained] == list(range(len(intent_gold)))

    # run_multitask.py: joint training, ckpt and predict saves
    _run(tmp_path, "run_multitask.py")
    multi = out / "multi-task"
    ckpts = _steps(multi, "ckpt.step")
    assert len(ckpts) == 2 and _steps(multi, "pred.step") == ckpts
    for task in ("slot", "intent"):
        assert (multi / f"pred.step{ckpts[-1]}" / task / "inference.pdiparams").is_file()

    # joint_predict.py: both heads batch by batch, PALM's predictions.json files
    _run(tmp_path, "joint_predict.py")
    slot_dir = tmp_path / "data" / "atis" / "atis_slot"
    label_map = json.load(open(slot_dir / "label_map.json"))
    gold_tags = [[t for t in tags.split("\x02") if t] for tags in _tsv(slot_dir / "test.tsv", "label")]
    slot_pred = _json_lines(multi / "predict-slot" / "predictions.json")
    assert [len(p) for p in slot_pred] == [len(g) for g in gold_tags]  # one id per word
    assert all(isinstance(i, int) and 0 <= i < len(label_map) for p in slot_pred for i in p)  # head has 16 classes
    joint_intent = _json_lines(multi / "predict-intent" / "predictions.json")
    assert len(joint_intent) == len(intent_gold)

    # predict.py: load_predict_model on the released params/ and on our checkpoint
    log = _run(tmp_path, "predict.py")
    assert "2 missing" in log  # the release has no head: reported, not an error
    from_release = _json_lines(out / "predict" / "predictions.json")
    from_ckpt = _json_lines(out / "predict-ckpt" / "predictions.json")
    assert len(from_release) == len(intent_gold)
    assert [p["label"] for p in from_ckpt] == [p["label"] for p in trained]  # the same last checkpoint

    # evaluate.py: PALM-style readers of those files; its figures are the library's metrics
    log = _run(tmp_path, "evaluate.py")
    id_to_tag = {v: k for k, v in label_map.items()}
    chunk = metrics.chunk_f1([[id_to_tag[i] for i in p] for p in slot_pred], gold_tags)
    assert "precision: {precision:.4f}, recall: {recall:.4f}, f1: {f1:.4f}".format(**chunk) in log
    accuracies = [float(v) for v in re.findall(r"accuracy: ([0-9.]+)", log)]
    expected = [metrics.accuracy([p["label"] for p in preds], intent_gold)
                for preds in (joint_intent, trained, from_release, from_ckpt)]
    assert accuracies == [round(a, 4) for a in expected]
    assert "not found" not in log
