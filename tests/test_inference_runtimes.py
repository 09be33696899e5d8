"""Runtime settings of an exported model (paddlepalm/inference_runtimes.py) and the choice measured
at export (``runtime="auto"``, paddlepalm/runtime_choice.py), on a tiny joint slot (CRF) + intent
ERNIE trained a few steps on ATIS, against the dynamic-graph model on 64 real ATIS test sentences.

* fp32 settings (``paddle``, ``paddle-no-onednn``, ``onnxruntime``): every tag and intent identical to
  the dynamic graph, probabilities within 1e-5 (as tests/test_export.py holds the default).
* lower precision (``paddle-bf16``, ``onnxruntime-int8``): at least 97% of the decisions (every tag
  and every intent) equal to the dynamic graph's and probabilities within 0.05 (the settings'
  ``Tolerance``). Why these bounds: bf16 keeps 8 significant bits, so each value of a layer is
  rounded by up to 2^-9 (0.2%) relative; int8 weights are one of 255 levels per output channel
  and the activations are quantized per call. Over a few layers that moves a logit by up to a
  percent or two of its size; a probability moves by at most a quarter of its logit's change
  (d softmax / d logit <= 1/4), so 0.05 covers a 0.2 change of logits of size 10. A decision flips
  only where the fp32 margin between the two best labels is as small as that error: a few in a
  hundred at most on a barely trained model. Measured here (2026-12-07, a Xeon with AMX): all 808
  decisions equal for both settings, probabilities within 1.6e-4 (bf16) and 9e-5 (int8); the
  bounds leave room for other CPUs' kernels (AVX-512 bf16 without AMX) and bigger models. The
  test also fails a setting that silently runs fp32: its probabilities must differ from fp32's
  somewhere (by more than 1e-6; fp32 settings stay within 3e-8). bf16 is skipped, with the
  reason, on a CPU without ``avx512_bf16`` / ``amx_bf16``; onnxruntime cases skip without
  onnxruntime and paddle2onnx, and the int8 one without onnxruntime's quantization tools.
* ``auto`` records every candidate's milliseconds and agreement, the CPU flags and versions, and a
  choice that is the fastest accepted setting per batch size; the Predictor runs a recorded choice
  (small batches and large batches routed to their own settings), ``runtime=`` overrides it, and an
  export without a record runs as before (its format's setting).
* A setting that cannot run (bf16 on a CPU without it, onnxruntime missing, a model file the
  export lacks) is refused with the reason, by the Predictor, by export and by ``palm predict``.
"""
import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from conftest import tiny_config
from paddlepalm import inference_runtimes
from paddlepalm.evaluation import prediction_mode
from paddlepalm.export import ExportError
from paddlepalm.inference_runtimes import RUNTIMES, RuntimeUnavailable
from paddlepalm.runtime_choice import MARGIN
from paddlepalm.model import to_tensors
from paddlepalm.utils.fileio import read_json, write_json

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HIDDEN = 32
SENTENCES = 64
LOWER_PRECISION_AGREEMENT = 0.97
LOWER_PRECISION_PROB_DIFF = 0.05


def _importable(*modules):
    try:
        for module in modules:
            __import__(module)
        return True
    except ImportError:
        return False


HAVE_ORT = _importable("onnxruntime", "paddle2onnx", "onnx")
HAVE_QUANTIZATION = HAVE_ORT and _importable("onnxruntime.quantization")
NO_BF16 = RUNTIMES["paddle-bf16"].machine_problem()
SKIPS = {
    "onnxruntime": None if HAVE_ORT else "onnxruntime or paddle2onnx not installed (pip install -e \".[onnx]\")",
    "onnxruntime-int8": None if HAVE_QUANTIZATION else "onnxruntime's quantization tools do not import "
                                                       "(pip install -e \".[onnx]\": onnxruntime, onnx, ml_dtypes)",
    "paddle-bf16": NO_BF16,
}


def _skip_unless_runnable(name):
    if SKIPS.get(name):
        pytest.skip(f"{name}: {SKIPS[name]}")


