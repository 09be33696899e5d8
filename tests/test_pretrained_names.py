"""Pretrained models named by their registry name wherever a path goes: ``<Backbone>.from_pretrained``,
``trainer.load_pretrain`` and ``backbone.pretrained`` in ``palm train``. Each model is a tiny release
served by a local HTTP server (the mirror) and registered in a private copy of the registry; the
cache is a temporary ``PALM_HOME``."""
import hashlib
import json
import os
import shutil
import socket

import numpy as np
import pytest
import yaml

import paddlepalm as palm
from paddlepalm import checkpoint, downloader
from paddlepalm.cli import main
from paddlepalm.downloader import ChecksumError, DownloadError, MARKER, PretrainedNotFoundError
from paddlepalm.downloader.names import BACKBONE_OF_KIND
from paddlepalm.pretrained.lod_tensor import write_params_dir
from http_helper import UPSTREAM, model_mirror, publish
from pretrained_fixtures import (VOCAB, make_backbone, released_elmo, tar_directory, write_fluid_release,
                                 write_paddlenlp_release)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME = "test-tiny-ernie"
CLASSES = {"ernie": palm.backbone.ERNIE, "bert": palm.backbone.BERT}


def sha256(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """The mirror (a local server), a private registry, the cache in tmp_path, no retries."""
    with model_mirror(tmp_path / "mirror", monkeypatch, retries=0, home=tmp_path / "cache") as server:
        server.cache = tmp_path / "cache" / "pretrain"
        yield server


def paddlenlp_model(server, tmp_path, name=NAME, seed=11, weights_sha=None):
    """A paddlenlp-style entry: model_state.pdparams + vocab.txt, the config in the registry."""
    source, config = make_backbone("ernie", seed=seed)
    release = write_paddlenlp_release(source, config, str(tmp_path / f"release-{name}"))
    weights = os.path.join(release, "model_state.pdparams")
    files = [{"url": publish(server, f"nlp/{name}/{name}.pdparams", weights), "save_as": "model_state.pdparams",
              "sha256": weights_sha or sha256(weights)},
             {"url": publish(server, f"nlp/{name}/{name}_vocab.txt", os.path.join(release, "vocab.txt")),
              "save_as": "vocab.txt", "sha256": sha256(os.path.join(release, "vocab.txt"))}]
    downloader.register("pretrain", {"name": name, "kind": "ernie", "format": "paddlenlp-pdparams",
                                     "files": files, "config": config, "config_file": "model_config.json"})
    return source


def archive_model(server, tmp_path, directory, name, kind, top=True, **extra):
    """A PALM-style entry: one .tar.gz (with a top folder, as BERT's)."""
    archive = tar_directory(directory, str(tmp_path / f"{name}.tar.gz"), top=name if top else None)
    url = publish(server, f"archives/{name}.tar.gz", archive)
    downloader.register("pretrain", {"name": name, "kind": kind, "format": "paddle-params-dir",
                                     "files": [{"url": url, "sha256": sha256(archive)}], **extra})


def fluid_model(server, tmp_path, kind, seed):
    source, config = make_backbone(kind, seed=seed)
    release = write_fluid_release(source, config, str(tmp_path / f"fluid-{kind}"), f"{kind}_config.json")
    archive_model(server, tmp_path, release, NAME, kind)
    return source


def assert_same_weights(backbone, state):
    own = backbone.state_dict()
    assert set(own) == set(state)
    for key, value in state.items():
        np.testing.assert_array_equal(own[key].numpy(), np.asarray(value.numpy() if hasattr(value, "numpy") else value),
                                      err_msg=key)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the Python API ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,layout", [("ernie", "paddlenlp"), ("ernie", "archive"), ("bert", "archive")])
def test_from_pretrained_by_name_loads_the_released_weights_then_uses_the_cache(hub, tmp_path, kind, layout):
    if layout == "paddlenlp":
        source = paddlenlp_model(hub, tmp_path)
    else:
        source = fluid_model(hub, tmp_path, kind, seed=21)
    backbone = CLASSES[kind].from_pretrained(NAME)
    assert_same_weights(backbone, source.state_dict())
    folder = hub.cache / NAME
    assert backbone.vocab_path == str(folder / "vocab.txt") and backbone.phase == "train"
    assert os.path.isfile(folder / MARKER)

    count = len(hub.requests)
    again = CLASSES[kind].from_pretrained(NAME.upper(), phase="predict", hidden_dropout_prob=0.0)
    assert again.config["hidden_dropout_prob"] == 0.0 and not again.training
    trainer = palm.Trainer("cls")
    target = CLASSES[kind].from_config(dict(source.config), phase="predict")
    trainer.build_predict_forward(target, palm.head.Classify(2, 16, phase="predict"))
    report = trainer.load_pretrain(NAME)
    assert report.source == str(folder) and not report.missing
    assert_same_weights(target, source.state_dict())
    assert len(hub.requests) == count  # the cache: no request


@pytest.mark.parametrize("kind", ["albert", "electra"])
def test_albert_and_electra_from_pretrained_by_name(hub, tmp_path, kind):
    shipped = os.path.join(REPO, "pretrain_models", f"{kind}-zh-tiny")
    archive_model(hub, tmp_path, shipped, f"test-{kind}", kind)
    cls = {"albert": palm.backbone.ALBERT, "electra": palm.backbone.ELECTRA}[kind]
    backbone = cls.from_pretrained(f"test-{kind}")
    state = checkpoint.load_model_state(shipped)
    assert_same_weights(backbone, {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")})
    assert backbone.vocab_path.endswith(os.path.join(f"test-{kind}", "vocab.txt"))


def test_elmo_from_pretrained_by_name_builds_the_registry_architecture(hub, tmp_path):
    released = released_elmo(7)
    write_params_dir(str(tmp_path / "elmo" / "checkpoint"), released)
    architecture = {"vocab_size": 12, "embedding_size": 4, "cell_size": 6, "projection_size": 4, "num_layers": 2,
                    "cell_clip": 3.0, "proj_clip": 3.0, "word_level": True}
    archive_model(hub, tmp_path, str(tmp_path / "elmo" / "checkpoint"), "test-elmo", "elmo", top=False,
                  architecture=architecture)
    elmo = palm.backbone.ELMo.from_pretrained("test-elmo")
    np.testing.assert_array_equal(elmo.word_embedding.weight.numpy(), released["embedding_para"])
    np.testing.assert_array_equal(elmo.lstm.fw[0].input_weight.numpy(), released["fw_layer1_gate_w"])


def test_an_existing_path_wins_over_a_name(hub, tmp_path, monkeypatch):
    paddlenlp_model(hub, tmp_path, seed=11)
    local_source, config = make_backbone("ernie", seed=12)
    (tmp_path / "here").mkdir()
    write_paddlenlp_release(local_source, config, str(tmp_path / "here" / NAME))
    monkeypatch.chdir(tmp_path / "here")
    backbone = palm.backbone.ERNIE.from_pretrained(NAME)
    assert_same_weights(backbone, local_source.state_dict())
    assert hub.requests == [] and not os.path.exists(hub.cache)


def test_an_interrupted_download_resumes_where_it_stopped(hub, tmp_path):
    source = paddlenlp_model(hub, tmp_path)
    weights_path = f"/nlp/{NAME}/{NAME}.pdparams"
    half = os.path.getsize(hub.dir / weights_path.lstrip("/")) // 2
    hub.cut_once[weights_path] = half
    with pytest.raises(DownloadError, match="failed to fetch"):
        palm.backbone.ERNIE.from_pretrained(NAME)
    part = hub.cache / NAME / "model_state.pdparams.part"
    assert os.path.getsize(part) == half and not os.path.exists(hub.cache / NAME / MARKER)
    backbone = palm.backbone.ERNIE.from_pretrained(NAME)
    assert [r["range"] for r in hub.requests if r["path"] == weights_path] == [None, f"bytes={half}-"]
    assert_same_weights(backbone, source.state_dict())
    assert not os.path.exists(part)


def test_a_wrong_checksum_fails_and_leaves_nothing_that_looks_complete(hub, tmp_path):
    paddlenlp_model(hub, tmp_path, weights_sha="0" * 64)
    for attempt in range(2):  # the failed download is not taken for a complete one
        count = len(hub.requests)
        with pytest.raises(ChecksumError, match=r"pretrained model 'test-tiny-ernie'.*sha256 .* does not match"):
            palm.backbone.ERNIE.from_pretrained(NAME)
        assert len(hub.requests) == count + 1
        folder = hub.cache / NAME
        assert not [n for n in os.listdir(folder) if not n.startswith(".")]  # no weights, no .part
        assert not os.path.exists(folder / MARKER)


def test_offline_the_message_names_the_url_the_cache_path_and_the_mirror(hub, tmp_path, monkeypatch):
    source = paddlenlp_model(hub, tmp_path)
    port = closed_port()
    monkeypatch.setenv("PALM_DOWNLOAD_MIRROR", f"http://127.0.0.1:{port}")
    with pytest.raises(DownloadError) as caught:
        palm.backbone.ERNIE.from_pretrained(NAME)
    message = str(caught.value)
    folder = hub.cache / NAME
    assert f"http://127.0.0.1:{port}/nlp/{NAME}/{NAME}.pdparams" in message  # the URL that failed
    assert f"{UPSTREAM}/nlp/{NAME}/{NAME}.pdparams" in message  # what to fetch elsewhere
    assert f"copy it to {folder / 'model_state.pdparams'}" in message  # the exact cache path
    assert "PALM_DOWNLOAD_MIRROR" in message and f"/nlp/{NAME}/{NAME}.pdparams)" in message
    assert f"palm download pretrain {NAME} --path DIR" in message
    # placed by hand where the message says: used, verified, with no network
    release = tmp_path / f"release-{NAME}"
    for name in ("model_state.pdparams", "vocab.txt"):
        shutil.copyfile(release / name, folder / name)
    assert_same_weights(palm.backbone.ERNIE.from_pretrained(NAME), source.state_dict())


def test_misspelt_names_suggest_the_closest_and_request_nothing(hub, tmp_path):
    paddlenlp_model(hub, tmp_path)
    with pytest.raises(PretrainedNotFoundError, match=r"'test-tiny-erine' is neither an existing path nor a "
                                                      r"pretrained model name; did you mean 'test-tiny-ernie'\?"):
        palm.backbone.ERNIE.from_pretrained("test-tiny-erine")
    trainer = palm.Trainer("cls")
    trainer.build_predict_forward(make_backbone("ernie", 1)[0], palm.head.Classify(2, 16, phase="predict"))
    with pytest.raises(FileNotFoundError, match="did you mean 'ernie-3.0-medium-zh'"):
        trainer.load_pretrain("ernie-3.0-medum-zh")
    with pytest.raises(FileNotFoundError, match="pretrained model path does not exist"):
        trainer.load_pretrain(str(tmp_path / "no" / "such" / "folder"))  # a path stays a path
    assert hub.requests == []


def test_a_named_model_of_another_kind_is_refused_before_downloading(hub, tmp_path):
    paddlenlp_model(hub, tmp_path)
    with pytest.raises(ValueError, match="'test-tiny-ernie' is a ernie model, not bert: use palm.backbone.ERNIE"):
        palm.backbone.BERT.from_pretrained(NAME)
    assert hub.requests == []
    for cls_name in BACKBONE_OF_KIND.values():
        assert getattr(palm.backbone, cls_name).kind in BACKBONE_OF_KIND


# ---- the command line -------------------------------------------------------------------------------

CONFIG = """\
train: {max_steps: 2, print_steps: 1}
tasks:
  intent:
    reader: {kind: ClassifyReader, max_len: 16}
    head: {kind: Classify, num_classes: 2}
    train_file: train.tsv
    dev_file: train.tsv
    batch_size: 4
"""


@pytest.fixture
def cli_config(tmp_path):
    rows = ["label\ttext_a"] + [f"{i % 2}\t{' '.join(VOCAB[5 + (i * 7 + j) % 35] for j in range(6))}"
                                for i in range(8)]
    (tmp_path / "train.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "cfg.yaml").write_text(CONFIG)
    return str(tmp_path / "cfg.yaml")


def test_palm_train_with_a_name_supplies_config_and_vocab_and_records_them(hub, tmp_path, cli_config, capsys):
    paddlenlp_model(hub, tmp_path)
    run = tmp_path / "run"
    assert main(["train", cli_config, "-s", str(run), "-o", f"backbone.pretrained={NAME}", "--no-progress"]) == 0
    folder = hub.cache / NAME
    assert f"backbone parameters from {folder} (paddlenlp model_state.pdparams); 0 missing" in capsys.readouterr().err  # logs go to stderr
    recorded = yaml.safe_load((run / "config.yaml").read_text())
    assert recorded["backbone"]["kind"] == "ERNIE"
    assert recorded["backbone"]["pretrained"] == str(folder)
    assert recorded["backbone"]["config_file"] == str(folder / "model_config.json")
    assert recorded["tasks"]["intent"]["vocab"] == str(folder / "vocab.txt")
    steps = [json.loads(line)["step"] for line in open(run / "metrics.jsonl") if '"event": "train"' in line]
    assert steps and max(steps) == 2

    count = len(hub.requests)  # from here on, the cache and the run's config.yaml: no request
    assert main(["train", cli_config, "-s", str(tmp_path / "again"), "-o", f"backbone.pretrained={NAME}",
                 "--no-progress"]) == 0
    assert main(["eval", str(run)]) == 0
    assert len(hub.requests) == count


def test_palm_usage_errors_for_names_exit_2_with_a_suggestion(hub, tmp_path, cli_config, capsys):
    paddlenlp_model(hub, tmp_path)
    cases = [(["download", "pretrain", "ernie-3.0-medum-zh"], "did you mean 'ernie-3.0-medium-zh'"),
             (["download", "pretrian", NAME], "did you mean 'pretrain'"),
             (["train", cli_config, "-s", str(tmp_path / "r1"), "-o", "backbone.pretrained=test-tiny-erine"],
              "backbone.pretrained: 'test-tiny-erine' is neither an existing path nor a pretrained model name; "
              "did you mean 'test-tiny-ernie'?"),
             (["train", cli_config, "-s", str(tmp_path / "r2"), "-o", "backbone.kind=BERT", "-o",
               f"backbone.pretrained={NAME}"], "backbone.kind: BERT, but backbone.pretrained 'test-tiny-ernie' is "
                                               "a ERNIE model"),
             (["train", cli_config, "-s", str(tmp_path / "r3"), "-o", "backbone.pretrained=XLNet-cased-base"],
              "has no xlnet backbone")]
    for argv, expected in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, err
        assert "\"'" not in err  # the KeyError quoting is gone
    assert hub.requests == []
