"""Issue 15: sampling schedules (paddlepalm.sampling). Each formula against a case worked by
hand; Fixed draws what PALM's mix ratios drew before schedules existed; a run with each
schedule resumes bit-identically (dropout on); a dynamic schedule's decisions are rank 0's on
every data-parallel rank."""
import json
import math
import os

import numpy as np
import pytest

import paddlepalm as palm
from paddlepalm import checkpoint, distributed, sampling
from paddlepalm.sampling.draws import BlockDraws, draw_update_order, draw_rows, draw_static
from paddlepalm.sampling import Mixture
from test_distributed import job_data, load, run  # noqa: F401  (job_data is a fixture)
from test_reliability import DROPOUT, assert_same, rewrite_manifest
from test_trainer import build_joint, params


def mixture(sizes=(1, 4, 16), tasks=None, aux=None, num_epochs=1.0, per_update=1, ratios=None, reference=0):
    n = len(sizes)
    return Mixture(tuple(tasks or [(name,) for name in "abcdefgh"[:n]]), np.asarray(sizes, dtype="int64"),
                   np.asarray(ratios or [1.0] * n, dtype="float64"), np.asarray(aux or [False] * n, dtype=bool),
                   reference, num_epochs, per_update)


# ------------------------------------------------------------ formulas by hand
def test_size_schedules_against_hand_worked_probabilities():
    mix = mixture()  # n = 1, 4, 16 batches per epoch
    close = np.testing.assert_allclose
    close(sampling.Proportional().probabilities(mix, 1, 21), [1 / 21, 4 / 21, 16 / 21])
    close(sampling.Uniform().probabilities(mix, 1, 21), [1 / 3] * 3)
    close(sampling.Temperature(2).probabilities(mix, 1, 21), [1 / 7, 2 / 7, 4 / 7])  # sqrt: 1, 2, 4
    close(sampling.Temperature(2, cap=4).probabilities(mix, 1, 21), [1 / 5, 2 / 5, 2 / 5])  # sqrt(min(n, 4))
    close(sampling.Temperature(1).probabilities(mix, 1, 21), sampling.Proportional().probabilities(mix, 1, 21))
    annealed = sampling.Annealed(1.0, 0.2)
    close(annealed.probabilities(mix, 1, 5), [1 / 21, 4 / 21, 16 / 21])  # alpha = 1 at the first update
    w = np.array([1, 2 ** 1.2, 2 ** 2.4])  # alpha = 0.6 halfway (update 3 of 5): 4^0.6, 16^0.6
    close(annealed.probabilities(mix, 3, 5), w / w.sum())
    w = np.array([1, 2 ** 0.4, 2 ** 0.8])  # alpha = 0.2 at the last update
    close(annealed.probabilities(mix, 5, 5), w / w.sum())
    with pytest.raises(ValueError, match="T > 0"):
        sampling.Temperature(0)


def test_total_updates_are_num_epochs_over_the_main_units_batches():
    assert mixture().total_updates == 21
    assert mixture(aux=[False, False, True]).total_updates == 5  # an auxiliary unit does not lengthen the run
    assert mixture(num_epochs=2, per_update=2).total_updates == 21  # 42 batches, 2 per update
    assert mixture(num_epochs=0.1, sizes=(10, 20)).total_updates == 3  # 0.1 * 30, despite float rounding
    rows = draw_static(sampling.Uniform(), mixture(num_epochs=2), seed=0)
    assert rows.shape == (42, 1)


def test_unimax_budgets_by_hand_and_the_cap_holds_exactly():
    mix = mixture()  # 21 batches to share; smallest first
    # a: min(21/3, 2*1) = 2, 19 left; b: min(19/2, 2*4) = 8, 11 left; c: min(11, 2*16) = 11
    assert sampling.UniMax(max_epochs=2).budgets(mix) == [2, 8, 11]
    rows = draw_static(sampling.UniMax(max_epochs=2), mix, seed=1)
    assert np.bincount(rows[:, 0], minlength=3).tolist() == [2, 8, 11]
    assert sampling.UniMax(max_epochs=100).budgets(mix) == [7, 7, 7]  # no cap binds: uniform
    capped = sampling.UniMax(max_epochs=0.5).budgets(mix)  # every unit capped: a shorter run
    assert capped == [0, 2, 8]
    assert np.bincount(draw_static(sampling.UniMax(0.5), mix, seed=1)[:, 0], minlength=3).tolist() == [0, 2, 8]