@pytest.fixture(scope="module")
def atis(data_root, tmp_path_factory):
    import prepare_data

    out = str(tmp_path_factory.mktemp("atis"))
    sizes = prepare_data.convert(os.path.join(data_root, "atis"), out)
    prepare_data.head(out, 500)
    with open(os.path.join(data_root, "atis", "test", "seq.in"), encoding="utf-8") as f:
        sentences = [line.strip() for line in f][:SENTENCES]
    return {"dir": out, "sentences": sentences, **sizes}


@pytest.fixture(scope="module")
def trained(atis):
    """A tiny slot + intent model on one ERNIE, trained 12 steps on ATIS."""
    d = atis["dir"]
    vocab = os.path.join(d, "vocab.txt")
    paddle.seed(0)
    backbone = palm.backbone.ERNIE.from_config(tiny_config(sum(1 for _ in open(vocab, encoding="utf-8")), HIDDEN))
    slot, intent = palm.Trainer("slot"), palm.Trainer("intent")
    slot.build_forward(backbone, palm.head.SequenceLabel(atis["slot_classes"], HIDDEN, learning_rate=10.0))
    intent.build_forward(backbone, palm.head.Classify(atis["intent_classes"], HIDDEN))
    trainer = palm.MultiHeadTrainer([slot, intent], seed=2)
    trainer.build_backward(palm.optimizer.Adam(trainer.build_forward(), 5e-3))
    slot_reader = palm.reader.SequenceLabelReader(vocab, 48, os.path.join(d, "label_map.json"), seed=1)
    slot_reader.load_data(os.path.join(d, "slot", "train_head.tsv"), batch_size=16)
    intent_reader = palm.reader.ClassifyReader(vocab, 48, seed=1)
    intent_reader.load_data(os.path.join(d, "intent", "train_head.tsv"), batch_size=16)
    trainer.fit_readers_with_mixratio([slot_reader, intent_reader], "slot", 1)
    for _ in range(12):
        trainer.train_one_step(trainer.get_one_batch())
    return trainer


@pytest.fixture(scope="module")
def dygraph_results(trained, atis):
    """The dynamic graph's per-sentence results by task: what every runtime setting is held to."""
    results = {}
    for task in ("slot", "intent"):
        reader = trained.get_trainer(task).train_reader.clone("predict")
        batch = reader.collate(reader.features_of(atis["sentences"]))
        with prediction_mode(trained.model, task):
            outputs = {k: v.numpy() for k, v in trained.model(task, to_tensors(batch)).items()}
        results[task] = trained.model.head_of(task).batch_results({**batch, **outputs})
    return results


@pytest.fixture(scope="module")
def auto_export(trained, tmp_path_factory):
    """The joint model exported with ``runtime="auto"``: every model file and the measured choice."""
    path = str(tmp_path_factory.mktemp("auto") / "joint")
    return path, trained.export(path, runtime="auto")


@pytest.fixture(scope="module")
def plain_export(trained, tmp_path_factory):
    """The joint model exported as before (no runtime option)."""
    path = str(tmp_path_factory.mktemp("plain") / "joint")
    return path, trained.export(path)


def _compare(records, expected):
    """``(decisions, equal decisions, largest intent probability difference)`` of ``records``
    (``Predictor.predict``) against the dynamic graph's results."""
    decisions = equal = 0
    max_prob = 0.0
    for record, slot, intent in zip(records, expected["slot"], expected["intent"]):
        assert len(record["slot"]["label"]) == len(slot["label"])
        decisions += len(slot["label"]) + 1
        equal += sum(a == b for a, b in zip(record["slot"]["label"], slot["label"]))
        equal += record["intent"]["label"] == intent["label"]
        max_prob = max(max_prob, float(np.max(np.abs(np.subtract(record["intent"]["probs"], intent["probs"])))))
    return decisions, equal, max_prob


