"""Real multi-process DDP (gloo on CPU) with the default callbacks: it finishes, writes its
figures once, its validation and test metrics equal a single process's; SIGTERM ends a
rank stuck in communication. Every run is killed with its process group on a timeout."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
from helpers.process_group import run_group

from unrolled.cli.compose import compose_config
from unrolled.cli.train import build, compare_with_baselines

HELPERS = Path(__file__).resolve().parents[1] / "helpers"
TRAIN = str(Path(sys.executable).parent / "unrolled-train")
SMALL = [  # the default callbacks group, image grid and checkpoints included
    "experiment=embedded",
    "synth=null",
    "logger=csv",
    "model.num_cascades=1",
    "model.denoiser.cnn.channels=4",
    "model.denoiser.cnn.num_blocks=1",
    "mask.center_fractions=[0.16]",
    "data.batch_size=1",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "~baselines.cg_sense",
    "cg_sense_lambda_grid=null",
    # validate and test on the 2-volume train split: one whole volume per rank
    "data.val_split=train",
    "data.test_split=train",
]
ENV = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_two_process_ddp_with_default_callbacks_equals_single_process(tiny_root, tmp_path):
    """Issue 10 section 1: before, rank 0 asked the trainer for its log directory (a
    broadcast) in the image callback while rank 1 waited in the epoch-end gather: a hang."""
    run = tmp_path / "ddp"
    overrides = [*SMALL, f"data.root={tiny_root}"]
    ddp = ["trainer.devices=2", "trainer.strategy=ddp", f"hydra.run.dir={run}"]
    proc = run_group([TRAIN, *overrides, *ddp], timeout=900, env=ENV, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]

    # the figures, once: no second copy from rank 1, anywhere
    pngs = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png"))
    assert pngs == ["ddp/csv/version_0/figures/val_epoch000.png", "ddp/figures/test_comparison.png"]
    ckpts = sorted(p.name for p in (run / "checkpoints").glob("*.ckpt"))
    assert ckpts == ["best-epoch000.ckpt", "last.ckpt"]

    # the same weights in one process give the same validation and test metrics
    rows = list(csv.DictReader(open(run / "csv" / "version_0" / "metrics.csv")))
    logged = [r for r in rows if r.get("val/ssim")][-1]
    cfg = compose_config("train", overrides, tmp_path / "single")
    L.seed_everything(0)
    dm, module, trainer = build(cfg)
    (single,) = trainer.validate(
        module, datamodule=dm, ckpt_path=str(run / "checkpoints" / "last.ckpt"), verbose=False
    )
    for key in ("val/ssim", "val/psnr", "val/nmse"):
        assert float(logged[key]) == pytest.approx(single[key], rel=1e-6, abs=1e-9), key
    best = str(run / "checkpoints" / "best-epoch000.ckpt")
    trainer.test(module, datamodule=dm, ckpt_path=best, verbose=False)
    expected = compare_with_baselines(cfg, dm, module, tmp_path / "single")
    got = json.loads((run / "metrics.json").read_text())
    assert set(got) == set(expected) == {"zero_filled", "unrolled"}
    for method, scores in expected.items():
        for metric, value in scores.items():
            assert got[method][metric] == pytest.approx(value, rel=1e-6), (method, metric)


@pytest.mark.slow
def test_sigterm_ends_ranks_stuck_in_communication(tiny_root, tmp_path):
    """A rank blocked in C++ communication cannot run Python's signal handlers: the
    watchdog callback ends the run grace_s after SIGTERM (before: ignored for 30 min)."""
    run = tmp_path / "stuck"
    marker = tmp_path / "stuck.marker"
    cmd = [
        TRAIN,
        *SMALL,
        f"data.root={tiny_root}",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "callbacks.termination.grace_s=5",
        "+callbacks.stuck._target_=fault_injection.DeadlockAtStep",
        "+callbacks.stuck.step=1",
        f"+callbacks.stuck.marker={marker}",
        f"hydra.run.dir={run}",
    ]
    env = {**ENV, "PYTHONPATH": str(HELPERS)}
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "stderr.txt", "w"),
    )
    try:
        deadline = time.monotonic() + 600
        while not (marker.with_suffix(".0").exists() and marker.with_suffix(".1").exists()):
            assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()[-3000:]
            assert time.monotonic() < deadline, "the ranks never reached the deadlock"
            time.sleep(1)
        time.sleep(3)  # both ranks inside their blocking receive
        os.killpg(proc.pid, signal.SIGTERM)  # as SLURM, docker stop or a test runner do
        sent = time.monotonic()
        try:
            code = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail("SIGTERM ignored: still running 120 s later")
        waited = time.monotonic() - sent
        for _ in range(30):  # and no rank is left behind
            if not _running_in_group(proc.pid):
                break
            time.sleep(1)
        else:
            pytest.fail(f"ranks outlived the run: {_running_in_group(proc.pid)}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert code == 128 + signal.SIGTERM, (tmp_path / "stderr.txt").read_text()[-3000:]
    assert 5 <= waited < 120
    assert "SIGTERM not obeyed within 5 s" in (tmp_path / "stderr.txt").read_text()


def _running_in_group(pgid: int) -> list[int]:
    """Processes of a process group that are still running (zombies excluded), from /proc."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # state, ppid, pgrp
            pids.append(int(stat.parent.name))
    return pids
