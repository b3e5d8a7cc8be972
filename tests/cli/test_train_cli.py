"""unrolled-train as a user runs it: bad input gives one line and a non-zero exit."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "unrolled-train"


def _run(tmp_path, *overrides):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run(
        [str(BIN), f"hydra.run.dir={tmp_path / 'run'}", "synth=null", "logger=csv", *overrides],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )


@pytest.mark.parametrize(
    "content,problem",
    [(b"", "HDF5"), (b"\x89HDF\r\n\x1a\n" + b"\0" * 40, "HDF5"), (b"not an hdf5 file", "HDF5")],
    ids=["empty", "truncated", "garbage"],
)
def test_corrupt_file_gives_one_line_error(tmp_path, content, problem):
    for split in ("train", "val", "test"):
        (tmp_path / "data" / split).mkdir(parents=True)
    bad = tmp_path / "data" / "train" / "broken.h5"
    bad.write_bytes(content)
    proc = _run(tmp_path, f"data.root={tmp_path / 'data'}")
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {bad}: ") and problem in lines[0]
    assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "run").rglob("*.ckpt")) and not (tmp_path / "run" / "csv").exists()


def test_missing_data_root_gives_one_line_error(tmp_path):
    proc = _run(tmp_path, f"data.root={tmp_path / 'nowhere'}")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "does not exist" in proc.stderr and "nowhere" in proc.stderr


def test_resume_auto_takes_the_highest_global_step_whatever_the_name(tmp_path, caplog):
    """Issue 10 section 2: the step is read from each file, not guessed from names or times."""
    import torch

    from unrolled.cli.train import resume_path

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    assert resume_path("auto", run) is None  # nothing to resume from: start afresh

    def save(name, step):
        torch.save({"global_step": step, "state_dict": {}}, run / name)
        return str(run / name)

    save("checkpoints/last-v1.ckpt", 9)
    save("checkpoints/best-epoch000.ckpt", 2)
    save("hpc_ckpt_1.ckpt", 7)
    save("checkpoints/last.ckpt", 2)  # the newest file, but a stale step
    (run / "checkpoints" / "cut-short.ckpt").write_bytes(b"PK\x03\x04 truncated")
    # listen on the module's logger itself: an in-process CLI run earlier in this worker may have
    # reconfigured logging (levels, propagation) through Hydra
    logger = logging.getLogger("unrolled.train")
    logger.disabled = False
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="unrolled.train"):
            assert resume_path("auto", run) == str(run / "checkpoints" / "last-v1.ckpt")
    finally:
        logger.removeHandler(caplog.handler)
    assert "cut-short.ckpt: unreadable" in caplog.text
    assert resume_path("auto", run) == str(run / "checkpoints" / "last-v1.ckpt")
    hpc = save("hpc_ckpt_2.ckpt", 12)  # Lightning's SLURM requeue checkpoint, further on
    assert resume_path("auto", run) == hpc
    assert resume_path(None, run) is None
    with pytest.raises(FileNotFoundError, match="nowhere.ckpt"):
        resume_path(str(tmp_path / "nowhere.ckpt"), run)


@pytest.mark.slow
def test_file_without_max_scores_the_same_in_train_and_evaluate(tiny_root, tmp_path):
    """Issue 10 section 7: without a ``max`` attribute the data range of SSIM is the whole
    reference volume's maximum in training too (before: each slice's own maximum, so
    metrics.json and val/ssim disagreed with unrolled-evaluate)."""
    import json
    import shutil

    import h5py

    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    (test_file,) = (root / "test").glob("*.h5")
    with h5py.File(test_file, "a") as f:
        del f.attrs["max"]
        ref = f["reconstruction_rss"][()]
    assert ref[0].max() != ref.max() or ref[1].max() != ref.max()  # a slice has its own max
    tiny = [
        "experiment=embedded",
        "model.num_cascades=1",
        "model.denoiser.cnn.channels=4",
        "model.denoiser.cnn.num_blocks=1",
        "mask.center_fractions=[0.16]",
        "data.batch_size=1",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "~baselines.cg_sense",
        "cg_sense_lambda_grid=null",
    ]
    train = _run(tmp_path, *tiny, f"data.root={root}")
    assert train.returncode == 0, train.stderr[-3000:]
    trained = json.loads((tmp_path / "run" / "metrics.json").read_text())["unrolled"]

    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    (best,) = (tmp_path / "run" / "checkpoints").glob("best-*.ckpt")
    recon = tmp_path / "recon"
    for tool, args in (
        (
            "unrolled-reconstruct",
            [f"checkpoint={best}", f"input_dir={root / 'test'}", f"output_dir={recon}"]
            + ["mask.center_fractions=[0.16]", "progress=false"],
        ),
        ("unrolled-evaluate", [f"target_dir={root / 'test'}", f"predictions_dir={recon}"]),
    ):
        proc = subprocess.run(
            [str(BIN.parent / tool), f"hydra.run.dir={tmp_path / tool}", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads((recon / "metrics.json").read_text())["metrics"]
    for metric in ("ssim", "psnr", "nmse"):
        assert trained[metric] == pytest.approx(evaluated[metric]["mean"], rel=1e-4), metric


@pytest.mark.parametrize("enabled", [True, False])
def test_progress_bar_switch_works_with_the_default_callbacks(tiny_root, tmp_path, enabled):
    """Issue 10 section 8: trainer.enable_progress_bar=false used to raise Lightning's
    MisconfigurationException, the callbacks group still configuring a RichProgressBar."""
    from lightning.pytorch.callbacks import RichProgressBar

    from unrolled.cli.compose import compose_config
    from unrolled.cli.train import build

    overrides = ["experiment=embedded", "synth=null", "logger=csv", f"data.root={tiny_root}"]
    cfg = compose_config(
        "train", [*overrides, f"trainer.enable_progress_bar={str(enabled).lower()}"], tmp_path
    )
    _, _, trainer = build(cfg)
    if enabled:
        assert isinstance(trainer.progress_bar_callback, RichProgressBar)
    else:
        assert trainer.progress_bar_callback is None
        assert "ImageLogger" in {type(c).__name__ for c in trainer.callbacks}  # others kept
