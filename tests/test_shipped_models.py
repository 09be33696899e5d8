"""The models pretrained here and shipped in ``pretrain_models/`` (issue 26): registered in the
downloader's registry with checksums, loaded by their registry name (from a local HTTP mirror
serving the repository, and from the checkout itself when no mirror is set), and fine-tuned."""
import os
import subprocess
import sys

import numpy as np
import pytest

import paddlepalm as palm
from paddlepalm import downloader
from paddlepalm.downloader import DownloadError, MARKER
from paddlepalm.utils.fileio import read_json, read_json_lines, read_state, sha256_of
from http_helper import FileServer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_BYTES = 20 * 1000 * 1000
# the registry names of the models this project pretrained and ships (pretrain_models/<name>/)
EXPECTED = {"mlm-zh-small", "electra-zh-small", "albert-zh-small"}


def shipped_entries():
    entries = downloader.ls("pretrain")
    return [e for e in entries if all(not f["url"].startswith(("http://", "https://")) for f in e["files"])]


SHIPPED = {e["name"]: e for e in shipped_entries()}
BACKBONES = {"electra": palm.backbone.ELECTRA, "albert": palm.backbone.ALBERT}


def saved_backbone(name):
    state = read_state(os.path.join(REPO, "pretrain_models", name, "model.pdparams"))
    return {k[len("backbone."):]: np.asarray(v) for k, v in state.items() if k.startswith("backbone.")}


def assert_holds(backbone, saved):
    held = {k: v.numpy() for k, v in backbone.state_dict().items()}
    assert set(held) == set(saved)
    for key, value in saved.items():
        np.testing.assert_array_equal(held[key], value, err_msg=key)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PALM_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PALM_DOWNLOAD_RETRIES", "0")
    monkeypatch.delenv("PALM_DOWNLOAD_MIRROR", raising=False)
    return tmp_path / "cache" / "pretrain"


def test_the_registry_lists_each_shipped_model_with_the_checksums_of_its_files():
    assert EXPECTED <= set(SHIPPED)
    for name, entry in SHIPPED.items():
        for spec in entry["files"]:
            path = os.path.join(REPO, *spec["url"].split("/"))
            assert spec["url"].startswith(f"pretrain_models/{name}/")
            assert spec["sha256"] == sha256_of(path), f"{path} changed: run tools/build_registry.py"
            assert spec["size"] == os.path.getsize(path) <= MAX_BYTES
        assert os.path.isfile(os.path.join(REPO, "pretrain_models", name, "README.md"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_shipped_model_loads_by_name_through_a_mirror_of_the_repository(cache, monkeypatch, name):
    with FileServer(REPO) as mirror:
        monkeypatch.setenv("PALM_DOWNLOAD_MIRROR", mirror.url)
        kind = SHIPPED[name]["kind"]
        backbone = BACKBONES[kind].from_pretrained(name)
        assert sorted(r["path"] for r in mirror.requests) == sorted(
            f"/pretrain_models/{name}/{f}" for f in ("config.json", "vocab.txt", "model.pdparams"))
        assert_holds(backbone, saved_backbone(name))
        assert backbone.vocab_path == str(cache / name / "vocab.txt")
        count = len(mirror.requests)
        again = BACKBONES[kind].from_pretrained(name)  # from the cache: no request
        assert len(mirror.requests) == count
        assert_holds(again, saved_backbone(name))


def test_without_a_mirror_the_model_is_taken_from_the_checkout_and_checked(cache):
    name = sorted(EXPECTED)[0]
    trainer = palm.Trainer("cls")
    config = dict(read_json(os.path.join(REPO, "pretrain_models", name, "config.json")))
    backbone = BACKBONES[SHIPPED[name]["kind"]].from_config(config)
    trainer.build_forward(backbone, palm.head.Classify(2, backbone.hidden_size, 0.1))
    report = trainer.load_pretrain(name)
    assert report.source == str(cache / name) and not report.missing
    assert os.path.isfile(cache / name / MARKER)
    assert_holds(backbone, saved_backbone(name))


def test_a_repository_model_missing_from_the_checkout_says_how_to_get_it(cache):
    with downloader.private_registry():
        downloader.register("pretrain", {"name": "not-shipped-here", "kind": "electra", "format": "paddlepalm-checkpoint",
                                         "files": [{"url": "pretrain_models/not-shipped-here/config.json"}]})
        with pytest.raises(DownloadError, match="PALM_DOWNLOAD_MIRROR"):
            palm.backbone.ELECTRA.from_pretrained("not-shipped-here")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_palm_train_fine_tunes_a_shipped_model_named_in_its_config(tmp_path, name):
    """examples/configs/finetune-zh-small.yaml names the model by its registry name only (each
    shipped model by ``-o backbone.pretrained=NAME``); 30 updates on the generated sample move the
    weights away from the shipped ones and the loss falls."""
    env = dict(os.environ, PYTHONPATH=REPO, MKL_NUM_THREADS="1", PALM_HOME=str(tmp_path / "cache"))
    env.pop("PALM_DOWNLOAD_MIRROR", None)
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "paddlepalm.cli", "train",
                           os.path.join(REPO, "examples", "configs", "finetune-zh-small.yaml"), "-s", str(run),
                           "--no-progress", "-o", "train.max_steps=30", "-o", "train.eval_steps=0",
                           "-o", "train.print_steps=10", "-o", f"backbone.pretrained={name}"],
                          capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "read back equal to the source's values" in done.stderr
    state = read_state(str(run / "checkpoints" / "ckpt.step30" / "model.pdparams"))
    saved = saved_backbone(name)
    moved = [k for k, v in saved.items() if not np.array_equal(np.asarray(state["backbone." + k]), v)]
    assert len(moved) > len(saved) // 2
    losses = [r["tasks"]["cls"]["loss"] for r in read_json_lines(str(run / "metrics.jsonl")) if r["event"] == "train"]
    assert len(losses) == 3 and all(np.isfinite(losses)) and losses[-1] < losses[0]