def test_fixed_is_palms_budgets_and_todays_draws(joint_data):
    mix = mixture(sizes=(10, 7, 3), ratios=[1.0, 0.5, 2.0], aux=[False, False, True], num_epochs=3)
    assert sampling.Fixed().budgets(mix) == [30, 15, 60]
    for k in (1, 2):
        mix.per_update = k
        np.testing.assert_array_equal(draw_static(sampling.Fixed(), mix, seed=3),
                                      draw_update_order([1.0, 0.5, 2.0], [30, 15, 60], [False, False, True], k, 3))
    # the plan of the tiny slot + intent run, as drawn before schedules existed (commit c5acc37)
    trainer, _ = build_joint(joint_data["dir"], joint_data)
    assert "".join(str(u) for u in trainer.plan.updates[:, 0]) == "010011000000001000000100010001111101"
    assert [t.budget for t in trainer.trainers] == [24, 12]
    assert trainer.plan.state() == {"schedule": {"name": "Fixed"}}


def test_draws_follow_the_probabilities():
    p = np.array([0.1, 0.3, 0.6])
    rows = draw_rows(np.random.RandomState(0), np.tile(p, (20000, 1)), 1)
    # 20k draws: standard error below 0.0035; 4 sigma
    assert np.all(np.abs(np.bincount(rows[:, 0], minlength=3) / 20000 - p) < 0.014)
    pairs = draw_rows(np.random.RandomState(0), np.tile(p, (50, 1)), 2)
    assert all(a < b for a, b in pairs)  # distinct units, sorted
    # one unit per update follows RandomState.choice's rule exactly
    np.testing.assert_array_equal(rows[:200, 0], np.random.RandomState(0).choice(3, size=200, p=p))


def test_dynamic_dev_gap_by_hand():
    mix = mixture(sizes=(5, 5, 5), tasks=[("a",), ("b", "c"), ("aux",)], aux=[False, False, True])
    schedule = sampling.Dynamic({"a": 0.9, "b": 0.8, "c": 0.6}, floor=0.02)
    schedule.check(mix)
    np.testing.assert_allclose(schedule.decide(mix, 1, 30), [1 / 3] * 3)  # nothing observed: uniform
    schedule.observe(10, {"a": 0.7, "b": 0.75, "c": 0.65})
    # gaps: a 0.2; the joint unit b+c the mean of 0.05 and -0.05 = 0 -> the floor 0.02;
    # the auxiliary unit (not evaluated) the mean of the evaluated units' gaps, (0.2 + 0) / 2
    np.testing.assert_allclose(schedule.decide(mix, 11, 30), np.array([0.2, 0.02, 0.1]) / 0.32)
    with pytest.raises(ValueError, match=r"missing \['c'\]"):
        sampling.Dynamic({"a": 0.9, "b": 0.8}).check(mix)
    with pytest.raises(ValueError, match=r"unknown tasks \['z'\]"):
        sampling.Dynamic({"a": 0.9, "b": 0.8, "c": 0.6, "z": 1.0}).check(mix)
    with pytest.raises(ValueError, match="reference_scores"):
        sampling.Dynamic()


def test_dynamic_loss_decrease_by_hand_and_its_state_round_trips():
    mix = mixture(sizes=(5, 5))
    schedule = sampling.Dynamic(by="loss", every=2, temperature=0.5)
    for step, losses in enumerate([{"a": 2.0}, {"a": 2.0, "b": 1.0}], 1):
        schedule.observe_losses(step, losses)
    np.testing.assert_allclose(schedule.decide(mix, 3, 10), [0.5, 0.5])  # one block seen: no ratio yet
    schedule.observe_losses(3, {"a": 1.0, "b": 1.0})
    schedule.observe_losses(4, {"b": 1.0, "a": math.nan})  # a non-finite (skipped) loss is left out
    copy = sampling.Dynamic(by="loss", every=2, temperature=0.5)
    copy.set_state(json.loads(json.dumps(schedule.state())))
    # ratios: a 1.0 / 2.0 = 0.5, b 1.0 / 1.0 = 1: p ∝ exp(r / 0.5) = e, e^2
    expected = np.array([math.e, math.e ** 2]) / (math.e + math.e ** 2)
    np.testing.assert_allclose(schedule.decide(mix, 5, 10), expected)
    np.testing.assert_allclose(copy.decide(mix, 5, 10), expected)


