"""Real multi-process DDP (gloo on CPU): validation metrics equal a single process's."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest

from unrolled.cli.compose import compose_config
from unrolled.cli.train import build

SMALL = [
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
    "~callbacks.progress_bar",
    "~callbacks.image_logger",
    "~baselines.cg_sense",
    "cg_sense_lambda_grid=null",
]


@pytest.mark.slow
def test_two_process_ddp_validation_equals_single_process(tiny_root, tmp_path):
    run = tmp_path / "ddp"
    # validate on the 2-volume train split: one whole volume per rank
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "unrolled-train"),
            *SMALL,
            f"data.root={tiny_root}",
            "data.val_split=train",
            "trainer.devices=2",
            "trainer.strategy=ddp",
            f"hydra.run.dir={run}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "WANDB_MODE": "disabled"},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader(open(run / "csv" / "version_0" / "metrics.csv")))
    logged = [r for r in rows if r.get("val/ssim")][-1]
    last = run / "checkpoints" / "last.ckpt"
    assert last.is_file()

    cfg = compose_config(
        "train", [*SMALL, f"data.root={tiny_root}", "data.val_split=train"], tmp_path / "single"
    )
    L.seed_everything(0)
    dm, module, trainer = build(cfg)
    (single,) = trainer.validate(module, datamodule=dm, ckpt_path=str(last), verbose=False)
    for key in ("val/ssim", "val/psnr", "val/nmse"):
        assert float(logged[key]) == pytest.approx(single[key], rel=1e-6, abs=1e-9), key