# -------------------------------------------------------------------- parity, setting by setting
@pytest.mark.parametrize("name", ["paddle", "paddle-no-onednn", "onnxruntime"])
def test_fp32_settings_give_the_dynamic_graphs_tags_and_intents(auto_export, dygraph_results, atis, name):
    _skip_unless_runnable(name)
    path, meta = auto_export
    predictor = palm.Predictor(path, runtime=name, threads=2, batch_size=16)
    records = predictor.predict(atis["sentences"])
    for record, slot, intent in zip(records, dygraph_results["slot"], dygraph_results["intent"]):
        assert record["slot"]["tags"] == slot["tags"]
        assert record["intent"]["label"] == intent["label"]
        np.testing.assert_allclose(record["intent"]["probs"], intent["probs"], rtol=1e-5, atol=1e-5)
    one = predictor.predict(atis["sentences"][:1])  # a small batch: its own session, the same setting
    assert one[0]["slot"]["tags"] == dygraph_results["slot"][0]["tags"]
    assert {setting for setting, _ in predictor.loaded_runtimes} == {name}


@pytest.mark.parametrize("name", ["paddle-bf16", "onnxruntime-int8"])
def test_lower_precision_settings_stay_within_their_tolerance(auto_export, dygraph_results, atis, name):
    _skip_unless_runnable(name)
    path, meta = auto_export
    tolerance = RUNTIMES[name].tolerance
    assert (tolerance.min_decision_agreement, tolerance.max_prob_diff) == (LOWER_PRECISION_AGREEMENT,
                                                                          LOWER_PRECISION_PROB_DIFF)
    records = palm.Predictor(path, runtime=name, batch_size=16).predict(atis["sentences"])
    decisions, equal, max_prob = _compare(records, dygraph_results)
    assert decisions > 400
    assert equal / decisions >= LOWER_PRECISION_AGREEMENT, f"{name}: {equal}/{decisions} decisions equal"
    assert max_prob <= LOWER_PRECISION_PROB_DIFF, f"{name}: probabilities differ by up to {max_prob}"
    assert max_prob > 1e-6, f"{name} gives fp32's probabilities to 1e-6: it does not run in {RUNTIMES[name].precision}"
    recorded = meta["runtime"]["candidates"][name]  # the export's own check agrees
    assert recorded["available"] and recorded["agreement"]["decision_agreement"] >= LOWER_PRECISION_AGREEMENT


# -------------------------------------------------------------------- auto: recorded, used, overridden
def test_auto_records_its_measurements_and_the_fastest_accepted_choice(auto_export):
    path, meta = auto_export
    files = sorted(os.listdir(path))
    assert {"inference.json", "inference.pdiparams", "palm_meta.json", "vocab.txt"} <= set(files)
    record = meta["runtime"]
    assert record == read_json(os.path.join(path, "palm_meta.json"))["runtime"]
    assert record["chosen_by"] == "auto" and record["allow_lower_precision"] is False
    assert set(record["candidates"]) == set(RUNTIMES)
    assert record["cpu_flags"] == inference_runtimes.notable_cpu_flags() and record["versions"]["paddle"] == paddle.__version__
    assert record["inputs"]["batch_1"][0] == 1 and record["inputs"]["batch_32"][0] == 32
    accepted = {}
    for name, entry in record["candidates"].items():
        skip = SKIPS.get(name)
        assert entry["available"] == (skip is None), (name, entry)
        if not entry["available"]:
            assert entry["reason"]
            continue
        assert entry["ms"]["batch_1"] > 0 and entry["ms"]["batch_32"] > 0
        if RUNTIMES[name].lower_precision:
            assert not entry["accepted"] and "allow_lower_precision" in entry["reason"]
        else:
            assert entry["accepted"] and entry["agreement"]["decision_agreement"] == 1.0
        if entry["accepted"]:
            accepted[name] = entry["ms"]
    def expected(shape):  # the fastest, where it beats fp32 Paddle by the margin; else fp32 Paddle
        best = min(accepted, key=lambda n: accepted[n][shape])
        return best if accepted[best][shape] <= (1 - MARGIN) * accepted["paddle"][shape] else "paddle"

    assert record["choice"] == {"small_batches": expected("batch_1"), "large_batches": expected("batch_32")}
    if HAVE_QUANTIZATION:
        assert "model.int8.onnx" in files and meta["model_files"]["onnx-int8"]["quantization"]["weight_type"] == "QInt8"
    predictor = palm.Predictor(path)
    assert predictor.runtime_plan.source == "recorded"
    assert (predictor.runtime_plan.small_batches, predictor.runtime_plan.large_batches) == (
        record["choice"]["small_batches"], record["choice"]["large_batches"])
    assert record["choice"]["large_batches"] in predictor.describe_runtime()


