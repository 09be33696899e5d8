"""The rows of palm_api.md's "Behaviours that PALM 2.x scripts rely on", through the public API,
on the generated joint sample (PALM's TSV formats)."""
import os

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from conftest import tiny_config

HIDDEN = 32


def _vocab(d):
    return os.path.join(d, "vocab.txt")


def _config(d, **changes):
    config = tiny_config(sum(1 for _ in open(_vocab(d), encoding="utf-8")), hidden=HIDDEN)
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **changes)
    return config


def _intent_reader(d, phase="train", batch_size=16, num_epochs=None, split="train"):
    reader = palm.reader.ClassifyReader(_vocab(d), 32, seed=1, phase=phase)
    reader.load_data(os.path.join(d, "intent", f"{split}.tsv"), batch_size=batch_size, num_epochs=num_epochs)
    return reader


def _slot_reader(d, phase="train", batch_size=16, split="train"):
    reader = palm.reader.SequenceLabelReader(_vocab(d), 32, os.path.join(d, "label_map.json"), seed=1, phase=phase)
    reader.load_data(os.path.join(d, "slot", f"{split}.tsv"), batch_size=batch_size)
    return reader


def _intent_trainer(joint_data, num_epochs=None, seed=0):
    d = joint_data["dir"]
    paddle.seed(seed)
    trainer = palm.Trainer("intent")
    loss_var = trainer.build_forward(palm.backbone.ERNIE.from_config(_config(d)),
                                     palm.head.Classify(joint_data["intent_classes"], HIDDEN))
    trainer.build_backward(palm.optimizer.Adam(loss_var, 1e-3))
    reader = _intent_reader(d, num_epochs=num_epochs)
    return trainer, reader


def _joint_trainer(joint_data, seed=0):
    d = joint_data["dir"]
    paddle.seed(seed)
    ernie = palm.backbone.ERNIE.from_config(_config(d))
    slot, intent = palm.Trainer("slot"), palm.Trainer("intent")
    slot.build_forward(ernie, palm.head.SequenceLabel(joint_data["slot_classes"], HIDDEN))
    intent.build_forward(ernie, palm.head.Classify(joint_data["intent_classes"], HIDDEN))
    trainer = palm.MultiHeadTrainer([slot, intent], seed=2)
    trainer.build_backward(palm.optimizer.Adam(trainer.build_forward(), 1e-3))
    trainer.fit_readers_with_mixratio([_slot_reader(d), _intent_reader(d)], "slot", 1)
    return trainer


def _saved(path):
    return sorted(name for name in os.listdir(path) if not name.startswith("."))


# ------------------------------------------------------------ fit_reader / train_one_step
def test_fit_reader_loop_trains_the_budget_and_saves_like_train(joint_data, tmp_path):
    trainer, reader = _intent_trainer(joint_data, num_epochs=2)
    trainer.set_saver(str(tmp_path / "loop"), save_steps=5)
    losses = []
    for batch in trainer.fit_reader(reader):
        outputs = trainer.train_one_step(batch)
        assert isinstance(outputs, dict) and isinstance(outputs["loss"], float)
        losses.append(outputs["loss"])
    budget = 2 * reader.steps_per_epoch
    assert len(losses) == budget and trainer.cur_train_step == budget and trainer.cur_train_epoch == 1
    assert all(np.isfinite(losses))

    twin, twin_reader = _intent_trainer(joint_data, num_epochs=2)
    twin.set_saver(str(tmp_path / "train"), save_steps=5)
    twin.fit_reader(twin_reader)
    twin.train(print_steps=0)
    expected = sorted({f"ckpt.step{s}" for s in range(5, budget + 1, 5)} | {f"ckpt.step{budget}"})
    assert _saved(tmp_path / "loop") == _saved(tmp_path / "train") == expected
    # the same steps on the same batches: the same weights
    a = paddle.load(str(tmp_path / "loop" / f"ckpt.step{budget}" / "model.pdparams"))
    b = paddle.load(str(tmp_path / "train" / f"ckpt.step{budget}" / "model.pdparams"))
    for key in a:
        np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), rtol=1e-5, atol=1e-6)


def test_single_task_with_num_epochs_none_trains_one_epoch(joint_data):
    trainer, reader = _intent_trainer(joint_data, num_epochs=None)
    trainer.fit_reader(reader)
    trainer.train(print_steps=0)
    assert trainer.cur_train_step == reader.steps_per_epoch > 0
    again, again_reader = _intent_trainer(joint_data, num_epochs=None)
    assert sum(1 for _ in again.fit_reader(again_reader)) == again_reader.steps_per_epoch


