"""Loading released formats into our backbones: old fluid params/, paddlenlp, ELMo names, safety."""
import io
import json
import os
import pickle
import tarfile

import numpy as np
import paddle
import pytest
from paddle.base import core

import paddlepalm as palm
from paddlepalm.pretrained import elmo_names, load_pretrained_backbone
from paddlepalm.pretrained.lod_tensor import (TensorFormatError, decode_tensor_desc, encode_tensor_desc,
                                              load_tensor_file, read_params_dir, save_tensor_file,
                                              write_params_dir)
from paddlepalm.utils.safe_pickle import UnsafePickleError, load_state_dict
from pretrained_fixtures import (E, H, TinyELMo, lstmp_reference, make_backbone, outputs, released_elmo,
                                 write_fluid_release, write_paddlenlp_release, write_vocab)


# ---- the old tensor format -------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "int32", "float16", "uint8"])
def test_tensor_file_round_trip(tmp_path, dtype):
    array = (np.random.RandomState(0).rand(3, 4, 2) * 100).astype(dtype)
    save_tensor_file(str(tmp_path / "v"), array)
    back = load_tensor_file(str(tmp_path / "v"))
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_tensor_file_matches_paddles_own_serializer(tmp_path):
    """Paddle's C++ writer and reader (``save/load_dense_tensor``) agree with ours byte for byte."""
    array = np.random.RandomState(1).randn(5, 7).astype("float32")
    ours = str(tmp_path / "ours")
    save_tensor_file(ours, array)
    theirs = str(tmp_path / "theirs")
    tensor = paddle.to_tensor(array)  # keep a reference: the C++ call borrows its storage
    core.save_dense_tensor(tensor.value().get_tensor(), theirs)
    assert open(ours, "rb").read() == open(theirs, "rb").read()
    np.testing.assert_array_equal(load_tensor_file(theirs), array)
    # paddle.load falls back to the C++ tensor reader for a file that is not a pickle
    np.testing.assert_array_equal(np.asarray(paddle.load(ours, return_numpy=True)), array)


def test_tensor_desc_accepts_packed_dims_and_scalars():
    assert decode_tensor_desc(encode_tensor_desc(5, [3, 300])) == (5, [3, 300])
    packed = b"\x08\x05\x12\x03\x02\xac\x02"  # dims [2, 300] packed
    assert decode_tensor_desc(packed) == (5, [2, 300])


def test_truncated_tensor_file_is_refused(tmp_path):
    path = str(tmp_path / "v")
    save_tensor_file(path, np.ones((4, 4), "float32"))
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-5])
    with pytest.raises(TensorFormatError, match="ends inside the tensor data"):
        load_tensor_file(path)


# ---- acceptance 3: old per-variable params/ gives identical outputs ---------------------------

@pytest.mark.parametrize("kind", ["ernie", "bert"])
def test_old_params_directory_gives_identical_outputs(tmp_path, kind):
    source, config = make_backbone(kind, seed=11)
    release = write_fluid_release(source, config, str(tmp_path / "release"),
                                  "ernie_config.json" if kind == "ernie" else "bert_config.json")
    target, _ = make_backbone(kind, seed=99)
    assert not np.allclose(outputs(target)["encoder_outputs"], outputs(source)["encoder_outputs"])
    report = load_pretrained_backbone(target, release)
    assert report.format == "fluid params/ directory"
    assert not report.missing and not report.mismatched
    assert "mask_lm_trans_fc.w_0" in report.unexpected and "next_sent_fc.b_0" in report.unexpected
    want, got = outputs(source), outputs(target)
    for name in ("encoder_outputs", "sentence_embedding", "word_embedding"):
        np.testing.assert_array_equal(got[name], want[name])


def test_palm_converted_archive_is_read(tmp_path):
    """PALM's downloader re-packed params/ into params/__palmmodel__ with __paddlepalm_ prefixes."""
    source, config = make_backbone("ernie", seed=5)
    release = write_fluid_release(source, config, str(tmp_path / "plain"))
    palm_dir = tmp_path / "palm" / "params"
    palm_dir.mkdir(parents=True)
    with tarfile.open(palm_dir / "__palmmodel__", "w:gz") as tar:
        for name in os.listdir(os.path.join(release, "params")):
            tar.add(os.path.join(release, "params", name), "__paddlepalm_" + name)
    target, _ = make_backbone("ernie", seed=6)
    load_pretrained_backbone(target, str(tmp_path / "palm"))
    np.testing.assert_array_equal(outputs(target)["encoder_outputs"], outputs(source)["encoder_outputs"])