@pytest.mark.skipif(not HAVE_ORT, reason=SKIPS["onnxruntime"] or "")
def test_the_predictor_routes_small_and_large_batches_to_the_recorded_settings(auto_export, dygraph_results, atis,
                                                                               tmp_path):
    import shutil

    path = str(tmp_path / "joint")
    shutil.copytree(auto_export[0], path)
    meta = read_json(os.path.join(path, "palm_meta.json"))
    meta["runtime"]["choice"] = {"small_batches": "onnxruntime", "large_batches": "paddle-no-onednn"}
    write_json(os.path.join(path, "palm_meta.json"), meta)
    predictor = palm.Predictor(path, threads=2, batch_size=32)
    one, many = (predictor.feed(predictor.collate(predictor.features(texts)))
                 for texts in (atis["sentences"][:1], atis["sentences"][:32]))
    assert predictor.runtime_for(one) == "onnxruntime" and predictor.threads_for(one) == 2  # no split on ORT
    assert predictor.runtime_for(many) == "paddle-no-onednn" and predictor.threads_for(many) == 2
    records = predictor.predict(atis["sentences"]) + predictor.predict(atis["sentences"][:1])
    assert predictor.loaded_runtimes == [("paddle-no-onednn", 2), ("onnxruntime", 2)]
    expected = {task: dygraph_results[task] + dygraph_results[task][:1] for task in dygraph_results}
    decisions, equal, max_prob = _compare(records, expected)
    assert equal == decisions and max_prob < 1e-5
    overridden = palm.Predictor(path, runtime="paddle", threads=2)
    assert overridden.runtime_plan.source == "given"
    overridden.predict(atis["sentences"][:1] * 2)
    overridden.predict(atis["sentences"])
    assert overridden.loaded_runtimes == [("paddle", 2), ("paddle", 1)]  # its small batches on one thread


def test_an_export_without_a_record_runs_its_formats_setting_as_before(plain_export, atis, tmp_path):
    path, meta = plain_export
    assert "runtime" not in meta and sorted(os.listdir(path)) == ["inference.json", "inference.pdiparams",
                                                                  "palm_meta.json", "vocab.txt"]
    predictor = palm.Predictor(path, threads=2)
    assert (predictor.runtime_plan.small_batches, predictor.runtime_plan.large_batches,
            predictor.runtime_plan.source) == ("paddle", "paddle", "format default")
    predictor.predict(atis["sentences"][:1])
    assert predictor.loaded_runtimes == [("paddle", 2), ("paddle", 1)]
    # an export written before model_files existed: the format's files only
    old = dict(meta)
    del old["model_files"]
    write_json(os.path.join(path, "palm_meta.json"), old)
    assert palm.Predictor(path).predict(atis["sentences"][:3]) == predictor.predict(atis["sentences"][:3])
    write_json(os.path.join(path, "palm_meta.json"), meta)


@pytest.mark.skipif(not HAVE_ORT, reason=SKIPS["onnxruntime"] or "")
def test_a_setting_named_at_export_is_recorded_as_given(trained, tmp_path):
    path = str(tmp_path / "given")
    meta = trained.export(path, runtime="onnxruntime")
    assert {"inference.json", "model.onnx"} <= set(os.listdir(path)) and "model.int8.onnx" not in os.listdir(path)
    record = meta["runtime"]
    assert record["chosen_by"] == "given" and set(record["choice"].values()) == {"onnxruntime"}
    assert set(record["candidates"]) == {"paddle", "onnxruntime"}
    predictor = palm.Predictor(path)
    assert predictor.runtime_plan.source == "recorded" and predictor.loaded_runtimes[0][0] == "onnxruntime"