def test_block_draws_replay_from_their_decisions():
    mix = mixture(sizes=(5, 5, 5), per_update=2)
    schedule = sampling.Dynamic(by="loss", every=4, temperature=0.1)
    blocks = BlockDraws(schedule, mix, seed=2, total=10, block=4)
    rows = [blocks.draw(1)]
    schedule.observe_losses(1, {"a": 1.0, "b": 1.0, "c": 1.0})
    rows.append(blocks.draw(5))
    schedule.observe_losses(5, {"a": 1.0, "b": 0.5, "c": 0.9})
    state = json.loads(json.dumps(blocks.state()))
    assert [d[:2] for d in state["decisions"]] == [[1, 4], [5, 4]]
    replay = BlockDraws(sampling.Dynamic(by="loss", every=4, temperature=0.1), mix, seed=2, total=10, block=4)
    np.testing.assert_array_equal(replay.restore(state), np.concatenate(rows))
    np.testing.assert_array_equal(replay.draw(9), blocks.draw(9))  # the generator is where the run left it
    assert len(blocks.decisions[-1][2]) == 3 and blocks.decisions[-1][1] == 2  # the last block is cut at total


# ------------------------------------------------------------------ exact resume
def build(joint_data, schedule, seed=0, evaluate=False):
    """The tiny slot + intent run with ``schedule``; intent on batches of 32 (6 per epoch, slot 12)."""
    d = joint_data["dir"]
    trainer, _ = build_joint(d, joint_data, dropout=DROPOUT, seed=seed)
    trainer.schedule = schedule
    intent = palm.reader.ClassifyReader(os.path.join(d, "vocab.txt"), 32, seed=1)
    intent.load_data(os.path.join(d, "intent", "train.tsv"), batch_size=32)
    trainer.fit_readers_with_mixratio([trainer.trainers[0].train_reader, intent], "slot", 2)
    if evaluate:
        slot_dev = palm.reader.SequenceLabelReader(os.path.join(d, "vocab.txt"), 32,
                                                   os.path.join(d, "label_map.json"), phase="eval")
        slot_dev.load_data(os.path.join(d, "slot", "test.tsv"), batch_size=16)
        intent_dev = palm.reader.ClassifyReader(os.path.join(d, "vocab.txt"), 32, phase="eval")
        intent_dev.load_data(os.path.join(d, "intent", "test.tsv"), batch_size=16)
        for task, reader in zip(trainer.trainers, (slot_dev, intent_dev)):
            task.fit_reader(reader, phase="eval")
            task.set_evaluator()
        trainer.set_evaluator(eval_steps=3, save_best=False)
    return trainer


def limit(trainer, steps):
    plan = trainer.plan
    if plan.blocks is None:
        plan.updates = plan.updates[:steps]
    else:
        plan.total = steps


