"""docs/data.md's worked example runs as the page writes it: its sample generator, its config and its
``palm train`` / ``palm eval`` commands (with a smaller model), and ``palm eval`` prints the keys and
unseen-label counts the page shows. The blocks are the page's fenced blocks marked
``<!-- test: ... -->``, so the page and this test cannot drift apart."""
import json
import os
import re
import shlex
import subprocess
import sys

from paddlepalm.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(REPO, "docs", "data.md")
INTENTS = ["alarm_set", "music_play", "navigation", "phone_call", "weather_query"]  # the training split's
SMALL = ["-o", "backbone.config.hidden_size=32", "-o", "backbone.config.embedding_size=16", "-o", "train.epochs=2",
         "-o", "train.print_steps=0", "--no-progress"]


def marked_blocks(text: str) -> dict:
    """``{marker: block text}`` of each fenced block right after a ``<!-- test: marker -->`` line."""
    pattern = re.compile(r"<!-- test: (.+?) -->\n```\w*\n(.*?)```", re.S)
    return {marker: body for marker, body in pattern.findall(text)}


def test_the_worked_example_runs_as_written(tmp_path, monkeypatch, capsys):
    with open(DOC, encoding="utf-8") as f:
        blocks = marked_blocks(f.read())
    config = next(k for k in blocks if k.startswith("config "))
    (tmp_path / config.split()[1]).write_text(blocks[config], encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    commands = [shlex.split(line.split("#")[0]) for line in blocks["commands"].splitlines() if line.strip()]
    assert [c[:2] for c in commands] == [["python", "examples/data/make_cais_sample.py"], ["palm", "train"],
                                         ["palm", "eval"], ["echo", "打给妈妈"], ["palm", "predict"]]
    env = dict(os.environ, PYTHONPATH=REPO)
    subprocess.run([sys.executable, os.path.join(REPO, commands[0][1]), *commands[0][2:]], check=True, env=env)
    sample = next(k for k in blocks if k.startswith("sample "))
    assert (tmp_path / sample.split()[1]).read_text(encoding="utf-8").startswith(blocks[sample])

    assert main(commands[1][1:] + SMALL) == 0
    capsys.readouterr()
    assert main(commands[2][1:]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    shown = [json.loads(line) for line in blocks["output"].splitlines() if line.strip()]
    assert [sorted(p) for p in printed] == [sorted(s) for s in shown]
    assert [p["unseen_labels"] for p in printed] == [s["unseen_labels"] for s in shown] == [8, 4]
    intent = printed[1]
    assert intent["accuracy"] <= 56 / 60  # the 4 sentences of the unseen intent are always wrong

    echo, target = commands[3][:-2], commands[3][-1]  # echo TEXT > FILE
    (tmp_path / target).write_text(" ".join(echo[1:]) + "\n", encoding="utf-8")
    assert main(commands[4][1:]) == 0
    predicted = json.loads(capsys.readouterr().out.splitlines()[-1])
    shown = json.loads(blocks["predict"])
    assert predicted["input"] == shown["input"] and predicted["slot"]["tokens"] == shown["slot"]["tokens"]
    assert len(predicted["slot"]["tags"]) == 4 and predicted["intent"]["label_name"] in INTENTS
