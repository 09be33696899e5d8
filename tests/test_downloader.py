"""downloader: registry listing, downloads through a local mirror, resume, errors, unsafe archives."""
import hashlib
import io
import json
import os
import shutil
import socket
import tarfile

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from paddlepalm import downloader
from paddlepalm.downloader import ChecksumError, DownloadError, UnsafeArchiveError
from paddlepalm.downloader.extract import safe_extract
from paddlepalm.pretrained import load_pretrained_backbone
from paddlepalm.pretrained.lod_tensor import write_params_dir
from http_helper import UPSTREAM, model_mirror, publish
from pretrained_fixtures import (TinyELMo, make_backbone, outputs, released_elmo, tar_directory,
                                 write_fluid_release, write_paddlenlp_release)


PALM_NAMES = [
    "RoBERTa-zh-base", "RoBERTa-zh-large", "ERNIE-v2-en-base", "ERNIE-v2-en-large", "XLNet-cased-base",
    "XLNet-cased-large", "ERNIE-v1-zh-base", "ERNIE-v1-zh-base-max-len-512",
    "BERT-en-uncased-large-whole-word-masking", "BERT-en-cased-large-whole-word-masking", "BERT-en-uncased-base",
    "BERT-en-uncased-large", "BERT-en-cased-base", "BERT-en-cased-large", "BERT-multilingual-uncased-base",
    "BERT-multilingual-cased-base", "BERT-zh-base"]


def sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A local server as PALM_DOWNLOAD_MIRROR, a private copy of the registry, short retries."""
    with model_mirror(tmp_path / "mirror", monkeypatch, retries=2) as server:
        yield server


def register_archive(server, name, archive, kind="ernie", sha=True, fmt="paddle-params-dir"):
    url = publish(server, f"palm-tests/{os.path.basename(archive)}", archive)
    downloader.register("pretrain", {"name": name, "kind": kind, "format": fmt,
                                     "files": [{"url": url, "sha256": sha256(archive) if sha else None}]})
    return url


def files_under(path) -> list:
    return sorted(os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs)


# ---- acceptance 1 -------------------------------------------------------------------------------

def test_ls_lists_palm_paddlenlp_and_elmo_with_kind_and_size(capsys):
    entries = downloader.ls("pretrain")
    names = {e["name"] for e in entries}
    assert set(PALM_NAMES) <= names
    for name in ("ernie-1.0-base-zh", "ernie-3.0-base-zh", "ernie-3.0-nano-zh", "albert-chinese-tiny",
                 "albert-chinese-xxlarge", "electra-small", "electra-base", "chinese-electra-small",
                 "chinese-electra-base", "bert-base-chinese", "ELMo-zh-baike"):
        assert name in names
    printed = capsys.readouterr().out
    assert printed.startswith("Available pretrain items:")
    line = next(l for l in printed.splitlines() if "ERNIE-v1-zh-base " in l)
    assert "ernie" in line and "MB" in line
    elmo = downloader.entry("pretrain", "ELMo-zh-baike")
    assert elmo["files"][0]["url"] == "https://dureader.gz.bcebos.com/elmo/baike_elmo_checkpoint.tar.gz"
    assert downloader.entry("pretrain", "BERT-zh-base")["files"][0]["url"] == \
        "https://bert-models.bj.bcebos.com/chinese_L-12_H-768_A-12.tar.gz"
    for e in entries:
        url = e["files"][0]["url"]
        assert e["kind"] and e["license"]
        # upstream URLs, or for the models pretrained here a repository path with its checksum
        assert url.startswith("http") or (url.startswith("pretrain_models/") and e["files"][0]["sha256"])


# ---- acceptance 2: each released format through the mirror, same outputs -------------------------

def test_fluid_release_downloads_through_mirror_and_loads_identically(mirror, tmp_path):
    source, config = make_backbone("ernie", seed=31)
    release = write_fluid_release(source, config, str(tmp_path / "release"))
    archive = tar_directory(release, str(tmp_path / "ERNIE_tiny.tar.gz"), top="ERNIE_tiny")
    register_archive(mirror, "test-ernie-fluid", archive)

    path = downloader.download("pretrain", "test-ernie-fluid", str(tmp_path / "models"))
    assert path == str(tmp_path / "models" / "pretrain" / "test-ernie-fluid")
    assert os.path.isdir(os.path.join(path, "params")) and os.path.isfile(os.path.join(path, "vocab.txt"))
    assert not os.path.exists(os.path.join(path, "ERNIE_tiny.tar.gz"))
    assert mirror.requests[-1]["path"] == "/palm-tests/ERNIE_tiny.tar.gz"

    config_back = json.load(open(os.path.join(path, "ernie_config.json")))
    target = palm.backbone.ERNIE.from_config(config_back, phase="predict")
    trainer = palm.Trainer("cls")
    trainer.build_predict_forward(target, palm.head.Classify(2, 16, phase="predict"))
    report = trainer.load_pretrain(path)
    assert not report.missing
    for key in ("encoder_outputs", "sentence_embedding"):
        np.testing.assert_array_equal(outputs(target)[key], outputs(source)[key])

    count = len(mirror.requests)
    assert downloader.download("pretrain", "test-ernie-fluid", str(tmp_path / "models")) == path
    assert len(mirror.requests) == count  # complete: skipped


def test_paddlenlp_release_downloads_with_palm_home(mirror, tmp_path, monkeypatch):
    source, config = make_backbone("ernie", seed=41)
    release = write_paddlenlp_release(source, config, str(tmp_path / "nlp"))
    weights = publish(mirror, "paddlenlp/tiny/tiny_ernie.pdparams", os.path.join(release, "model_state.pdparams"))
    vocab = publish(mirror, "paddlenlp/tiny/vocab.txt", os.path.join(release, "vocab.txt"))
    downloader.register("pretrain", {
        "name": "test-ernie-nlp", "kind": "ernie", "format": "paddlenlp-pdparams", "config": config,
        "files": [{"url": weights, "save_as": "model_state.pdparams"}, {"url": vocab, "save_as": "vocab.txt"}]})
    monkeypatch.setenv("PALM_HOME", str(tmp_path / "home"))
    path = downloader.download("pretrain", "test-ernie-nlp")
    assert path == str(tmp_path / "home" / "pretrain" / "test-ernie-nlp")
    assert sorted(os.listdir(path)) == [".palm_download.json", "model_config.json", "model_state.pdparams",
                                        "vocab.txt"]
    target = palm.backbone.ERNIE.from_config(json.load(open(os.path.join(path, "model_config.json"))),
                                             phase="predict")
    assert load_pretrained_backbone(target, path).format == "paddlenlp model_state.pdparams"
    np.testing.assert_array_equal(outputs(target)["encoder_outputs"], outputs(source)["encoder_outputs"])


def test_elmo_release_downloads_and_loads(mirror, tmp_path):
    released = released_elmo(7)
    write_params_dir(str(tmp_path / "elmo" / "checkpoint"), released)
    archive = tar_directory(str(tmp_path / "elmo"), str(tmp_path / "baike_elmo_checkpoint.tar.gz"))
    register_archive(mirror, "test-elmo", archive, kind="elmo", fmt="paddle-elmo-checkpoint")
    path = downloader.download("pretrain", "test-elmo", str(tmp_path / "models"))
    model = TinyELMo()
    report = load_pretrained_backbone(model, path)
    assert report.format == "Paddle ELMo checkpoint" and not report.missing
    np.testing.assert_array_equal(model.embedding.weight.numpy(), released["embedding_para"])


# ---- integrity ------------------------------------------------------------------------------------

def test_checksum_mismatch_is_refused_and_leaves_no_file(mirror, tmp_path):
    source, config = make_backbone("bert", seed=2)
    archive = tar_directory(write_fluid_release(source, config, str(tmp_path / "r"), "bert_config.json"),
                            str(tmp_path / "bert_tiny.tar.gz"))
    url = publish(mirror, "palm-tests/bert_tiny.tar.gz", archive)
    downloader.register("pretrain", {"name": "test-bad-sum", "kind": "bert",
                                     "files": [{"url": url, "sha256": "0" * 64}]})
    with pytest.raises(ChecksumError, match="sha256 .* does not match"):
        downloader.download("pretrain", "test-bad-sum", str(tmp_path / "models"))
    assert files_under(tmp_path / "models") == []


def test_truncated_archive_without_checksum_is_refused(mirror, tmp_path):
    source, config = make_backbone("bert", seed=2)
    archive = tar_directory(write_fluid_release(source, config, str(tmp_path / "r"), "bert_config.json"),
                            str(tmp_path / "cut.tar.gz"))
    data = open(archive, "rb").read()
    open(archive, "wb").write(data[: len(data) // 2])
    register_archive(mirror, "test-cut", archive, sha=False)
    with pytest.raises(DownloadError, match="does not read"):
        downloader.download("pretrain", "test-cut", str(tmp_path / "models"))
    assert files_under(tmp_path / "models") == []


def test_cut_transfer_resumes_with_range(mirror, tmp_path):
    source, config = make_backbone("ernie", seed=51)
    archive = tar_directory(write_fluid_release(source, config, str(tmp_path / "r")), str(tmp_path / "resume.tar.gz"))
    register_archive(mirror, "test-resume", archive)
    half = os.path.getsize(archive) // 2
    mirror.cut_once["/palm-tests/resume.tar.gz"] = half
    path = downloader.download("pretrain", "test-resume", str(tmp_path / "models"), backoff=0.01)
    ranges = [r["range"] for r in mirror.requests if r["path"] == "/palm-tests/resume.tar.gz"]
    assert ranges == [None, f"bytes={half}-"]
    target, _ = make_backbone("ernie", seed=52)
    load_pretrained_backbone(target, path)
    np.testing.assert_array_equal(outputs(target)["encoder_outputs"], outputs(source)["encoder_outputs"])


def test_404_gives_a_clear_error(mirror, tmp_path):
    downloader.register("pretrain", {"name": "test-missing", "kind": "ernie",
                                     "files": [{"url": f"{UPSTREAM}/palm-tests/nothing.tar.gz"}]})
    with pytest.raises(DownloadError, match=r"HTTP 404 .*nothing.tar.gz.*not there"):
        downloader.download("pretrain", "test-missing", str(tmp_path / "models"))
    assert len(mirror.requests) == 1  # a 404 is not retried


def test_timeout_gives_a_clear_error(mirror, tmp_path):
    vocab = tmp_path / "v.txt"
    vocab.write_text("a\n")
    url = publish(mirror, "palm-tests/slow/vocab.txt", str(vocab))
    downloader.register("pretrain", {"name": "test-slow", "kind": "ernie", "files": [{"url": url}]})
    mirror.delay_s = 1.0
    with pytest.raises(DownloadError, match=r"timed out fetching .*slow/vocab.txt .* after 2 attempts"):
        downloader.download("pretrain", "test-slow", str(tmp_path / "models"), timeout=0.2, retries=1, backoff=0.01)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_error_says_how_to_place_files_and_hand_placed_archive_is_used(mirror, tmp_path, monkeypatch):
    source, config = make_backbone("ernie", seed=61)
    archive = tar_directory(write_fluid_release(source, config, str(tmp_path / "r")), str(tmp_path / "hand.tar.gz"))
    register_archive(mirror, "test-offline", archive)
    monkeypatch.setenv("PALM_DOWNLOAD_MIRROR", f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(DownloadError, match=r"offline.*PALM_DOWNLOAD_MIRROR.*place the file by hand.*hand.tar.gz"):
        downloader.download("pretrain", "test-offline", str(tmp_path / "models"), retries=0)
    target_dir = tmp_path / "models" / "pretrain" / "test-offline"
    shutil.copyfile(archive, target_dir / "hand.tar.gz")
    path = downloader.download("pretrain", "test-offline", str(tmp_path / "models"), retries=0)
    assert os.path.isdir(os.path.join(path, "params"))


# ---- unsafe archives ---------------------------------------------------------------------------------

def _tar_with(path: str, members) -> str:
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(_info("ok.txt", size=2), io.BytesIO(b"ok"))
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _info(name, size=0, kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname = size, kind, link
    return info


UNSAFE = {
    "dotdot": [(_info("../escaped.txt", 4), b"evil")],
    "nested-dotdot": [(_info("a/../../escaped.txt", 4), b"evil")],
    "absolute": [(_info("/tmp/palm_escaped_absolute.txt", 4), b"evil")],
    "symlink-out": [(_info("link", kind=tarfile.SYMTYPE, link="../outside"), None),
                    (_info("link/escaped.txt", 4), b"evil")],
    "symlink-abs": [(_info("link", kind=tarfile.SYMTYPE, link="/etc"), None)],
    "through-link": [(_info("inner", kind=tarfile.SYMTYPE, link="sub"), None),
                     (_info("inner/escaped.txt", 4), b"evil")],
    "hardlink-out": [(_info("hard", kind=tarfile.LNKTYPE, link="../outside/secret"), None)],
    "device": [(_info("dev", kind=tarfile.CHRTYPE), None)],
    "fifo": [(_info("pipe", kind=tarfile.FIFOTYPE), None)],
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_archive_is_refused_and_nothing_is_written(mirror, tmp_path, case):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("keep")
    archive = _tar_with(str(tmp_path / f"{case}.tar.gz"), UNSAFE[case])
    register_archive(mirror, f"test-unsafe-{case}", archive)
    models = tmp_path / "models"
    with pytest.raises(UnsafeArchiveError, match="refused member"):
        downloader.download("pretrain", f"test-unsafe-{case}", str(models))
    target = models / "pretrain" / f"test-unsafe-{case}"
    assert files_under(target) == []
    assert files_under(outside) == ["secret"] and (outside / "secret").read_text() == "keep"
    assert not (tmp_path / "escaped.txt").exists() and not (models / "pretrain" / "escaped.txt").exists()
    assert not os.path.exists("/tmp/palm_escaped_absolute.txt")


def test_safe_extract_flattens_one_top_folder_and_keeps_inner_links(tmp_path):
    src = tmp_path / "src" / "top"
    (src / "params").mkdir(parents=True)
    (src / "params" / "w").write_text("x")
    os.symlink("params/w", src / "alias")
    archive = tar_directory(str(tmp_path / "src"), str(tmp_path / "a.tar.gz"))
    safe_extract(archive, str(tmp_path / "out"))
    assert sorted(os.listdir(tmp_path / "out")) == ["alias", "params"]
    assert (tmp_path / "out" / "alias").read_text() == "x"
