"""``palm``'s config: strict validation (unknown keys with a suggestion, types naming file:line and
key path), YAML 1.1 traps, precedence (built-in < defaults < task < -o), relative paths, keys of
features this version may lack; the run directory's rules; the command line's help and errors."""
import inspect
import os
import re

import pytest

import paddlepalm
from paddlepalm.cli import build, config, main, read_inputs, run_dir as rd
from paddlepalm.cli.config import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = """\
backbone:
  kind: ERNIE
  config: {hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2}
train:
  epochs: 2
defaults:
  vocab: data/vocab.txt
  reader: {max_len: 32}
tasks:
  intent:
    reader: {kind: ClassifyReader}
    head: {kind: Classify, num_classes: 3}
    train_file: data/intent.tsv
"""


def resolve(text, overrides=(), tmp_path=None, name="cfg.yaml"):
    folder = tmp_path or ""
    return config.resolve(text, os.path.join(str(folder), name), overrides, run_dir=os.path.join(str(folder), "run"),
                          cwd=str(folder))


def error_of(text, overrides=()):
    with pytest.raises(ConfigError) as caught:
        resolve(text, overrides)
    return str(caught.value)


def test_base_config_resolves_with_built_in_defaults():
    cfg = resolve(BASE)
    assert cfg["train"]["epochs"] == 2.0 and cfg["train"]["print_steps"] == 10 and cfg["optimizer"]["kind"] == "Adam"
    task = cfg.tasks["intent"]
    assert task["reader"] == {"kind": "ClassifyReader", "max_len": 32}
    assert task["batch_size"] == 32 and task["mix_ratio"] == 1.0 and task["dev_file"] is None


@pytest.mark.parametrize("text, where, suggestion", [
    (BASE.replace("train:", "trian:"), "cfg.yaml:4: trian", "did you mean 'train'"),
    (BASE.replace("  epochs: 2", "  epochs: 2\n  eval_step: 100"), "cfg.yaml:6: train.eval_step", "'eval_steps'"),
    (BASE.replace("{kind: ClassifyReader}", "{kind: ClassifyReader, max_length: 8}"),
     "cfg.yaml:11: tasks.intent.reader.max_length", "'max_len'"),
    (BASE.replace("kind: Classify,", "kind: Clasify,"), "cfg.yaml:12: tasks.intent.head.Clasify", "'Classify'"),
    (BASE.replace("hidden_size: 16", "hiden_size: 16"), "cfg.yaml:3: backbone.config.hiden_size", "'hidden_size'"),
    (BASE.replace("  vocab: data", "  vocabulary: data"), "cfg.yaml:7: defaults.vocabulary", "'vocab'"),
])
def test_unknown_key_is_an_error_with_the_nearest_key(text, where, suggestion):
    message = error_of(text)
    assert message.startswith(where) and suggestion in message, message


def test_unknown_key_without_a_near_one_lists_the_keys():
    message = error_of(BASE.replace("train:", "train:\n  zzz: 1"))
    assert "unknown key; known: affinity_every, balancer, epochs, eval_steps" in message


@pytest.mark.parametrize("text, overrides, expected", [
    (BASE.replace("epochs: 2", "epochs: three"), (), "cfg.yaml:5: train.epochs: expected a positive number, got 'three'"),
    (BASE, ("train.epochs=-1",), "-o train.epochs=-1: train.epochs: expected a positive number, got -1.0"),
    (BASE, ("tasks.intent.batch_size=1.5",), "-o tasks.intent.batch_size=1.5: tasks.intent.batch_size: "
                                             "expected an integer >= 1, got 1.5"),
    (BASE.replace("{max_len: 32}", "{max_len: long}"), (), "cfg.yaml:8: defaults.reader.max_len: "
                                                          "ClassifyReader(max_len=...): expected an integer, got 'long'"),
    (BASE.replace("kind: ERNIE", "kind: GPT"), (), "cfg.yaml:2: backbone.kind: 'GPT' is not one of ERNIE, BERT"),
    (BASE + "    mix_ratio: [1]\n", (), "cfg.yaml:14: tasks.intent.mix_ratio: expected a positive number, got [1]"),
    (BASE.replace("train:\n", "train:\n  joint: [slot]\n"), (), "cfg.yaml:5: train.joint: expected true or false or "
                                                                "a list of a list of a string"),
])
def test_wrong_type_names_the_file_line_and_key_path(text, overrides, expected):
    message = error_of(text, overrides)
    assert message.startswith(expected), message