SCHEDULES = {
    "proportional": (sampling.Proportional, 4, False),
    "uniform": (sampling.Uniform, 4, False),
    "temperature": (lambda: sampling.Temperature(2, cap=8), 4, False),
    "annealed": (sampling.Annealed, 4, False),
    "unimax": (lambda: sampling.UniMax(max_epochs=1), 4, False),
    # dev gap: resumed right after an evaluation (its scores decide the next block) and mid-block
    "dynamic_dev_after_eval": (lambda: sampling.Dynamic({"slot": 0.9, "intent": 0.9}), 3, True),
    "dynamic_dev_mid_block": (lambda: sampling.Dynamic({"slot": 0.9, "intent": 0.9}), 4, True),
    "dynamic_loss": (lambda: sampling.Dynamic(by="loss", every=3, temperature=0.02), 4, False),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_resume_is_exact_with_each_schedule(joint_data, tmp_path, name):
    make, stop, evaluate = SCHEDULES[name]
    total = 8
    full = build(joint_data, make(), evaluate=evaluate)
    limit(full, total)
    full.train(print_steps=0)
    first = build(joint_data, make(), evaluate=evaluate)
    limit(first, stop)
    first.set_saver(str(tmp_path), save_steps=stop)
    first.train(print_steps=0)
    second = build(joint_data, make(), seed=7, evaluate=evaluate)
    limit(second, total)
    second.load_ckpt(str(tmp_path / f"ckpt.step{stop}"))
    second.train(print_steps=0)
    assert_same(params(second.model), params(full.model))
    np.testing.assert_array_equal(second.plan.updates[:total], full.plan.updates[:total])
    if full.schedule.dynamic:  # the decisions moved off the initial (uniform) distribution
        assert any(abs(p[0] - 0.5) > 0.01 for _, _, p in full.plan.blocks.decisions[1:])
        assert second.plan.blocks.decisions == full.plan.blocks.decisions


def test_schedules_draw_units_with_joint_groups_and_several_per_update(joint_data):
    trainer = build(joint_data, sampling.Proportional())  # slot 12, intent 6 batches per epoch
    assert len(trainer.plan) == 36 and [t.budget for t in trainer.trainers] == \
        np.bincount(trainer.plan.updates[:, 0], minlength=2).tolist()
    readers = [t.train_reader for t in trainer.trainers]
    trainer.fit_readers_with_mixratio(readers, "slot", 2, tasks_per_update="all")
    assert trainer.plan.updates.tolist() == [[0, 1]] * 18  # 36 batches, two per update
    joint, _ = build_joint(joint_data["dir"], joint_data, intent_ratio=1.0, joint=True)
    joint.schedule = sampling.Dynamic(by="loss", every=2)
    joint.fit_readers_with_mixratio([t.train_reader for t in joint.trainers], "slot", 2, joint=True)
    assert len(joint.plan) == 24 and joint.plan.units == [(0, 1)]  # one unit: 2 epochs of the group's 12
    limit(joint, 3)
    joint.train(print_steps=0)  # drawn block by block
    assert [t.cur_train_step for t in joint.trainers] == [3, 3] and joint.schedule.state()["window"]


def test_resume_under_another_schedule_is_refused_and_old_checkpoints_are_fixed(joint_data, tmp_path):
    first = build(joint_data, sampling.Fixed())
    limit(first, 2)
    first.set_saver(str(tmp_path), save_steps=2)
    first.train(print_steps=0)
    ckpt = tmp_path / "ckpt.step2"
    with pytest.raises(checkpoint.CheckpointError, match=r"sampled its tasks with \{'name': 'Fixed'\}, this run "
                                                         r"with \{'name': 'Temperature', 'T': 2, 'cap': None\}"):
        build(joint_data, sampling.Temperature(2)).load_ckpt(str(ckpt))
    state = json.load(open(ckpt / "trainer.json"))  # a checkpoint written before schedules existed
    del state["plan"]
    json.dump(state, open(ckpt / "trainer.json", "w"))
    rewrite_manifest(ckpt)
    build(joint_data, sampling.Fixed()).load_ckpt(str(ckpt))
    with pytest.raises(checkpoint.CheckpointError, match="Uniform"):
        build(joint_data, sampling.Uniform()).load_ckpt(str(ckpt))


def test_dev_gap_schedule_needs_evaluations(joint_data):
    trainer = build(joint_data, sampling.Dynamic({"slot": 0.9, "intent": 0.9}))
    with pytest.raises(ValueError, match=r"set_evaluator\(eval_steps=N\)"):
        trainer.train(print_steps=0)
    palm_loop = build(joint_data, sampling.Dynamic(by="loss"))  # PALM's own loop: no evaluation interval
    with pytest.raises(RuntimeError, match="every=N"):
        palm_loop.get_one_batch()


def test_evaluations_hand_their_scores_to_the_schedule(joint_data):
    trainer = build(joint_data, sampling.Dynamic({"slot": 0.9, "intent": 0.9}), evaluate=True)
    limit(trainer, 4)
    trainer.train(print_steps=0)
    last = trainer.evaluation.history[-1]["tasks"]
    assert trainer.schedule.state()["scores"] == {"slot": last["slot"]["entity_f1"],
                                                  "intent": last["intent"]["accuracy"]}
    decided = trainer.plan.blocks.decisions[1]  # the block after the evaluation at step 3
    gaps = np.maximum([0.9 - trainer.evaluation.history[0]["tasks"]["slot"]["entity_f1"],
                       0.9 - trainer.evaluation.history[0]["tasks"]["intent"]["accuracy"]], 0.01)
    assert decided[0] == 4 and np.allclose(decided[2], gaps / gaps.sum())


# ------------------------------------------------------------- data parallelism
@pytest.mark.parametrize("schedule", [["--schedule", "dynamic_loss"], ["--schedule", "dynamic_dev", "--evaluate"]],
                         ids=["loss", "dev_gap"])
def test_two_ranks_draw_the_same_tasks_with_a_dynamic_schedule(job_data, tmp_path, schedule):  # noqa: F811
    run(["--data", job_data, "--batch_size", "4"] + schedule, str(tmp_path), nproc=2)
    draws = [json.load(open(tmp_path / f"draws.rank{r}.json")) for r in (0, 1)]
    assert draws[0]["updates"] == draws[1]["updates"] and len(draws[0]["updates"]) == 48
    assert draws[0]["decisions"] == draws[1]["decisions"]
    assert any(abs(p[0] - 0.5) > 0.01 for _, _, p in draws[0]["decisions"][1:])  # the schedule did decide
    rank0, rank1 = load(tmp_path / "params.rank0.npz"), load(tmp_path / "params.rank1.npz")
    for k in rank0:
        np.testing.assert_array_equal(rank0[k], rank1[k], err_msg=k)


def test_broadcast_object_is_the_object_in_one_process():
    assert distributed.broadcast_object([0.25, 0.75]) == [0.25, 0.75]