def test_predict_batches_come_once_and_successively(joint_data):
    d = joint_data["dir"]
    trainer = palm.Trainer("intent")
    trainer.build_predict_forward(palm.backbone.ERNIE.from_config(_config(d), phase="predict"),
                                  palm.head.Classify(joint_data["intent_classes"], HIDDEN, phase="predict"))
    reader = _intent_reader(d, phase="predict", batch_size=10, split="test")
    ids = [batch["example_ids"].tolist() for batch in trainer.fit_reader(reader, phase="predict")]
    assert sum(ids, []) == list(range(reader.num_examples))  # each example once, in file order (as PALM)
    got = []
    with pytest.raises(StopIteration):
        while True:
            got.append(trainer.get_one_batch("predict")["example_ids"].tolist())
    assert got == ids and len(got) > 1


def test_multihead_train_one_step_returns_outputs_and_task_id_and_saves(joint_data, tmp_path):
    trainer = _joint_trainer(joint_data)
    trainer.set_saver(str(tmp_path), save_steps=4)
    seen = []
    for _ in range(9):
        outputs, task_id = trainer.train_one_step(trainer.get_one_batch())
        assert isinstance(outputs["loss"], float) and np.isfinite(outputs["loss"])
        seen.append(task_id)
    assert set(seen) <= {0, 1}
    assert [t.cur_train_step for t in trainer.trainers] == [seen.count(0), seen.count(1)]
    assert _saved(tmp_path) == ["ckpt.step4", "ckpt.step8"]


# ------------------------------------------------------------------- predict_one_batch
def _predictor(joint_data, task, seed=0):
    d = joint_data["dir"]
    paddle.seed(seed)
    trainer = palm.Trainer(task)
    head = (palm.head.Classify(joint_data["intent_classes"], HIDDEN, phase="predict") if task == "intent" else
            palm.head.SequenceLabel(joint_data["slot_classes"], HIDDEN, phase="predict"))
    trainer.build_predict_forward(palm.backbone.ERNIE.from_config(_config(d), phase="predict"), head)
    return trainer


def test_predict_one_batch_returns_arrays_like_palm(joint_data):
    d = joint_data["dir"]
    intent = _predictor(joint_data, "intent")
    batch = next(intent.fit_reader(_intent_reader(d, phase="predict", batch_size=8, split="test"), phase="predict"))
    out = intent.predict_one_batch(batch)
    assert isinstance(out["logits"], np.ndarray) and out["logits"].shape == (8, joint_data["intent_classes"])
    np.testing.assert_allclose(out["probs"].sum(-1), 1, rtol=1e-5)

    slot = _predictor(joint_data, "slot")
    batch = next(slot.fit_reader(_slot_reader(d, phase="predict", batch_size=8, split="test"), phase="predict"))
    out = slot.predict_one_batch(batch)
    emissions, tags = out["logits"], out["tags"]
    assert emissions.ndim == 3 and emissions.shape[0] == 8 and emissions.shape[2] == joint_data["slot_classes"]
    assert tags.shape == emissions.shape[:2]
    decoded = slot.pred_head.batch_results(out)  # the per-example results predict() writes
    assert [r["label"][:n] for r, n in zip(decoded, out["word_counts"])] == \
        [t[:n].tolist() for t, n in zip(tags, out["word_counts"])]


@pytest.mark.parametrize("predict_first", [False, True])
def test_one_trainers_prediction_model_predicts_with_the_weights_trained_so_far(joint_data, tmp_path, predict_first):
    """PALM's training and prediction programs shared one scope: ``trainer.predict()`` between
    ``train_one_step`` calls (train with evaluation) used the current weights, whichever was built first."""
    d = joint_data["dir"]
    paddle.seed(0)
    trainer = palm.Trainer("intent")
    build_predict = lambda: trainer.build_predict_forward(  # noqa: E731
        palm.backbone.ERNIE.from_config(_config(d), phase="predict"),
        palm.head.Classify(joint_data["intent_classes"], HIDDEN, phase="predict"))
    if predict_first:
        build_predict()
    loss_var = trainer.build_forward(palm.backbone.ERNIE.from_config(_config(d)),
                                     palm.head.Classify(joint_data["intent_classes"], HIDDEN))
    if not predict_first:
        build_predict()
    trainer.build_backward(palm.optimizer.Adam(loss_var, 1e-2))
    trainer.set_saver(str(tmp_path), save_steps=3)
    batches = trainer.fit_reader(_intent_reader(d, num_epochs=1))
    batch = next(trainer.fit_reader(_intent_reader(d, phase="predict", batch_size=8, split="test"), phase="predict"))
    before = trainer.predict_one_batch(batch)["logits"]
    for _, train_batch in zip(range(3), batches):
        trainer.train_one_step(train_batch)
    during = trainer.predict_one_batch(batch)["logits"]
    assert np.abs(during - before).max() > 1e-3  # the three steps changed the predictions
    reference = _predictor(joint_data, "intent", seed=9)
    reference.load_ckpt(str(tmp_path / "ckpt.step3"))
    np.testing.assert_allclose(during, reference.predict_one_batch(batch)["logits"], rtol=1e-5, atol=1e-6)


