"""The training loop's sinks (paddlepalm/sinks.py): what they see, the progress bar of
``train(progress=True)``, and PALM's log lines unchanged by default."""
import io
import os
import re


import paddlepalm as palm
from paddlepalm.sinks import MetricsFile, ProgressBar
from test_trainer import build_joint

LINE = re.compile(r"^global step: \d+, (\w+: step \d+/\d+ \(epoch \d+\), loss: [\d.]+(, )?)+, speed: [\d.]+ steps/s$")


class Recorder:
    def __init__(self):
        self.records, self.closed = [], False

    def log(self, step, record):
        self.records.append((step, record))

    def close(self):
        self.closed = True


def _evaluating(trainer, joint_data):
    d = joint_data["dir"]
    reader = palm.reader.ClassifyReader(os.path.join(d, "vocab.txt"), 32, phase="eval")
    reader.load_data(os.path.join(d, "intent", "dev.tsv"), batch_size=16)
    trainer.trainers[1].fit_reader(reader, phase="eval")
    trainer.set_evaluator(eval_steps=4, save_best=False)


def test_sinks_see_every_update_each_log_line_and_each_evaluation(joint_data, capsys):
    trainer, _ = build_joint(joint_data["dir"], joint_data)
    trainer.max_steps = 10
    _evaluating(trainer, joint_data)
    recorder = Recorder()
    trainer.train(print_steps=3, sinks=[recorder])
    events = [(step, r["event"]) for step, r in recorder.records]
    assert events[0] == (0, "start") and recorder.records[0][1]["total_steps"] == 10
    assert [s for s, e in events if e == "update"] == list(range(1, 11))
    assert [s for s, e in events if e == "train"] == [3, 6, 9, 10]
    assert [s for s, e in events if e == "eval"] == [4, 8, 10]
    assert events.index((3, "train")) == events.index((3, "update")) + 1  # after its update, with its log line
    train = [r for _, r in recorder.records if r["event"] == "train"]
    drawn = trainer.plan.steps_done(10, 2)
    assert [sum(r["tasks"][t]["updates"] for r in train) for t in ("slot", "intent")] == list(drawn)
    assert all(abs(sum(t["share"] for t in r["tasks"].values()) - 1) < 1e-9 for r in train)
    assert sum(r["samples_per_s"] > 0 for r in train) == 4 and all(r["lr"] > 0 for r in train)
    evaluation = [r for _, r in recorder.records if r["event"] == "eval"]
    assert evaluation[-1]["tasks"]["intent"] == trainer.evaluation.history[-1]["tasks"]["intent"]
    assert evaluation[-1]["best_step"] == trainer.evaluation.best_step and recorder.closed
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith("global step") and "eval" not in l]
    assert len(lines) == 4 and all(LINE.match(l) for l in lines), lines  # PALM's log lines, as before
    losses = [float(x) for x in re.findall(r"loss: ([\d.]+)", lines[-1])]
    last = train[-1]["tasks"]
    names = re.findall(r"(\w+): step", lines[-1])
    assert losses == [round(last[n]["loss"], 3) for n in names]


def test_progress_is_off_by_default_and_a_bar_when_asked(joint_data, capsys, monkeypatch):
    trainer, _ = build_joint(joint_data["dir"], joint_data)
    trainer.max_steps = 6
    trainer.train(print_steps=3)
    quiet = capsys.readouterr()
    assert quiet.out == "" and all(LINE.match(l) for l in quiet.err.splitlines() if l.startswith("global step"))
    trainer, _ = build_joint(joint_data["dir"], joint_data)
    trainer.max_steps = 6
    _evaluating(trainer, joint_data)
    bar = io.StringIO()
    monkeypatch.setattr("paddlepalm.sinks.sys.stderr", bar)  # where ProgressBar() draws by default
    trainer.train(print_steps=3, progress=True)
    drawn = bar.getvalue()
    assert "train" in drawn and "6/6" in drawn and "eval intent" in drawn
    assert re.search(r"slot=[\d.]+|intent=[\d.]+", drawn) and "ex/s" in drawn
    assert capsys.readouterr().out == ""  # stdout carries results only
    logged = [l.split("\r")[-1] for l in drawn.splitlines()]  # the log lines, written above the bar
    assert sum(bool(LINE.match(l)) for l in logged) == 2


def test_metrics_file_appends_train_and_eval_records(tmp_path):
    sink = MetricsFile(str(tmp_path / "m.jsonl"))
    sink.log(1, {"event": "update"})
    sink.log(5, {"event": "train", "step": 5, "tasks": {}})
    sink.log(5, {"event": "eval", "step": 5, "tasks": {"a": {"accuracy": 0.5}}})
    sink.close()
    import json

    lines = [json.loads(l) for l in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [l["event"] for l in lines] == ["train", "eval"] and all("time" in l for l in lines)


def test_progress_bar_ignores_records_before_its_start():
    bar = ProgressBar(file=io.StringIO())
    bar.log(1, {"event": "update"})
    assert bar.bar is None
    bar.close()