def test_a_task_value_from_defaults_is_reported_where_it_was_written():
    text = BASE.replace("{max_len: 32}", "{max_len: 32, mask_prob: 0.2}")  # ClassifyReader takes none
    message = error_of(text)
    assert message.startswith("cfg.yaml:8: defaults.reader.mask_prob: unknown argument of reader ClassifyReader")


def test_yaml_1_1_traps_are_coerced_by_the_declared_type():
    text = BASE.replace("  epochs: 2", "  epochs: 2\n  skip_nonfinite: yes\n  save_best: off") + """\
optimizer: {lr: 5e-5, use_ema: on, weight_decay: 1e-2}
"""
    text = text.replace("{kind: ClassifyReader}", "{kind: ClassifyReader, do_lower_case: Yes, seed: 1e3}")
    cfg = resolve(text)
    assert cfg["optimizer"]["lr"] == 5e-5 and isinstance(cfg["optimizer"]["lr"], float)
    assert cfg["optimizer"]["weight_decay"] == 0.01 and cfg["optimizer"]["use_ema"] is True
    assert cfg["train"]["skip_nonfinite"] is True and cfg["train"]["save_best"] is False
    reader = cfg.tasks["intent"]["reader"]
    assert reader["do_lower_case"] is True and reader["seed"] == 1000
    lang_no = error_of(BASE.replace("{kind: ClassifyReader}", "{kind: ClassifyReader, lang: no}"))
    assert "lang: ClassifyReader(lang=...): 'no' is not one of en, cn, zh" in lang_no  # the string 'no', not False
    assert resolve(BASE, ["optimizer.lr=3e-4"])["optimizer"]["lr"] == 3e-4  # -o values too


def test_duplicate_keys_are_an_error():
    assert error_of(BASE.replace("  epochs: 2", "  epochs: 2\n  epochs: 3")).startswith(
        "cfg.yaml:6: train.epochs: duplicate key")


TWO = BASE.replace("defaults:", "defaults:\n  batch_size: 8\n  dev_batch_size: 16") + """\
    batch_size: 16
  slot:
    reader: {kind: SequenceLabelReader, max_len: 48}
    head: {kind: SequenceLabel}
    label_map: data/labels.json
    train_file: data/slot.tsv
"""


def test_precedence_built_in_then_defaults_then_task_then_override():
    cfg = resolve(TWO)
    intent, slot = cfg.tasks["intent"], cfg.tasks["slot"]
    assert intent["batch_size"] == 16 and slot["batch_size"] == 8  # task < defaults
    assert intent["dev_batch_size"] == 16 and intent["micro_batches"] == 1  # defaults, built-in
    assert slot["reader"] == {"kind": "SequenceLabelReader", "max_len": 48}  # mappings merge, the task's key wins
    assert intent["reader"] == {"kind": "ClassifyReader", "max_len": 32}
    cfg = resolve(TWO, ["tasks.intent.batch_size=4", "defaults.batch_size=2", "tasks.slot.reader.max_len=20"])
    assert cfg.tasks["intent"]["batch_size"] == 4  # -o on the task wins over everything
    assert cfg.tasks["slot"]["batch_size"] == 2  # -o on defaults changes the default ...
    assert resolve(TWO, ["defaults.batch_size=2"]).tasks["intent"]["batch_size"] == 16  # ... which a task still beats
    assert cfg.tasks["slot"]["reader"]["max_len"] == 20