# -------------------------------------------------------------------- unavailable settings say why
def test_unavailable_settings_are_refused_with_the_reason(auto_export, plain_export, trained, monkeypatch, tmp_path):
    path, _ = auto_export
    with pytest.raises(ValueError, match="unknown runtime setting 'fast'.*paddle-no-onednn"):
        palm.Predictor(path, runtime="fast")
    with pytest.raises(ValueError, match="export option"):
        palm.Predictor(path, runtime="auto")
    with pytest.raises(RuntimeUnavailable, match="no onnx model file.*--format onnx"):
        palm.Predictor(plain_export[0], runtime="onnxruntime")
    monkeypatch.setattr(inference_runtimes, "cpu_features", lambda: frozenset({"avx2", "avx512f"}))
    with pytest.raises(RuntimeUnavailable, match="paddle-bf16 is unavailable: this CPU has no bf16 instructions.*"
                                                 "avx512_bf16 nor amx_bf16"):
        palm.Predictor(path, runtime="paddle-bf16")
    with pytest.raises(ExportError, match="paddle-bf16 is unavailable: this CPU has no bf16"):
        trained.export(str(tmp_path / "never"), runtime="paddle-bf16")
    assert not os.path.exists(tmp_path / "never")
    # a recorded choice this machine cannot run: the format's setting, and the reason said
    meta = read_json(os.path.join(path, "palm_meta.json"))
    meta["runtime"]["choice"] = {"small_batches": "paddle-bf16", "large_batches": "paddle"}
    moved = str(tmp_path / "moved")
    __import__("shutil").copytree(path, moved)
    write_json(os.path.join(moved, "palm_meta.json"), meta)
    plan = palm.Predictor(moved).runtime_plan
    assert (plan.small_batches, plan.source) == ("paddle", "format default") and "no bf16 instructions" in plan.reason
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime fails
    with pytest.raises(RuntimeUnavailable, match="onnxruntime is not installed"):
        palm.Predictor(path, runtime="onnxruntime")


def _palm(*args):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), MKL_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "paddlepalm.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=600)


def test_palm_predict_runtime_and_verbose(auto_export, plain_export, atis, tmp_path):
    inputs = tmp_path / "in.txt"
    inputs.write_text("\n".join(atis["sentences"][:3]) + "\n", encoding="utf-8")
    recorded = _palm("predict", auto_export[0], "--input", inputs, "--verbose")
    assert recorded.returncode == 0, recorded.stderr[-3000:]
    assert "runtime" in recorded.stderr and "(recorded: measured at export" in recorded.stderr
    given = _palm("predict", auto_export[0], "--input", inputs, "--verbose", "--runtime", "paddle-no-onednn")
    assert given.returncode == 0, given.stderr[-3000:]
    assert "runtime paddle-no-onednn (given:" in given.stderr
    assert [json.loads(line)["slot"]["tags"] for line in given.stdout.splitlines()] == \
        [json.loads(line)["slot"]["tags"] for line in recorded.stdout.splitlines()]
    refused = _palm("predict", plain_export[0], "--input", inputs, "--runtime", "onnxruntime")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "--runtime onnxruntime" in refused.stderr and "no onnx model file" in refused.stderr


def test_the_agreement_of_two_settings_counts_every_decision():
    from paddlepalm.runtime_choice import compare_results

    reference = {"slot": [{"index": 0, "label": [1, 2, 3], "tags": ["a", "b", "c"]}],
                 "intent": [{"index": 0, "label": 4, "probs": [0.1, 0.9]}],
                 "mrc": [{"index": 0, "start_logits": [0.1, 0.5, 0.2], "end_logits": [0.3, 0.1]}],
                 "pairwise": [{"index": 0, "score": 10.0}]}
    other = {"slot": [{"index": 0, "label": [1, 2, 0], "tags": ["a", "b", "x"]}],
             "intent": [{"index": 0, "label": 4, "probs": [0.12, 0.88]}],
             "mrc": [{"index": 0, "start_logits": [0.6, 0.5, 0.2], "end_logits": [0.3, 0.2]}],
             "pairwise": [{"index": 0, "score": 10.5}]}
    found = compare_results(reference, other)
    assert (found["decisions"], found["agreeing"]) == (3 + 1 + 2, 2 + 1 + 1)  # tags, intent, MRC start and end
    assert found["max_prob_diff"] == pytest.approx(0.02) and found["max_score_rel_diff"] == pytest.approx(0.05)
    assert compare_results(reference, reference)["decision_agreement"] == 1.0