# ----------------------------------------------------- merge_inference_readers (joint_predict.py)
def _joint_checkpoint(joint_data, path):
    trainer = _joint_trainer(joint_data)
    trainer.set_saver(str(path), save_steps=3)
    for _ in range(3):
        trainer.train_one_step(trainer.get_one_batch())
    return str(path / "ckpt.step3")


def test_joint_predict_idiom_with_merge_inference_readers(joint_data, tmp_path):
    d = joint_data["dir"]
    ckpt = _joint_checkpoint(joint_data, tmp_path / "out")
    ernie = palm.backbone.ERNIE.from_config(_config(d), phase="predict")
    slot, intent = palm.Trainer("slot"), palm.Trainer("intent")
    intent.build_predict_forward(ernie, palm.head.Classify(joint_data["intent_classes"], HIDDEN, phase="predict"))
    slot.build_predict_forward(ernie, palm.head.SequenceLabel(joint_data["slot_classes"], HIDDEN, phase="predict"))
    trainer = palm.MultiHeadTrainer([slot, intent])
    trainer.build_predict_forward()
    trainer.load_ckpt(ckpt)
    readers = {"slot": _slot_reader(d, phase="predict", batch_size=10, split="test"),
               "intent": _intent_reader(d, phase="predict", batch_size=10, split="test")}
    joint_iterator = trainer.merge_inference_readers([readers["slot"], readers["intent"]])
    expected = trainer.predict()
    for task in ("slot", "intent"):
        count, labels, logits = 0, {}, []
        for batch in joint_iterator(task):
            out = trainer.predict_one_batch(task, batch)
            count += len(out["logits"])
            logits.extend(out["logits"])  # collected in loop order, as PALM's script does
            for r in trainer.pred_model.head_of(task).batch_results(out):
                labels[r["index"]] = r["label"]
        assert count == readers[task].num_examples
        assert [labels[i] for i in range(count)] == [r["label"] for r in expected[task]]
        if task == "intent":  # loop order is input order: the i-th logits row is the i-th line's
            assert [int(np.argmax(row)) for row in logits] == [r["label"] for r in expected[task]]
    with pytest.raises(KeyError, match="no task named"):
        joint_iterator("nope")


# ------------------------------------------------------- load_pretrain / load_predict_model
def test_load_predict_model_takes_a_release_or_our_checkpoint_and_palms_second_argument(joint_data, tmp_path):
    from pretrained_fixtures import make_backbone, outputs, write_fluid_release

    source, config = make_backbone("ernie", seed=1)
    release = write_fluid_release(source, config, str(tmp_path / "ERNIE-tiny"))
    trainer = palm.Trainer("intent")
    backbone = palm.backbone.ERNIE.from_config(config, phase="predict")
    trainer.build_predict_forward(backbone, palm.head.Classify(3, config["hidden_size"], phase="predict"))
    report = trainer.load_predict_model(release, False)  # PALM's predict example: a released folder
    assert report.loaded and all(n.startswith("backbone.") for n in report.loaded)
    assert any(n.startswith("heads.intent.") for n in report.missing)
    for key, value in outputs(source).items():
        np.testing.assert_allclose(outputs(backbone)[key], value, rtol=1e-5, atol=1e-6)
    assert trainer.load_pretrain(release, False).loaded

    # our checkpoint: backbone and this task's head by name; the other task's head is left over
    ckpt = _joint_checkpoint(joint_data, tmp_path / "out")
    predictor = _predictor(joint_data, "intent", seed=7)
    report = predictor.load_predict_model(ckpt)
    assert any(n.startswith("heads.intent.") for n in report.loaded) and not report.missing
    assert any(n.startswith("heads.slot.") for n in report.unexpected)
    strict = _predictor(joint_data, "intent", seed=8)
    strict.load_ckpt(ckpt)
    batch = next(_intent_reader(joint_data["dir"], phase="predict", split="test").iter_epoch(0))
    np.testing.assert_allclose(predictor.predict_one_batch(batch)["probs"], strict.predict_one_batch(batch)["probs"],
                               rtol=1e-6)

    unrelated = tmp_path / "unrelated"
    unrelated.mkdir()
    paddle.save({"something.else": paddle.zeros([2])}, str(unrelated / "model_state.pdparams"))
    with pytest.raises(ValueError, match="no parameter"):
        predictor.load_predict_model(str(unrelated))


