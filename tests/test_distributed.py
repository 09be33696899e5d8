"""Data parallelism: 2 CPU processes under paddle.distributed.launch (gloo) vs one process."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
JOB = os.path.join(HERE, "dist", "tiny_job.py")


@pytest.fixture(scope="module")
def job_data(joint_data):
    with open(os.path.join(joint_data["dir"], "sizes.json"), "w") as f:
        json.dump(joint_data, f)
    return joint_data["dir"]


def run(args, out, nproc=1, timeout=240, check=True):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), MKL_NUM_THREADS="1")
    for key in [k for k in env if k.startswith("PADDLE_")]:
        env.pop(key)
    os.makedirs(out, exist_ok=True)
    if nproc == 1:
        cmd = [sys.executable, JOB] + args + ["--out", out]
    else:
        cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(nproc),
               "--log_dir", os.path.join(out, "logs"), JOB] + args + ["--out", out]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    logs = ""
    if nproc > 1 and os.path.isdir(os.path.join(out, "logs")):
        for name in sorted(os.listdir(os.path.join(out, "logs"))):
            logs += open(os.path.join(out, "logs", name), errors="replace").read()
    if check and proc.returncode != 0:
        tails = ""  # the end of each worker's log (an abort message is the last line of its own log)
        if nproc > 1 and os.path.isdir(os.path.join(out, "logs")):
            for name in sorted(n for n in os.listdir(os.path.join(out, "logs")) if n.startswith("workerlog")):
                tails += f"--- {name}:\n" + open(os.path.join(out, "logs", name), errors="replace").read()[-1500:]
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}\n{tails}")
    return proc, logs


def load(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def assert_params_close(a, b, atol=1e-5):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=atol, err_msg=k)


@pytest.mark.parametrize("mode", [[], ["--single_task"], ["--joint"], ["--tasks_per_update", "all"],
                                  ["--joint", "--balancer", "PCGrad"], ["--tasks_per_update", "all", "--balancer", "FAMO"],
                                  ["--joint", "--balancer", "GradNorm"]],
                         ids=["multi_task", "single_task", "joint_batches", "all_tasks_per_update", "joint_pcgrad",
                              "all_tasks_famo", "joint_gradnorm"])
def test_two_ranks_equal_one_process_on_the_same_global_batches(job_data, tmp_path, mode):
    flags = ["--data", job_data] + mode
    run(flags + ["--batch_size", "4"], str(tmp_path / "dp"), nproc=2)
    run(flags + ["--batch_size", "8"], str(tmp_path / "one"))
    rank0, rank1 = load(tmp_path / "dp" / "params.rank0.npz"), load(tmp_path / "dp" / "params.rank1.npz")
    for k in rank0:
        np.testing.assert_array_equal(rank0[k], rank1[k], err_msg=k)
    assert_params_close(rank0, load(tmp_path / "one" / "params.rank0.npz"))


def test_failing_rank_stops_the_job_with_its_error(job_data, tmp_path):
    start = time.time()
    proc, logs = run(["--data", job_data, "--batch_size", "4", "--fail_at_step", "3"], str(tmp_path),
                     nproc=2, check=False, timeout=120)
    assert proc.returncode != 0
    assert time.time() - start < 60
    assert "injected failure on rank 1 at step 3" in proc.stdout + proc.stderr + logs


def test_rank_0_tears_down_after_the_other_ranks_have_exited(tmp_path):
    # Both ranks tearing Paddle's gloo/store state down at once made rank 0 abort now and then.
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), MKL_NUM_THREADS="1")
    for key in [k for k in env if k.startswith("PADDLE_")]:
        env.pop(key)
    record = tmp_path / "exit.json"
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
           str(tmp_path / "logs"), os.path.join(HERE, "dist", "exit_order_job.py"), str(record)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert json.load(open(record)) == {"peers_running": [False]}


def test_waiting_for_processes_counts_a_zombie_as_gone():
    from paddlepalm import distributed

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    try:
        assert distributed.process_alive(child.pid)
        start = time.time()
        assert distributed.wait_until_gone([child.pid], timeout=30)  # not reaped yet: a zombie
        assert 0.2 < time.time() - start < 20
        assert not distributed.wait_until_gone([os.getpid()], timeout=0.05)
    finally:
        child.wait()


def test_resume_two_rank_checkpoint_in_one_process(job_data, tmp_path):
    # Uninterrupted 2-rank run, checkpoints every 6 steps.
    run(["--data", job_data, "--batch_size", "4", "--save_steps", "6"], str(tmp_path / "dp"), nproc=2)
    # A single process with the same global batch resumes from step 6 and ends where the 2-rank run ended.
    ckpt = str(tmp_path / "dp" / "ckpt" / "ckpt.step6")
    run(["--data", job_data, "--batch_size", "8", "--resume", ckpt], str(tmp_path / "resumed"))
    assert_params_close(load(tmp_path / "dp" / "params.rank0.npz"), load(tmp_path / "resumed" / "params.rank0.npz"))


def test_prediction_of_several_heads_matches_one_process(job_data, tmp_path):
    run(["--data", job_data, "--batch_size", "8", "--save_steps", "1000"], str(tmp_path / "train"))
    ckpt = [d for d in os.listdir(tmp_path / "train" / "ckpt") if d.startswith("ckpt.step")][0]
    ckpt = str(tmp_path / "train" / "ckpt" / ckpt)
    run(["--data", job_data, "--batch_size", "5", "--predict", ckpt], str(tmp_path / "dp"), nproc=2)
    run(["--data", job_data, "--batch_size", "5", "--predict", ckpt], str(tmp_path / "one"))
    for task in ("slot", "intent"):
        dp = [json.loads(l) for l in open(tmp_path / "dp" / task / "predictions.json")]
        one = [json.loads(l) for l in open(tmp_path / "one" / task / "predictions.json")]
        if task == "slot":  # PALM's format: one list of tag ids per line, in input order
            assert dp == one and all(isinstance(r, list) for r in dp)
        else:
            assert [r["index"] for r in dp] == list(range(len(one)))
            assert [r["label"] for r in dp] == [r["label"] for r in one]


def test_evaluation_during_training_scores_the_whole_dev_set_on_every_rank(job_data, tmp_path):
    run(["--data", job_data, "--batch_size", "4", "--evaluate"], str(tmp_path / "dp"), nproc=2)
    run(["--data", job_data, "--batch_size", "8", "--evaluate"], str(tmp_path / "one"))
    histories = [json.load(open(tmp_path / "dp" / f"eval.rank{r}.json")) for r in (0, 1)]
    single = json.load(open(tmp_path / "one" / "eval.rank0.json"))
    assert histories[0] == histories[1]
    assert [h["step"] for h in histories[0]] == [h["step"] for h in single] and len(single) >= 2
    for dp, one in zip(histories[0], single):
        for task in ("slot", "intent"):
            for name, value in one["tasks"][task].items():
                assert abs(dp["tasks"][task][name] - value) < 1e-6, (task, name)
