"""Preemption on the local cluster: a sweep job requeued mid-training, and one reaching its
time limit (submitit's USR2 warning, then requeue), resume from their own last checkpoint and
end with the weights of an uninterrupted run, bit for bit."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from .jobs import BIN, CPU_JOB, assert_same_weights, sweep_helpers, weights

HERE = Path(__file__).parent


def _overrides(root, seconds_per_step: float) -> list[str]:
    tiny = [o for o in sweep_helpers().TINY if o != "trainer.max_epochs=1"]
    return [
        *tiny,
        f"data.root={root}",
        "logger=csv",
        "trainer.max_epochs=3",  # 4 steps per epoch: 12 steps
        "trainer.limit_val_batches=1",
        "callbacks.periodic_checkpoint.every_n_train_steps=2",
        "+callbacks.slow._target_=slow_steps.SlowSteps",
        f"+callbacks.slow.seconds={seconds_per_step}",
    ]


@pytest.fixture
def started():
    """Processes started by a test: their process groups are killed when it ends."""
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()


def _start(started, args, tmp_path, name):
    """Start a command in its own process group, output to files."""
    env = {**os.environ, "PYTHONPATH": str(HERE), "WANDB_MODE": "disabled"}
    out = open(tmp_path / f"{name}.out", "w")
    proc = subprocess.Popen(
        [str(a) for a in args],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp_path,
        start_new_session=True,
    )
    started.append(proc)
    return proc


def _finish(proc, timeout):
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
        raise AssertionError(f"{proc.args[0]} still running after {timeout} s") from None


def _reference(started, tmp_path, overrides):
    """The same job, uninterrupted, outside SLURM (started now, runs alongside)."""
    return _start(
        started,
        [BIN / "unrolled-train", *overrides, f"hydra.run.dir={tmp_path / 'ref'}"],
        tmp_path,
        "reference",
    )


def _sweep(started, tmp_path, overrides, *launcher):
    sweep = tmp_path / "sweep"
    cmd = [
        BIN / "unrolled-train",
        "-m",
        *overrides,
        f"hydra.sweep.dir={sweep}",
        "hydra/launcher=slurm",
        *CPU_JOB,
        *launcher,
    ]
    return _start(started, cmd, tmp_path, "launcher"), sweep


def _job_id(sweep: Path, timeout=120) -> str:
    """The SLURM job id of a one-job sweep (submitit's folder .submitit/JOBID)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p.name for p in (sweep / ".submitit").glob("[0-9]*") if p.is_dir()]
        if found:
            return found[0]
        time.sleep(1)
    raise AssertionError("no job submitted")


def _check_resumed_exactly(slurm_cluster, tmp_path, sweep, task, ref, launcher):
    assert _finish(launcher, 900) == 0, (tmp_path / "launcher.out").read_text()[-3000:]
    assert _finish(ref, 600) == 0, (tmp_path / "reference.out").read_text()[-3000:]
    (info,) = slurm_cluster.wait(task, timeout=120)
    assert info["JobState"] == "COMPLETED" and int(info["Restarts"]) >= 1, info
    log = next((sweep / ".submitit" / task).glob("*_log.err")).read_text()
    log += next((sweep / ".submitit" / task).glob("*_log.out")).read_text()
    assert "resuming from" in log
    (a, step_a), (b, step_b) = (
        weights(tmp_path / "ref" / "checkpoints" / "last.ckpt"),
        weights(sweep / "0" / "checkpoints" / "last.ckpt"),
    )
    assert step_a == step_b == 12
    assert_same_weights(a, b)
    print(slurm_cluster.table())
    return info, log


@pytest.mark.slow
def test_a_requeued_sweep_job_resumes_from_its_last_checkpoint(
    slurm_cluster, tiny_root, tmp_path, started
):
    overrides = _overrides(tiny_root, seconds_per_step=3)
    ref = _reference(started, tmp_path, overrides)
    launcher, sweep = _sweep(started, tmp_path, overrides)
    task = _job_id(sweep)
    last = sweep / "0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 600
    step = 0
    while step < 4:  # mid-training: after the 2nd periodic checkpoint
        assert time.monotonic() < deadline and launcher.poll() is None, "job ended early"
        time.sleep(1)
        try:
            step = weights(last)[1]
        except Exception:  # not written yet, or being written
            continue
    assert step < 12
    slurm_cluster.run("scontrol", "requeue", task)
    print(f"requeued {task} at global step {step}")
    info, log = _check_resumed_exactly(slurm_cluster, tmp_path, sweep, task, ref, launcher)
    print(re.findall(r".*resuming from.*", log))


@pytest.mark.slow
def test_a_sweep_job_at_its_time_limit_is_requeued_and_resumes(
    slurm_cluster, tiny_root, tmp_path, started
):
    # --time=2 with USR2 30 s before it; SLURM checks limits every 30 s, so the warning comes
    # 60 to 90 s after the start. The 12 steps take 84 s: at least one timeout; each attempt
    # resumes from last.ckpt (at most 2 steps lost); under load it may take more attempts.
    overrides = _overrides(tiny_root, seconds_per_step=7)
    ref = _reference(started, tmp_path, overrides)
    launcher, sweep = _sweep(
        started,
        tmp_path,
        overrides,
        "hydra.launcher.timeout_min=2",
        "hydra.launcher.signal_delay_s=30",
        "hydra.launcher.max_num_timeout=6",
    )
    task = _job_id(sweep)
    info, log = _check_resumed_exactly(slurm_cluster, tmp_path, sweep, task, ref, launcher)
    assert "Caught signal SIGUSR2" in log and "timed-out" in log
    print(re.findall(r".*(?:Caught signal|Requeued job|resuming from).*", log))
