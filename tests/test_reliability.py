"""Issue 11: checkpoints that cannot run code, are complete, verified and atomically
replaced; exact resume with dropout on (in-process and across kill -9); NaN stops.
Each test goes through the public API (Trainer, MultiHeadTrainer, load_ckpt, train)."""
import json
import os
import pickle
import random
import signal
import subprocess
import sys

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from conftest import REPO, tiny_config
from paddlepalm import checkpoint
from paddlepalm.engine import NonFiniteLossError
from paddlepalm.utils.safe_pickle import UnsafePickleError
from test_trainer import build_joint, params

DROPOUT = 0.1


# --------------------------------------------------------------------- helpers
def train_saving(joint_data, save_path, steps=None, save_steps=2, seed=0):
    trainer, _ = build_joint(joint_data["dir"], joint_data, dropout=DROPOUT, seed=seed)
    if steps is not None:
        trainer.max_steps = steps
    trainer.set_saver(str(save_path), save_steps=save_steps)
    trainer.train(print_steps=0)
    return trainer


def resumed(joint_data, ckpt, steps=None, seed=0, order="usual"):
    """A fresh process-like rebuild (other initial weights: another seed) resumed from ``ckpt``."""
    trainer, _ = build_joint(joint_data["dir"], joint_data, dropout=DROPOUT, seed=seed + 100)
    if steps is not None:
        trainer.max_steps = steps
    trainer.load_ckpt(str(ckpt))
    return trainer