def test_paddlenlp_release_and_our_checkpoint_load(tmp_path):
    source, config = make_backbone("ernie", seed=3)
    release = write_paddlenlp_release(source, config, str(tmp_path / "nlp"))
    target, _ = make_backbone("ernie", seed=4)
    report = load_pretrained_backbone(target, release)
    assert report.format == "paddlenlp model_state.pdparams" and not report.missing
    np.testing.assert_array_equal(outputs(target)["encoder_outputs"], outputs(source)["encoder_outputs"])

    ckpt = palm.checkpoint.save_checkpoint(str(tmp_path / "ckpt.step1"), _Wrapper(source))
    again, _ = make_backbone("ernie", seed=8)
    assert load_pretrained_backbone(again, ckpt).format == "paddlepalm checkpoint"
    np.testing.assert_array_equal(outputs(again)["encoder_outputs"], outputs(source)["encoder_outputs"])


class _Wrapper(paddle.nn.Layer):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone


# ---- acceptance 4: wrong path / nothing matches -----------------------------------------------

def test_wrong_path_raises_naming_expected_and_found(tmp_path):
    backbone, _ = make_backbone("ernie", seed=1)
    with pytest.raises(FileNotFoundError, match="does not exist.*expected.*params/"):
        load_pretrained_backbone(backbone, str(tmp_path / "nowhere"))
    write_vocab(str(tmp_path / "only_vocab"))
    with pytest.raises(FileNotFoundError, match=r"expected .*model_state.pdparams.*found \[vocab.txt\]"):
        load_pretrained_backbone(backbone, str(tmp_path / "only_vocab"))


def test_checkpoint_with_no_matching_names_raises(tmp_path):
    backbone, _ = make_backbone("ernie", seed=1)
    paddle.save({"foo.weight": np.ones((2, 2), "float32")}, str(tmp_path / "model_state.pdparams"))
    with pytest.raises(ValueError, match=r"expects names like \['model\.embeddings.*the source has 1 entries like \['foo.weight'\]"):
        load_pretrained_backbone(backbone, str(tmp_path))
    write_params_dir(str(tmp_path / "other" / "params"), {"conv1.w_0": np.ones((3,), "float32")})
    with pytest.raises(ValueError, match=r"fluid params/ directory.*like \['conv1.w_0'\]"):
        load_pretrained_backbone(backbone, str(tmp_path / "other"))


def test_load_pretrain_through_the_trainer_reports(tmp_path):
    source, config = make_backbone("ernie", seed=21)
    release = write_fluid_release(source, config, str(tmp_path / "rel"))
    target, _ = make_backbone("ernie", seed=22, phase="train")
    trainer = palm.Trainer("t")
    trainer.build_forward(target, palm.head.Classify(2, 16))
    report = trainer.load_pretrain(release)
    assert len(report.loaded) == len(target.state_dict())
    with pytest.raises(FileNotFoundError):
        trainer.load_pretrain(str(tmp_path / "missing"))


# ---- acceptance 5: crafted pickle ---------------------------------------------------------------

class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_PICKLE",))


def test_crafted_pickle_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "model_state.pdparams"
    with open(path, "wb") as f:
        pickle.dump({"model.embeddings.word_embeddings.weight": np.ones((2, 2)), "x": _Payload()}, f)
    backbone, _ = make_backbone("ernie", seed=1)
    with pytest.raises(UnsafePickleError, match="refused to load posix.system"):
        load_pretrained_backbone(backbone, str(tmp_path))
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()
    # our own checkpoints go through the same loader
    ckpt = tmp_path / "ckpt.step1"
    ckpt.mkdir()
    (ckpt / "model.pdparams").write_bytes(path.read_bytes())
    (ckpt / "trainer.json").write_text('{"global_step": 1}')
    (ckpt / "manifest.json").write_text(json.dumps(palm.checkpoint.manifest_of(str(ckpt))))  # passes verification
    (ckpt / "DONE").write_text("")
    with pytest.raises(UnsafePickleError):
        palm.checkpoint.load_model_state(str(ckpt))
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()


def test_safe_loader_reads_real_paddle_files(tmp_path):
    layer = paddle.nn.Linear(3, 2)
    paddle.save(layer.state_dict(), str(tmp_path / "a.pdparams"))
    state = load_state_dict(str(tmp_path / "a.pdparams"))
    assert set(state) == {"weight", "bias"}
    np.testing.assert_array_equal(state["weight"], layer.weight.numpy())
    big = {"w": np.arange(12, dtype="float32").reshape(3, 4)}
    paddle.save(big, str(tmp_path / "p2.pdparams"), protocol=2)
    np.testing.assert_array_equal(load_state_dict(str(tmp_path / "p2.pdparams"))["w"], big["w"])


