"""``unrolled-synth fov_fraction``: a phase-encoding field of view smaller than the head."""

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from unrolled.data.synth import generate_dataset
from unrolled.data.synth_volume import synthesize_volume
from unrolled.physics.fft import fft2c, ifft2c
from unrolled.physics.fov import fold_fov


def test_folded_kspace_is_the_fft_of_the_folded_head():
    """Same head, same pixel size: the folded k-space is the FFT of the full-FOV coil images
    wrapped onto the centred 60 % (noise-free, so exactly comparable)."""
    kw = dict(num_slices=1, num_coils=4, height=64, width=64, snr=None)
    full, meta_full = synthesize_volume(np.random.default_rng(5), **kw)
    folded, meta = synthesize_volume(np.random.default_rng(5), fov_fraction=0.6, **kw)
    assert full.shape == (1, 4, 64, 64) and folded.shape == (1, 4, 64, 38)
    assert meta.pixel_mm == meta_full.pixel_mm
    expected = fft2c(fold_fov(ifft2c(torch.from_numpy(full)), 0.6))
    scale = np.abs(full).max()
    np.testing.assert_allclose(folded, expected.numpy(), atol=1e-5 * scale)
    # the head really wraps: signal from outside the centred 38 columns lands inside
    image = ifft2c(torch.from_numpy(full)).abs().pow(2).sum(1)[0]  # (64, 64)
    assert image[:, :13].sum() + image[:, 51:].sum() > 0.01 * image.sum()


def test_dataset_with_fov_fraction_writes_folded_files(tmp_path):
    summary = generate_dataset(
        tmp_path, num_volumes=3, slices_per_volume=1, num_coils=4, height=64, width=64,
        split=(1, 1, 1), fov_fraction=0.75, progress=False,
    )  # fmt: skip
    # folding shortens the phase-encoding side only: the readout keeps the whole head
    assert summary["kspace_shape"] == (1, 4, 64, 48) and summary["recon_shape"] == (64, 48)
    with h5py.File(next((tmp_path / "test").glob("*.h5"))) as f:
        assert f["kspace"].shape == (1, 4, 64, 48)
        assert f["reconstruction_rss"].shape == (1, 64, 48)
        header = f["ismrmrd_header"][()].decode()
    assert "<y>48</y>" in header  # encoded matrix: 48 phase-encoding columns


def test_bad_fov_fraction_fails_before_writing(tmp_path):
    with pytest.raises(ValueError, match="fov_fraction"):
        generate_dataset(tmp_path / "x", fov_fraction=1.5, progress=False)
    assert not (tmp_path / "x").exists()
    exe = Path(sys.executable).parent / "unrolled-synth"
    if not exe.is_file():
        pytest.skip("unrolled-synth is not installed in this environment")
    args = [str(exe), f"output_dir={tmp_path / 'y'}", "fov_fraction=0"]
    run = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "fov_fraction" in lines[0], run.stderr
    assert not (tmp_path / "y").exists()