# ------------------------------------------------------------ set_saver(save_type='predict')
def _run_exported(directory, batch):
    import json
    meta = json.load(open(os.path.join(directory, "palm_meta.json"), encoding="utf-8"))
    config = paddle.inference.Config(os.path.join(directory, meta["model_file"]),
                                     os.path.join(directory, meta["params_file"]))
    config.disable_gpu()
    predictor = paddle.inference.create_predictor(config)
    assert predictor.get_input_names() == [i["name"] for i in meta["inputs"]]
    for spec in meta["inputs"]:
        predictor.get_input_handle(spec["name"]).copy_from_cpu(batch[spec["name"]])
    predictor.run()
    return meta, {o["name"]: predictor.get_output_handle(o["fetch_name"]).copy_to_cpu() for o in meta["outputs"]}


def test_predict_saves_are_inference_models_that_match_the_dygraph_model(joint_data, tmp_path):
    trainer, reader = _intent_trainer(joint_data, num_epochs=1)
    trainer.set_saver(str(tmp_path), save_steps=5, save_type="ckpt,predict")
    for batch in trainer.fit_reader(reader):
        trainer.train_one_step(batch)
    steps = reader.steps_per_epoch
    assert "pred.step5" in _saved(tmp_path) and f"pred.step{steps}" in _saved(tmp_path)
    exported = tmp_path / f"pred.step{steps}"
    assert sorted(os.listdir(exported)) == ["inference.json", "inference.pdiparams", "palm_meta.json", "vocab.txt"]
    # prediction batches of two sizes and lengths: dynamic batch and sequence dimensions
    pred_reader = _intent_reader(joint_data["dir"], phase="predict", batch_size=7, split="test")
    trainer_batches = list(pred_reader.iter_epoch(0))
    for batch in (trainer_batches[0], trainer_batches[-1]):
        meta, outputs = _run_exported(str(exported), batch)
        reference = trainer.model  # the trained model, run as predict_one_batch runs a prediction model
        from paddlepalm.evaluation import prediction_mode
        from paddlepalm.model import to_tensors
        with prediction_mode(reference, "intent"):
            expected = reference("intent", to_tensors(batch))
        for name in ("logits", "probs"):
            np.testing.assert_allclose(outputs[name], expected[name].numpy(), rtol=1e-5, atol=1e-5)
    assert [t["name"] for t in meta["tasks"]] == ["intent"] and "label_ids" not in [i["name"] for i in meta["inputs"]]
    assert "token_ids" in [i["name"] for i in meta["inputs"]]
    assert {i["name"]: i["shape"] for i in meta["inputs"]}["token_ids"] == [-1, -1]


def test_multitask_predict_save_writes_one_model_per_task(joint_data, tmp_path):
    trainer = _joint_trainer(joint_data)
    trainer.set_saver(str(tmp_path), save_steps=6, save_type="predict")
    for _ in range(6):
        trainer.train_one_step(trainer.get_one_batch())
    tasks = [t.name for t in trainer.trainers if t.cur_train_step]
    assert _saved(tmp_path) == ["pred.step6"] and _saved(tmp_path / "pred.step6") == sorted(tasks)
    if "slot" in tasks:
        batch = next(_slot_reader(joint_data["dir"], phase="predict", batch_size=5, split="test").iter_epoch(0))
        meta, outputs = _run_exported(str(tmp_path / "pred.step6" / "slot"), batch)
        from paddlepalm.evaluation import prediction_mode
        from paddlepalm.model import to_tensors
        with prediction_mode(trainer.model, "slot"):
            reference = trainer.model("slot", to_tensors(batch))
        # the CRF is decoded outside the graph (paddlepalm/export.py), by the exported transitions
        from paddlepalm.utils.crf import viterbi_decode_numpy
        assert "tags" not in outputs
        tags = viterbi_decode_numpy(outputs["logits"], np.maximum(batch["word_counts"], 1),
                                    meta["tasks"][0]["transitions"], len(meta["tasks"][0]["label_names"]))
        np.testing.assert_array_equal(tags[:, :reference["tags"].shape[1]], reference["tags"].numpy())
        np.testing.assert_allclose(outputs["logits"], reference["logits"].numpy(), rtol=1e-5, atol=1e-5)