# ---- ELMo: released names and gate layout --------------------------------------------------------

def test_elmo_released_names_map_onto_lstm_with_projection(tmp_path):
    released = released_elmo()
    write_params_dir(str(tmp_path / "elmo"), released)
    model = TinyELMo()
    report = load_pretrained_backbone(model, str(tmp_path / "elmo"))
    assert report.format == "Paddle ELMo checkpoint"
    assert not report.missing and not report.mismatched, report.summary()
    assert sorted(report.unexpected) == ["softmax_bias", "softmax_weight"]
    ids = np.array([[1, 5, 7, 2, 9]])
    got = model({"token_ids": paddle.to_tensor(ids)})
    emb = released["embedding_para"][ids[0]]
    fw0 = lstmp_reference(emb, released["fw_layer1_gate_w"], released["lstmp_0.w_0"],
                           released["lstmp_0.w_1"], released["lstmp_0.b_0"])
    fw1 = lstmp_reference(fw0, released["fw_layer2_gate_w"], released["lstmp_1.w_0"],
                           released["lstmp_1.w_1"], released["lstmp_1.b_0"])
    np.testing.assert_allclose(got["fw0"].numpy()[0], fw0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["fw1"].numpy()[0], fw1, rtol=1e-5, atol=1e-5)


def test_elmo_mapping_round_trips_and_default_table():
    released = released_elmo(3)
    canonical, origin = elmo_names.released_to_canonical(released)
    assert set(origin.values()) == set(released)
    back = elmo_names.canonical_to_released(canonical)
    assert set(back) == set(released)
    for name in released:
        np.testing.assert_array_equal(back[name], released[name])
    # the default table is our ELMo backbone's: released layout, plain copies
    state, unused = elmo_names.map_elmo_state(released)
    assert unused == ["softmax_bias", "softmax_weight"]
    np.testing.assert_array_equal(state["lstm.fw.1.recurrent_weight"], released["lstmp_1.w_0"])
    np.testing.assert_array_equal(state["lstm.bw.0.input_weight"], released["bw_layer1_gate_w"])
    np.testing.assert_array_equal(state["lstm.bw.1.bias"], released["lstmp_3.b_0"].reshape(-1))
    np.testing.assert_array_equal(state["lstm.bw.1.projection_weight"], released["lstmp_3.w_1"])
    assert state["word_embedding.weight"] is not None and len(state) == 1 + 4 * 4


def test_released_elmo_loads_into_our_elmo_backbone(tmp_path):
    """Runs once ``backbone.ELMo`` (issue 4) is merged: the default name table, a plain copy,
    and forward outputs equal to Paddle's ``dynamic_lstmp`` on the released weights."""
    ELMo = getattr(palm.backbone, "ELMo", None)
    if ELMo is None:
        pytest.skip("backbone.ELMo is not in this branch yet")
    released = released_elmo(5)
    write_params_dir(str(tmp_path / "ck"), released)
    model = ELMo({"input_type": "word", "vocab_size": 12, "cell_size": H, "projection_size": E, "num_layers": 2,
                  "cell_clip": 0, "proj_clip": 0, "residual": True, "dropout": 0.0}, phase="predict")
    model.eval()
    report = load_pretrained_backbone(model, str(tmp_path / "ck"))
    assert len(report.loaded) == 17 and sorted(report.unexpected) == ["softmax_bias", "softmax_weight"]
    ids = np.array([[1, 5, 7, 2, 9]])
    layers = model({"token_ids": paddle.to_tensor(ids), "seq_lens": paddle.to_tensor([5])})["layer_outputs"]
    emb = released["embedding_para"][ids[0]]
    fw0 = lstmp_reference(emb, released["fw_layer1_gate_w"], released["lstmp_0.w_0"], released["lstmp_0.w_1"],
                          released["lstmp_0.b_0"])
    bw0 = lstmp_reference(emb[::-1], released["bw_layer1_gate_w"], released["lstmp_2.w_0"],
                          released["lstmp_2.w_1"], released["lstmp_2.b_0"])[::-1]
    np.testing.assert_allclose(layers.numpy()[1, 0], np.concatenate([fw0, bw0], axis=1), atol=1e-5)