def test_paths_resolve_relative_to_the_config_file_or_data_dir_or_cwd(tmp_path):
    text = BASE
    cfg = config.resolve(text, str(tmp_path / "sub" / "cfg.yaml"), cwd=str(tmp_path / "elsewhere"))
    assert cfg.tasks["intent"]["train_file"] == str(tmp_path / "sub" / "data" / "intent.tsv")
    assert cfg.tasks["intent"]["vocab"] == str(tmp_path / "sub" / "data" / "vocab.txt")
    cfg = config.resolve("data_dir: ../shared\n" + text, str(tmp_path / "sub" / "cfg.yaml"),
                         ["tasks.intent.dev_file=dev.tsv", "backbone.pretrained=models/ernie"],
                         cwd=str(tmp_path / "elsewhere"))
    assert cfg.tasks["intent"]["train_file"] == str(tmp_path / "shared" / "data" / "intent.tsv")
    assert cfg.tasks["intent"]["dev_file"] == str(tmp_path / "elsewhere" / "dev.tsv")  # -o: the current directory
    assert cfg["backbone"]["pretrained"] == str(tmp_path / "elsewhere" / "models" / "ernie")
    cfg = config.resolve(text.replace("kind: ERNIE", "kind: ERNIE\n  config_file: ${data_dir}/ernie.json") +
                         "prepare: {script: make.py}\n", str(tmp_path / "cfg.yaml"), run_dir=str(tmp_path / "run"))
    assert cfg["data_dir"] == str(tmp_path / "run" / "data")  # a prepare script writes RUN_DIR/data
    assert cfg["backbone"]["config_file"] == str(tmp_path / "run" / "data" / "ernie.json")
    assert cfg["prepare"]["script"] == str(tmp_path / "make.py")
    assert cfg.tasks["intent"]["train_file"] == str(tmp_path / "run" / "data" / "data" / "intent.tsv")
    absolute = resolve(BASE, [f"tasks.intent.train_file={tmp_path}/x.tsv"]).tasks["intent"]["train_file"]
    assert absolute == f"{tmp_path}/x.tsv"


@pytest.mark.parametrize("override, target", [
    ("tasks.intent.loss_weight=0.5", paddlepalm.Trainer), ("tasks.intent.lr_multiplier=2", paddlepalm.Trainer),
    ("tasks.intent.clip_norm=1", paddlepalm.Trainer), ("train.schedule=proportional", paddlepalm.MultiHeadTrainer),
    ("train.balancer=uncertainty", paddlepalm.MultiHeadTrainer),
    ("optimizer.backbone_lr_multiplier=0.1", paddlepalm.optimizer.Adam),
    ("optimizer.layerwise_lr_decay=0.9", paddlepalm.optimizer.Adam),
])
def test_keys_of_features_this_version_lacks_are_refused_else_passed_on(override, target):
    key = override.split("=")[0].split(".")[-1]
    overrides = [override] + (["tasks.other={reader: {kind: ClassifyReader}, head: {kind: Classify, num_classes: 2}, "
                               "train_file: x.tsv}"] if target is paddlepalm.MultiHeadTrainer else [])
    if key in inspect.signature(target.__init__).parameters:
        cfg = resolve(BASE, overrides)  # a version with the feature: the key reaches the constructor
        value = cfg.tasks["intent"].get(key) if "tasks." in override else cfg[override.split(".")[0]][key]
        assert value is not None
    else:
        message = error_of(BASE, overrides)
        assert f"{override.split('=')[0]}: not available in this version of paddlepalm" in message, message


@pytest.mark.parametrize("override", ["train.joint=true", "train.tasks_per_update=2", "tasks.intent.aux=true",
                                      "train.sampling_reference=other"])
def test_multi_task_keys_need_two_tasks(override):
    assert "needs two or more tasks" in error_of(BASE, [override]) or "no task named" in error_of(BASE, [override])


def test_cross_checks_name_the_tasks():
    assert "no task named 'nope'" in error_of(TWO, ["tasks.intent.reuse_head_with=nope"])
    assert "train.joint.0: no task named 'x'" in error_of(TWO, ["train.joint=[[slot, x]]"])
    assert "at least one task must not be auxiliary" in error_of(TWO, ["defaults.aux=true"])
    assert "not an argument here: use the task's `vocab` key" in error_of(
        BASE.replace("{kind: ClassifyReader}", "{kind: ClassifyReader, vocab_path: v.txt}"))
    assert error_of(BASE.replace("    train_file: data/intent.tsv\n", "")).startswith(
        "cfg.yaml:10: tasks.intent.train_file: missing (required; in the task or in `defaults`)")


def test_every_key_is_documented():
    with open(os.path.join(REPO, "docs", "cli.md"), encoding="utf-8") as f:
        docs = f.read()
    missing = [key for key in config.schema_keys() if f"`{key.split('.')[-1]}`" not in docs]
    assert not missing, missing
    for command in ("train", "eval", "predict", "export", "serve", "plot", "ls", "download"):
        assert f"palm {command}" in docs