def test_a_failed_predict_export_is_reported_and_training_goes_on(joint_data, tmp_path, capsys, monkeypatch):
    import paddlepalm.export
    trainer, reader = _intent_trainer(joint_data, num_epochs=1)
    trainer.set_saver(str(tmp_path), save_steps=4, save_type="ckpt,predict")

    def broken(*args, **kwargs):
        raise RuntimeError("cannot trace this model")
    monkeypatch.setattr(paddlepalm.trainer, "export_trainers", broken)
    for batch in trainer.fit_reader(reader):
        trainer.train_one_step(batch)
    assert "predict model export to" in capsys.readouterr().err
    assert all(not n.startswith("pred.") for n in _saved(tmp_path)) and "ckpt.step4" in _saved(tmp_path)


# ------------------------------------------------------------------- load_ckpt on PALM's ckpt
def test_load_ckpt_reads_a_palm_checkpoint_directory(joint_data, tmp_path, capsys):
    from paddlepalm.pretrained import fluid_names
    from paddlepalm.pretrained.lod_tensor import write_params_dir

    source, _ = _intent_trainer(joint_data, seed=3)
    palm_vars = {}
    for name, value in source.model.backbone.state_dict().items():
        fluid = fluid_names.ours_to_fluid(name)
        palm_vars[fluid] = value.numpy()
        palm_vars[fluid + "_moment2_0"] = np.full(value.shape, 1e6, "float32")
    palm_vars.update({"intent.cls_out_w": np.zeros((HIDDEN, 5), "float32"), "@LR_DECAY_COUNTER@": np.ones([1], "int64")})
    write_params_dir(str(tmp_path / "ckpt.step300"), palm_vars)

    trainer, reader = _intent_trainer(joint_data, num_epochs=1, seed=4)
    trainer.load_ckpt(str(tmp_path / "ckpt.step300"))
    log = capsys.readouterr().err
    assert "not restored: 2 variables" in log and "intent.cls_out_w" in log
    for name, value in source.model.backbone.state_dict().items():
        np.testing.assert_array_equal(trainer.model.backbone.state_dict()[name].numpy(), value.numpy())
    trainer.train_one_step(next(trainer.fit_reader(reader)))  # the moments were restored: beta2 * 1e6 + ...
    word = trainer.model.backbone.state_dict()["model.embeddings.word_embeddings.weight"].name
    assert float(trainer.optimizer.state_dict()[word + "_moment2_0"].numpy().min()) > 9e5

    predictor = _predictor(joint_data, "intent")
    predictor.load_ckpt(str(tmp_path / "ckpt.step300"))  # a prediction model: the parameters only
    (tmp_path / "empty").mkdir()
    write_params_dir(str(tmp_path / "empty"), {"unrelated_var": np.zeros([2], "float32")})
    with pytest.raises(ValueError, match="no parameter of the PALM checkpoint"):
        predictor.load_ckpt(str(tmp_path / "empty"))


# ---------------------------------------------------------------- distribute, ERNIE task table
def test_distribute_module_gives_device_counts(monkeypatch):
    import paddlepalm.distribute
    from paddlepalm.distribute import cpu_dev_count, gpu_dev_count

    assert cpu_dev_count == (os.cpu_count() or 1)
    has_gpu = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    assert gpu_dev_count == (1 if has_gpu else 0)
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "2")
    assert paddlepalm.distribute.gpu_count() == (2 if has_gpu else 0)


def test_ernie_task_embedding_is_on_by_default_and_optional_in_checkpoints(tmp_path):
    from pretrained_fixtures import make_backbone, outputs, write_fluid_release

    config = {k: v for k, v in make_backbone("ernie", 0)[1].items() if k != "use_task_id"}
    ernie = palm.backbone.ERNIE.from_config(config)
    assert ernie.uses_task_ids and "model.embeddings.task_type_embeddings.weight" in ernie.state_dict()
    # an ERNIE 1.0 release (no task table) into the default ERNIE: the table is zeroed, not random
    source = palm.backbone.ERNIE.from_config(dict(config, use_task_emb=False), phase="predict")
    release = write_fluid_release(source, config, str(tmp_path / "ernie1"))
    target = palm.backbone.ERNIE.from_config(config, phase="predict")
    from paddlepalm.pretrained import load_pretrained_backbone

    report = load_pretrained_backbone(target, release)
    assert report.zeroed == ["model.embeddings.task_type_embeddings.weight"] and not report.missing
    np.testing.assert_allclose(outputs(target)["sentence_embedding"], outputs(source)["sentence_embedding"],
                               rtol=1e-5, atol=1e-6)