def assert_same(a, b):
    assert a.keys() == b.keys()
    different = [k for k in a if not np.array_equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


class Payload:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def rewrite_manifest(directory):
    """Make the manifest match the (tampered) files, so only the unpickler stands in the way."""
    fix = checkpoint.manifest_of(str(directory))
    with open(os.path.join(directory, checkpoint.MANIFEST_FILE), "w") as f:
        json.dump(fix, f)


# ------------------------------------------------------ 1. no code from files
@pytest.mark.parametrize("filename", ["model.pdparams", "optimizer.pdopt", "ema.pdparams"])
def test_poisoned_key_in_checkpoint_file_is_refused_and_never_runs(joint_data, tmp_path, filename):
    trainer, _ = build_joint(joint_data["dir"], joint_data)
    trainer.build_backward(palm.optimizer.Adam(trainer.model, 1e-3), use_ema=True)
    trainer.set_saver(str(tmp_path / "run"), save_steps=2)
    trainer.max_steps = 2
    trainer.train(print_steps=0)
    ckpt = tmp_path / "run" / "ckpt.step2"
    marker = tmp_path / "pwned"
    state = checkpoint.read_pickle(str(ckpt / filename))
    state["innocent.looking.key"] = Payload(marker)
    with open(ckpt / filename, "wb") as f:
        pickle.dump(state, f, protocol=4)
    rewrite_manifest(ckpt)
    other, _ = build_joint(joint_data["dir"], joint_data)
    other.build_backward(palm.optimizer.Adam(other.model, 1e-3), use_ema=True)
    with pytest.raises(UnsafePickleError, match=filename):
        other.load_ckpt(str(ckpt))
    assert not marker.exists()


@pytest.mark.parametrize("filename", ["trainer.json", "rng.json"])
def test_pickle_in_a_json_file_of_a_checkpoint_is_never_unpickled(joint_data, tmp_path, filename):
    train_saving(joint_data, tmp_path, steps=2)
    ckpt = tmp_path / "ckpt.step2"
    marker = tmp_path / "pwned"
    (ckpt / filename).write_bytes(pickle.dumps(Payload(marker)))
    rewrite_manifest(ckpt)
    trainer, _ = build_joint(joint_data["dir"], joint_data)
    with pytest.raises(ValueError, match=filename.replace(".", r"\.")):
        trainer.load_ckpt(str(ckpt))
    assert not marker.exists()


def test_poisoned_pretrained_file_is_refused(joint_data, tmp_path):
    trainer, _ = build_joint(joint_data["dir"], joint_data)
    marker = tmp_path / "pwned"
    state = {k: v.numpy() for k, v in trainer.trainers[0].backbone.state_dict().items()}
    state["evil"] = Payload(marker)
    folder = tmp_path / "pretrained"
    folder.mkdir()
    with open(folder / "model_state.pdparams", "wb") as f:
        pickle.dump(state, f, protocol=4)
    with pytest.raises(UnsafePickleError):
        trainer.load_pretrain(str(folder))
    assert not marker.exists()


# ---------------------------------- 2/3. complete optimizer state, exact resume
def test_checkpoint_holds_every_parameters_optimizer_state(joint_data, tmp_path):
    trainer = train_saving(joint_data, tmp_path, steps=1)  # one step: only one head has stepped
    saved = checkpoint.read_pickle(str(tmp_path / "ckpt.step1" / checkpoint.OPTIMIZER_FILE))
    for name, param in trainer.model.named_parameters():
        assert f"{name}@moment1" in saved and f"{name}@moment2" in saved, name


@pytest.mark.parametrize("first_stop", [1, 2, 4])
def test_multitask_resume_with_dropout_is_bit_identical(joint_data, tmp_path, first_stop):
    """Resume from a checkpoint taken before every head stepped (step 1), and a resume of a resume."""
    total = 12
    reference = params(train_saving(joint_data, tmp_path / "ref", steps=total, save_steps=total).model)
    train_saving(joint_data, tmp_path / "run", steps=first_stop, save_steps=first_stop)
    second = resumed(joint_data, tmp_path / "run" / f"ckpt.step{first_stop}", steps=first_stop + 3)
    second.set_saver(str(tmp_path / "run"), save_steps=100)
    second.train(print_steps=0)
    third = resumed(joint_data, tmp_path / "run" / f"ckpt.step{first_stop + 3}", steps=total)
    third.train(print_steps=0)
    assert_same(params(third.model), reference)


def build_single(joint_data, seed):
    d = joint_data["dir"]
    paddle.seed(seed)
    vocab = os.path.join(d, "vocab.txt")
    config = tiny_config(sum(1 for _ in open(vocab, encoding="utf-8")))
    config["hidden_dropout_prob"] = config["attention_probs_dropout_prob"] = DROPOUT
    reader = palm.reader.SequenceLabelReader(vocab, 32, os.path.join(d, "label_map.json"), seed=1)
    reader.load_data(os.path.join(d, "slot", "train.tsv"), batch_size=16, num_epochs=1)
    slot = palm.Trainer("slot")
    model = slot.build_forward(palm.backbone.ERNIE.from_config(config),
                               palm.head.SequenceLabel(joint_data["slot_classes"], 32, DROPOUT, learning_rate=1.0))
    slot.build_backward(palm.optimizer.Adam(model, 1e-3, palm.lr_sched.TriangularSchedualer(2, 12)), use_ema=True)
    slot.fit_reader(reader)
    return slot


def test_single_task_resume_with_dropout_and_ema_is_bit_identical(joint_data, tmp_path):
    reference = build_single(joint_data, 0)
    reference.set_saver(str(tmp_path), save_steps=5)
    reference.train(print_steps=0)
    resumed_run = build_single(joint_data, 50)
    resumed_run.load_ckpt(str(tmp_path / "ckpt.step5"))
    resumed_run.train(print_steps=0)
    assert_same(params(resumed_run.model), params(reference.model))
    ema_ref, ema_got = reference.optimization.ema.shadow, resumed_run.optimization.ema.shadow
    assert all(np.array_equal(ema_ref[k].numpy(), ema_got[k].numpy()) for k in ema_ref)


# ------------------------------------------------------- 6. order of calls
@pytest.mark.parametrize("order", ["before_backward", "before_fit_reader", "before_both"])
def test_load_ckpt_order_does_not_matter(joint_data, tmp_path, order):
    total = 8
    reference = params(train_saving(joint_data, tmp_path / "ref", steps=total, save_steps=total).model)
    train_saving(joint_data, tmp_path / "run", steps=3, save_steps=3)
    d = joint_data["dir"]
    trainer, _ = build_joint(d, joint_data, dropout=DROPOUT, seed=9)
    readers = [t.train_reader for t in trainer.trainers]
    fresh = palm.MultiHeadTrainer(trainer.trainers, seed=3)
    loss_var = fresh.build_forward()
    steps = [lambda: fresh.load_ckpt(str(tmp_path / "run" / "ckpt.step3")),
             lambda: fresh.build_backward(palm.optimizer.Adam(loss_var, 1e-3, palm.lr_sched.TriangularSchedualer(5, 40)),
                                          weight_decay=0.01),
             lambda: fresh.fit_readers_with_mixratio(readers, "slot", 2)]
    sequence = {"before_backward": [0, 1, 2], "before_fit_reader": [1, 0, 2], "before_both": [0, 2, 1]}[order]
    for index in sequence:
        steps[index]()
    fresh.max_steps = total
    fresh.train(print_steps=0)
    assert_same(params(fresh.model), reference)


def test_training_cannot_start_while_the_resume_waits(joint_data, tmp_path):
    trainer, _ = build_joint(joint_data["dir"], joint_data)
    slot = trainer.trainers[0]
    slot.max_steps = 2
    slot.set_saver(str(tmp_path), save_steps=2)
    slot.train(print_steps=0)
    other, _ = build_joint(joint_data["dir"], joint_data, seed=5)
    waiting = other.trainers[0]
    waiting.train_in_group(other.model, None, None)  # as if build_backward had not been called yet
    waiting.load_ckpt(str(tmp_path / "ckpt.step2"))
    with pytest.raises(RuntimeError, match=r"waiting for the optimizer state \(call build_backward\)"):
        waiting.train(print_steps=0)


# -------------------------------------------- 4. atomic replace, stale files
def test_resaving_swaps_directory_atomically_and_recovers_an_interrupted_swap(joint_data, tmp_path, monkeypatch):
    trainer, _ = build_joint(joint_data["dir"], joint_data)
    best = str(tmp_path / "best")
    checkpoint.save_checkpoint(best, trainer.model, state={"global_step": 1})
    inode = os.stat(best).st_ino
    checkpoint.save_checkpoint(best, trainer.model, state={"global_step": 2})
    assert os.stat(best).st_ino != inode and checkpoint.load_trainer_state(best)["global_step"] == 2
    # without renameat2: killed between "old aside" and "new in" -> the aside copy comes back
    monkeypatch.setattr(checkpoint, "_exchange", lambda a, b: False)
    real_rename = os.rename

    def rename_then_die(src, dst):
        real_rename(src, dst)
        if ".old-" in dst:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(os, "rename", rename_then_die)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_checkpoint(best, trainer.model, state={"global_step": 3})
    monkeypatch.setattr(os, "rename", real_rename)
    assert not os.path.exists(best)
    assert checkpoint.read_checkpoint(best).global_step == 2
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


def test_stale_temporary_directories_are_removed_at_start(joint_data, tmp_path):
    stale = tmp_path / ".ckpt.step3.tmp-abc123"
    stale.mkdir()
    (stale / "model.pdparams").write_bytes(b"half")
    train_saving(joint_data, tmp_path, steps=2)
    assert sorted(os.listdir(tmp_path)) == ["ckpt.step2"]


# ------------------------------------------------------ 5. damaged checkpoints
def _flip(path, count=64, seed=0):
    data = bytearray(open(path, "rb").read())
    rng = np.random.RandomState(seed)
    for i in rng.choice(len(data), count, replace=False):
        data[i] ^= 0xFF
    open(path, "wb").write(bytes(data))


@pytest.mark.parametrize("damage", ["flip:model.pdparams", "flip:optimizer.pdopt", "truncate:model.pdparams",
                                    "truncate:optimizer.pdopt", "delete:trainer.json", "delete:manifest.json",
                                    "delete:optimizer.pdopt"])
def test_damaged_checkpoint_is_refused_naming_the_file(joint_data, tmp_path, damage):
    train_saving(joint_data, tmp_path, steps=2)
    ckpt = tmp_path / "ckpt.step2"
    kind, name = damage.split(":")
    path = ckpt / name
    if kind == "flip":
        _flip(path)
    elif kind == "truncate":
        open(path, "r+b").truncate(os.path.getsize(path) // 2)
    else:
        os.remove(path)
    trainer, _ = build_joint(joint_data["dir"], joint_data)
    with pytest.raises(checkpoint.CheckpointError, match=name.replace(".", r"\.")):
        trainer.load_ckpt(str(ckpt))
    assert checkpoint.latest_checkpoint(str(tmp_path)) is None


def test_inconsistent_trainer_state_is_refused(joint_data, tmp_path):
    train_saving(joint_data, tmp_path, steps=2)
    ckpt = tmp_path / "ckpt.step2"
    state = json.load(open(ckpt / "trainer.json"))
    state["global_step"] = 10 ** 6
    json.dump(state, open(ckpt / "trainer.json", "w"))
    trainer, _ = build_joint(joint_data["dir"], joint_data)
    with pytest.raises(checkpoint.CheckpointError, match="trainer.json is damaged"):
        trainer.load_ckpt(str(ckpt))
    rewrite_manifest(ckpt)  # a consistent manifest: the numbers themselves must add up
    with pytest.raises(checkpoint.CheckpointError, match="global step 1000000 is beyond"):
        trainer.load_ckpt(str(ckpt))
    state["global_step"] = 1
    json.dump(state, open(ckpt / "trainer.json", "w"))
    rewrite_manifest(ckpt)
    with pytest.raises(checkpoint.CheckpointError, match="schedule gives it"):
        trainer.load_ckpt(str(ckpt))


# ---------------------------------------------------------------- 7. NaN stops
@pytest.mark.parametrize("lr", [float("nan"), float("inf"), -1e-3, 0.0])
@pytest.mark.parametrize("optimizer", ["Adam", "AdamW", "LAMB"])
def test_non_finite_or_non_positive_learning_rate_is_refused(lr, optimizer):
    with pytest.raises(ValueError, match="lr must be a positive finite number"):
        getattr(palm.optimizer, optimizer)(None, lr)


@pytest.mark.parametrize("print_steps", [0, 5])
def test_nan_weight_stops_training_naming_task_step_and_last_checkpoint(joint_data, tmp_path, print_steps):
    trainer, _ = build_joint(joint_data["dir"], joint_data)
    trainer.max_steps = 12
    trainer.set_saver(str(tmp_path), save_steps=3)
    poisoned = {"done": False}
    real_step = trainer.optimizer.step

    def step_then_poison():
        real_step()
        if trainer.trainers[0].cur_train_step + trainer.trainers[1].cur_train_step >= 3 and not poisoned["done"]:
            param = next(iter(trainer.model.backbone.parameters()))  # the word embeddings
            param.set_value(paddle.full_like(param, float("nan")))
            poisoned["done"] = True

    trainer.optimizer.step = step_then_poison
    with pytest.raises(NonFiniteLossError) as info:
        trainer.train(print_steps=print_steps)
    message = str(info.value)
    assert "loss is nan at global step 5" in message and "task " in message
    assert str(tmp_path / "ckpt.step3") in message
    assert sorted(os.listdir(tmp_path)) == ["ckpt.step3"]


def test_skip_nonfinite_drops_the_bad_batch_and_counts_it(joint_data):
    trainer, _ = build_joint(joint_data["dir"], joint_data)
    trainer.max_steps = 8
    head = trainer.model.heads["slot"]
    real_forward = head.forward
    calls = {"n": 0}

    def sometimes_nan(reader_inputs, backbone_outputs):
        out = real_forward(reader_inputs, backbone_outputs)
        calls["n"] += 1
        if calls["n"] == 1 and head.training:
            out["loss"] = out["loss"] * float("nan")
        return out

    head.forward = sometimes_nan
    trainer.train(print_steps=0, skip_nonfinite=True)
    assert trainer.guard.skipped == 1
    assert all(bool(paddle.isfinite(p).all()) for p in trainer.model.parameters())


# ----------------------------------------------- kill -9 at random moments
JOB = os.path.join(REPO, "tests", "reliability", "resume_job.py")


def _random_kill(rng) -> list:
    """Arguments that SIGKILL the job at a random moment: a random time after a random step."""
    return ["--die_after_step", str(rng.randint(1, 12)), "--die_delay", f"{rng.uniform(0, 0.2):.3f}"]


@pytest.mark.parametrize("mode", ["multi", "single"])
def test_kill_9_at_random_moments_then_resume_is_bit_identical(joint_data, tmp_path, mode):
    seed = int(os.environ.get("PALM_KILL_SEED", random.SystemRandom().randint(0, 10 ** 6)))
    rng = random.Random(seed)
    env = dict(os.environ, MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    data = str(joint_data["dir"])
    with open(os.path.join(data, "sizes.json"), "w") as f:
        json.dump({k: v for k, v in joint_data.items() if k != "dir"}, f)
    common = ["--data", data, "--mode", mode]
    ref = subprocess.run([sys.executable, JOB, *common, "--save", str(tmp_path / "ref"), "--out",
                          str(tmp_path / "ref.npz")], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert ref.returncode == 0, ref.stdout[-2000:] + ref.stderr[-2000:]
    run = common + ["--save", str(tmp_path / "run"), "--out", str(tmp_path / "run.npz")]
    plan = ["2:model", "random", "1:optimizer", "random"] + (["1:swap"] if mode == "multi" else []) + ["random"]
    log, codes = [], []
    for kill in plan:
        extra = _random_kill(rng) if kill == "random" else ["--die_at_save", kill]
        result = subprocess.run([sys.executable, JOB, *run, *extra], capture_output=True, text=True, env=env,
                                cwd=REPO, timeout=300)
        log.append(f"--- {' '.join(extra)}: exit {result.returncode}\n{result.stdout}{result.stderr}")
        codes.append(result.returncode)
    final = subprocess.run([sys.executable, JOB, *run], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    assert codes.count(-signal.SIGKILL) >= 3, f"seed {seed}: exit codes {codes}\n{''.join(log)[-4000:]}"
    reference, got = np.load(tmp_path / "ref.npz"), np.load(tmp_path / "run.npz")
    different = [k for k in reference.files if not np.array_equal(reference[k], got[k])]
    if os.environ.get("PALM_KILL_REPORT"):  # tools/kill_trials.sh collects these lines
        with open(os.environ["PALM_KILL_REPORT"], "a") as f:
            f.write(json.dumps({"mode": mode, "seed": seed, "exit_codes": codes, "kills": codes.count(-signal.SIGKILL),
                                "bit_identical": not different}) + "\n")
    assert not different, f"seed {seed} (PALM_KILL_SEED), codes {codes}: {different[:3]} differ\n{''.join(log)[-3000:]}"
    leftovers = [n for n in os.listdir(tmp_path / "run") if n.startswith(".")]
    assert not leftovers
    if mode == "multi":  # the same best checkpoint as the uninterrupted run (evaluation state resumed too)
        best_ref, best_run = (checkpoint.read_checkpoint(str(tmp_path / r / "best")) for r in ("ref", "run"))
        assert best_run.global_step == best_ref.global_step, f"seed {seed}"
        assert all(np.array_equal(best_ref.model_state[k], best_run.model_state[k]) for k in best_ref.model_state)
