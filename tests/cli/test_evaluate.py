"""unrolled-evaluate as a user runs it: a table and two files, or one line naming each bad file.

The good run is a subprocess; the failing one calls the entry point in process (same code
path, without the seconds of imports).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers.common import run_cli

BIN = Path(sys.executable).parent / "unrolled-evaluate"


def _start(tmp_path, name, *overrides):
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}  # runs share cores
    return subprocess.Popen(
        [str(BIN), f"hydra.run.dir={tmp_path / 'hydra' / name}", *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def _main(tmp_path, name, *overrides):
    """The entry point in this process (no import cost): ``(exit status, stdout, stderr)``."""
    return run_cli("evaluate", tmp_path / "hydra" / name, *overrides)


def _finish(proc):
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def _folders(root, names, acquisitions, seed=0):
    rng = np.random.default_rng(seed)
    for name, acq in zip(names, acquisitions, strict=True):
        gt = np.abs(rng.normal(size=(3, 24, 20))).cumsum(-1).astype(np.float32)
        pred = (gt + rng.normal(scale=0.2 * gt.std(), size=gt.shape)).astype(np.float32)
        for sub, key, data in (("t", "reconstruction_rss", gt), ("p", "reconstruction", pred)):
            (root / sub).mkdir(parents=True, exist_ok=True)
            with h5py.File(root / sub / name, "w") as hf:
                hf.create_dataset(key, data=data)
                hf.attrs["acquisition"] = acq
    return root / "t", root / "p"


def test_scores_like_fastmri_and_names_every_bad_file(tmp_path):
    evaluate = pytest.importorskip("fastmri.evaluate")
    good_t, good_p = _folders(
        tmp_path / "good", ["v1.h5", "v2.h5", "v3.h5"], ["AXT1", "AXT2"] * 1 + ["AXT2"]
    )
    bad_t, bad_p = _folders(tmp_path / "bad", ["v1.h5", "v2.h5", "v3.h5"], ["AXT1"] * 3, seed=1)
    (bad_p / "v1.h5").unlink()
    (bad_p / "v2.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    with h5py.File(bad_p / "v3.h5", "w") as hf:
        hf.create_dataset("reconstruction", data=np.zeros((2, 24, 20), np.float32))

    good = _start(
        tmp_path, "good", f"target_dir={good_t}", f"predictions_dir={good_p}", "acquisition=AXT2"
    )
    # the failing run in this process, while the subprocess runs
    bad_rc, _, bad_err = _main(tmp_path, "bad", f"target_dir={bad_t}", f"predictions_dir={bad_p}")
    rc, out, err = _finish(good)

    assert rc == 0, err
    assert "SSIM" in out and "PSNR" in out and "2 volumes" in out
    summary = json.loads((good_p / "metrics.json").read_text())
    assert summary["count"] == 2 and summary["filters"]["acquisition"] == "AXT2"
    rows = (good_p / "metrics_per_volume.csv").read_text().splitlines()
    assert rows[0].startswith("fname,") and [r.split(",")[0] for r in rows[1:]] == [
        "v2.h5",
        "v3.h5",
    ]
    psnrs = []
    for name in ("v2.h5", "v3.h5"):
        with h5py.File(good_t / name) as t, h5py.File(good_p / name) as p:
            gt, pred = t["reconstruction_rss"][()], p["reconstruction"][()]
        gt, pred = gt[:, 2:22], pred[:, 2:22]  # fastMRI's crop to (w_t, w_t) = (20, 20)
        psnrs.append(float(evaluate.psnr(gt, pred)))
    assert summary["metrics"]["psnr"]["mean"] == pytest.approx(np.mean(psnrs), abs=1e-6)

    assert bad_rc == 1
    assert "Traceback" not in bad_err
    lines = [ln for ln in bad_err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), bad_err
    assert "missing from predictions: v1.h5" in lines[0]
    assert f"{bad_p / 'v2.h5'} (cannot open as HDF5" in lines[0]
    assert "v3.h5 (prediction has 2 slices, target 3)" in lines[0]
    assert not (bad_p / "metrics.json").exists() and not (bad_p / "metrics_per_volume.csv").exists()
