"""Faults: SIGKILL mid-epoch then resume with the same command; a NaN loss stops cleanly."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from unrolled.cli.compose import compose_config
from unrolled.cli.train import build

HELPERS = Path(__file__).resolve().parents[1] / "helpers"
SMALL = [
    "experiment=embedded",
    "synth=null",
    "logger=csv",
    "model.num_cascades=1",
    "model.denoiser.cnn.channels=4",
    "model.denoiser.cnn.num_blocks=1",
    "mask.center_fractions=[0.16]",
    "data.batch_size=1",  # 4 training slices: 4 steps per epoch
    "trainer.max_epochs=3",
    "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "callbacks.periodic_checkpoint.every_n_train_steps=2",
    "~callbacks.progress_bar",
    "~callbacks.image_logger",
    "~baselines.cg_sense",
    "cg_sense_lambda_grid=null",
]


def _train(run_dir, root, *extra):
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(HELPERS)}
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "unrolled-train"),
            *SMALL,
            f"data.root={root}",
            f"hydra.run.dir={run_dir}",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def _weights(run_dir):
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    return ckpt["state_dict"], ckpt["global_step"]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_same_command_resumes_exactly(tiny_root, tmp_path):
    ref = _train(tmp_path / "ref", tiny_root)
    assert ref.returncode == 0, ref.stderr[-2000:]

    run = tmp_path / "killed"
    killed = _train(
        run,
        tiny_root,
        "+callbacks.kill._target_=fault_injection.KillAtStep",
        "+callbacks.kill.step=7",
    )  # epoch 1, after its 3rd of 4 batches
    assert killed.returncode == -9, killed.stderr[-2000:]
    _, step = _weights(run)
    assert step == 6  # the periodic checkpoint before the kill, mid-epoch
    resumed = _train(run, tiny_root)  # the same command: resume=auto by default
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stderr + resumed.stdout

    (a, step_a), (b, step_b) = _weights(tmp_path / "ref"), _weights(run)
    assert step_a == step_b == 12
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(
    tiny_root, tmp_path
):
    cfg = compose_config(
        "train", [*SMALL, f"data.root={tiny_root}", "trainer.max_epochs=2"], tmp_path
    )
    dm, module, trainer = build(cfg)

    class Poisoned(torch.nn.Module):
        """The real loss, turned NaN from step 3 on."""

        def __init__(self, loss):
            super().__init__()
            self.inner = loss

        def forward(self, pred, target, max_value):
            out = self.inner(pred, target, max_value)
            return out * float("nan") if trainer.global_step >= 3 else out

    module.loss = Poisoned(module.loss)
    with pytest.raises(FloatingPointError, match="non-finite training loss .* step 3"):
        trainer.fit(module, datamodule=dm)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())


def _train_steps(run_dir, version):
    """The optimisation steps logged by one run (csv/version_N) of a run directory."""
    import csv

    rows = csv.DictReader(open(run_dir / "csv" / f"version_{version}" / "metrics.csv"))
    return [int(r["step"]) for r in rows if r.get("train/loss")]


@pytest.mark.slow
def test_short_epochs_resume_from_the_highest_step_and_end_identical(tiny_root, tmp_path):
    """Issue 10 section 2: epochs shorter than the checkpoint period (5 epochs of 2 steps,
    last.ckpt every 3 steps). Before, a second writer left last.ckpt at step 2 and
    last-v1.ckpt at step 9, and resume=auto restarted from step 2."""
    schedule = [
        "data.batch_size=2",  # 4 training slices: 2 steps per epoch
        "trainer.max_epochs=5",
        "callbacks.periodic_checkpoint.every_n_train_steps=3",
    ]
    ref = _train(tmp_path / "ref", tiny_root, *schedule)
    assert ref.returncode == 0, ref.stderr[-2000:]
    run = tmp_path / "killed"
    kill = ["+callbacks.kill._target_=fault_injection.KillAtStep", "+callbacks.kill.step=10"]
    killed = _train(run, tiny_root, *schedule, *kill)  # killed after the last step, unsaved
    assert killed.returncode == -9, killed.stderr[-2000:]
    saved = {p.name: _step(p) for p in sorted((run / "checkpoints").glob("*.ckpt"))}
    resumed = _train(run, tiny_root, *schedule)  # the same command: resume=auto by default
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "(global step 9)" in resumed.stderr + resumed.stdout, saved
    assert _train_steps(run, 1) == [9], saved  # resumed with the 10th step (0-based 9) alone
    assert [name for name in saved if name.startswith("last")] == ["last.ckpt"], saved  # 1 writer

    (a, step_a), (b, step_b) = _weights(tmp_path / "ref"), _weights(run)
    assert step_a == step_b == 10
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    assert (tmp_path / "ref" / "metrics.json").read_text() == (run / "metrics.json").read_text()


def _step(path):
    return torch.load(path, weights_only=True)["global_step"]