def test_help_of_palm_and_each_subcommand(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for command in ("train", "eval", "predict", "export", "serve", "plot", "ls", "download"):
        assert re.search(rf"^\s+{command}\s+\S", text, re.M), command
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "usage: palm " + command in capsys.readouterr().out


def test_errors_are_one_line_with_a_non_zero_status(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.replace("epochs: 2", "epochs: two"))
    assert main(["train", str(bad), "-s", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("palm train: error: ") and "train.epochs" in err
    assert main(["eval", str(tmp_path)]) == 2  # a usage error
    assert "not a run directory" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        main(["--debug", "train", str(bad), "-s", str(tmp_path / "run")])


def test_run_directory_refuses_a_non_empty_dir_unless_resume_or_force(tmp_path):
    run = tmp_path / "run"
    assert rd.open_for_training(str(run), resume=False, force=False) is False  # created
    (run / "metrics.jsonl").write_text("")
    with pytest.raises(rd.RunDirError, match="--resume continues the run in it, --force starts it over"):
        rd.open_for_training(str(run), resume=False, force=False)
    with pytest.raises(rd.RunDirError, match="no config.yaml"):
        rd.open_for_training(str(run), resume=True, force=False)
    (run / "config.yaml").write_text("x: 1\n")
    assert rd.open_for_training(str(run), resume=True, force=False) is True
    (run / "notes.txt").write_text("mine")
    with pytest.raises(rd.RunDirError, match="did not write"):
        rd.open_for_training(str(run), resume=False, force=True)
    os.remove(run / "notes.txt")
    assert rd.open_for_training(str(run), resume=False, force=True) is False and os.listdir(run) == []


def test_resume_compares_configs_but_not_the_derived_sizes():
    stored = {"train": {"epochs": 1}, "tasks": {"a": {"head": {"kind": "Classify", "num_classes": 3}}}}
    assert rd.differences({"train": {"epochs": 1}, "tasks": {"a": {"head": {"kind": "Classify"}}}}, stored) == []
    assert rd.differences({"train": {"epochs": 2}, "tasks": {"a": {"head": {"kind": "Match"}}}}, stored) == [
        "train.epochs", "tasks.a.head.kind"]


def test_predict_inputs_raw_lines_pairs_and_tsv(tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_text("a sentence\nquestion one\tquestion two\n\n")
    assert read_inputs(str(raw)) == ["a sentence", ("question one", "question two")]
    tsv = tmp_path / "in.tsv"
    tsv.write_text("label\ttext_a\ttext_b\n1\tx y\tz\n")
    assert read_inputs(str(tsv)) == [("x y", "z")]


def test_derived_sizes_come_from_the_label_map_and_the_backbone(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "vocab.txt").write_text("\n".join(["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]", "a", "b"]) + "\n")
    (tmp_path / "data" / "labels.json").write_text('{"O": 0, "B-X": 1, "I-X": 2}')
    cfg = config.resolve(TWO.replace("num_classes: 3", "num_classes: 3"), str(tmp_path / "cfg.yaml"))
    conf = build.backbone_config(cfg)
    assert conf["vocab_size"] == 7 and cfg["backbone"]["config"]["vocab_size"] == 7  # recorded in the config
    backbone = build.make_backbone(cfg, "train")
    head = build.make_head(cfg, "slot", "train", backbone, conf)
    assert head.num_classes == 3 and cfg.tasks["slot"]["head"] == {"kind": "SequenceLabel", "input_dim": 16,
                                                                    "num_classes": 3}


def test_print_config_shows_the_resolved_config_and_builds_nothing(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(TWO)
    assert main(["train", str(cfg), "-s", str(tmp_path / "run"), "-o", "tasks.slot.batch_size=4", "--print-config"]) == 0
    printed, _ = config.parse_yaml(capsys.readouterr().out, "printed")
    assert printed["tasks"]["slot"]["batch_size"] == 4 and printed["tasks"]["intent"]["batch_size"] == 16
    assert printed["tasks"]["slot"]["train_file"] == str(tmp_path / "data" / "slot.tsv")
    assert not (tmp_path / "run").exists()
