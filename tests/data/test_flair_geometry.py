"""FLAIR-like geometry: k-space narrower than the recon matrix (issue 10, section 6).

fastMRI's brain FLAIR files have k-space width 213 with a 320 x 320 ``reconSpace`` and
references stored as ``(slices, 213, 213)``. fastMRI loads them and crops to ``(W, W)``
(``VarNetModule.test_step`` and ``UnetDataTransform``, "check for FLAIR 203"). Before,
``unrolled`` rejected a scaled-down copy (k-space 256 x 100, recon 256 x 256):
``dataset 'reconstruction_rss' has shape (2, 100, 100), expected (2, 256, 100)``.
Now it reads, trains on, reconstructs and scores such files with fastMRI's crop sizes.
"""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from unrolled.data.fastmri_io import read_slice, read_volume_info, reference_crop_size
from unrolled.data.header import build_ismrmrd_header
from unrolled.data.transforms import UnrolledTransform
from unrolled.evaluation.scoring import evaluate_folder
from unrolled.inference.folder import list_volumes, reconstruct_volumes
from unrolled.methods.classical import ZeroFilled
from unrolled.physics.masks import EquispacedMaskFractionFunc

H, W, RECON = 256, 100, (256, 256)  # the scaled-down FLAIR copy of the issue
SLICES, COILS = 2, 4


def _smooth_kspace(seed: int) -> np.ndarray:
    """``(SLICES, COILS, H, W)`` complex64 k-space of smooth coil images."""
    g = torch.Generator().manual_seed(seed)
    low = torch.randn(SLICES, 2 * COILS, H // 16, W // 10, generator=g)
    up = torch.nn.functional.interpolate(low, size=(H, W), mode="bilinear")
    images = torch.complex(up[:, :COILS], up[:, COILS:]).numpy()
    axes = (-2, -1)
    k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(images, axes), norm="ortho"), axes)
    return k.astype(np.complex64)


def write_flair_like(path: Path, seed: int = 0) -> np.ndarray:
    """A fastMRI-layout file with FLAIR geometry; the reference is (S, W, W) like fastMRI's.

    Returns the reference.
    """
    kspace = _smooth_kspace(seed)
    axes = (-2, -1)
    images = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes), norm="ortho"), axes)
    rss = np.sqrt((np.abs(images) ** 2).sum(1))  # (S, H, W)
    top = (H - W) // 2
    target = rss[:, top : top + W, :].astype(np.float32)  # (S, W, W)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=kspace)
        f.create_dataset("ismrmrd_header", data=build_ismrmrd_header((H, W, 1), (*RECON, 1), COILS))
        f.create_dataset("reconstruction_rss", data=target)
        f.attrs["max"] = float(target.max())
        f.attrs["acquisition"] = "AXFLAIR"
    return target


@pytest.fixture
def flair_dir(tmp_path) -> Path:
    for split, seed in (("train", 0), ("val", 1), ("test", 2)):
        write_flair_like(tmp_path / "data" / split / f"file_brain_flair_{split}.h5", seed)
    return tmp_path / "data"


def test_crop_rule():
    assert reference_crop_size((640, 213), (320, 320)) == (213, 213)  # real brain FLAIR
    assert reference_crop_size((H, W), RECON) == (W, W)
    assert reference_crop_size((640, 368), (320, 320)) == (320, 320)  # knee: recon size
    assert reference_crop_size((16, 6), (8, 8)) == (6, 6)


def test_crop_sizes_as_fastmri(flair_dir):
    """Our reference, crop size and zero-filled image against fastmri.data.SliceDataset +
    VarNetDataTransform (with VarNetModule.test_step's FLAIR crop) and UnetDataTransform."""
    fastmri = pytest.importorskip("fastmri")
    from fastmri.data import SliceDataset, transforms
    from fastmri.data.subsample import EquispacedMaskFractionFunc as TheirMask

    path = flair_dir / "test" / "file_brain_flair_test.h5"
    info = read_volume_info(path)  # raised "expected (2, 256, 100)" before
    assert info.crop_size == (W, W)

    theirs = SliceDataset(
        flair_dir / "test",
        "multicoil",
        transform=transforms.VarNetDataTransform(TheirMask([0.08], [4]), use_seed=True),
    )
    unet = SliceDataset(
        flair_dir / "test",
        "multicoil",
        transform=transforms.UnetDataTransform("multicoil", TheirMask([0.08], [4]), True),
    )
    ours = UnrolledTransform(EquispacedMaskFractionFunc([0.08], [4]), use_seed=True)
    for i in range(SLICES):
        sample = theirs[i]
        # VarNetModule.test_step: "check for FLAIR 203"
        their_crop = tuple(int(v) for v in sample.crop_size)
        if sample.masked_kspace.shape[-2] < their_crop[1]:
            their_crop = (sample.masked_kspace.shape[-2], sample.masked_kspace.shape[-2])
        mine = ours(read_slice(path, i))
        assert tuple(mine.crop_size.tolist()) == their_crop == (W, W)
        assert tuple(mine.target.shape) == tuple(sample.target.shape) == (W, W)
        assert tuple(unet[i].image.shape) == (W, W)  # UnetDataTransform's crop
        # same mask, same zero-filled RSS image at that crop
        assert torch.equal(mine.mask[0, 0].bool(), sample.mask[0, 0, :, 0].bool())
        zf = fastmri.rss(
            fastmri.complex_abs(
                transforms.complex_center_crop(fastmri.ifft2c(sample.masked_kspace), their_crop)
            )
        )
        pred = ZeroFilled()(mine.kspace[None], mine.mask[None], None).image[0]
        top = (H - W) // 2
        torch.testing.assert_close(pred[top : top + W], zf, rtol=1e-4, atol=1e-7)


def test_reconstruct_and_evaluate(flair_dir, tmp_path):
    out = tmp_path / "recon"
    mask = EquispacedMaskFractionFunc([0.08], [4])
    reconstruct_volumes(ZeroFilled(), list_volumes(flair_dir / "test"), out, mask)
    with h5py.File(out / "file_brain_flair_test.h5") as f:
        assert f["reconstruction"].shape == (SLICES, W, W)
    evaluation = evaluate_folder(flair_dir / "test", out)
    (score,) = evaluation.volumes
    assert (score.height, score.width) == (W, W)
    assert math.isfinite(score.psnr) and 0 < score.ssim < 1


def test_training_on_flair_geometry(flair_dir, tmp_path):
    """A real fit, validation and test on FLAIR-like files only (one step each)."""
    from unrolled.cli.compose import compose_config
    from unrolled.cli.train import build

    cfg = compose_config(
        "train",
        [
            "experiment=embedded",
            "synth=null",
            "logger=csv",
            f"data.root={flair_dir}",
            "model.num_cascades=1",
            "model.denoiser.cnn.channels=4",
            "model.denoiser.cnn.num_blocks=1",
            "mask=equispaced_fraction",
            "mask.center_fractions=[0.08]",
            "trainer.enable_progress_bar=false",
            "trainer.max_steps=1",
            "scheduler.warmup_steps=1",
            "~callbacks.progress_bar",
            "~callbacks.lr_monitor",
            "~callbacks.image_logger",
        ],
        output_dir=tmp_path / "run",
    )
    dm, module, trainer = build(cfg)
    trainer.fit(module, datamodule=dm)
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert math.isfinite(float(trainer.callback_metrics["val/ssim"]))
    trainer.test(module, datamodule=dm, verbose=False)
    assert math.isfinite(float(trainer.callback_metrics["test/ssim"]))
