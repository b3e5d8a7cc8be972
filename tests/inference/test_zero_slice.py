"""A volume with one all-zero slice goes through every method of conf/method/ (issue 10, §5).

Real files hold such slices (dropped acquisitions, padding slices). Before, every method
that estimates ESPIRiT maps (cg_sense, cs_wavelet, cs_tv, zeroshot) died inside ESPIRiT
with ``MKL FFT error: Inconsistent configuration parameters``: no singular value passed
the threshold, so no kernel remained. Now that slice gets zero maps, a zero image and a
warning naming the file and the slice; the other slices are reconstructed as usual.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from unrolled.cli.common import CONFIG_DIR
from unrolled.cli.compose import compose_option
from unrolled.inference.folder import list_volumes, reconstruct_volumes
from unrolled.models.sensitivity import ZeroCalibrationWarning
from unrolled.physics.coils import espirit
from unrolled.physics.masks import RandomMaskFunc

METHODS = sorted(p.stem for p in (Path(CONFIG_DIR) / "method").glob("*.yaml"))
# estimate ESPIRiT maps; fastMRI's VarNet (NaN on zero k-space) gives zeros too, and warns
WARNING_METHODS = {"cg_sense", "cs_wavelet", "cs_tv", "zeroshot", "varnet_fastmri"}


pytestmark = pytest.mark.usefixtures("one_thread_test")


@pytest.fixture(scope="module")
def zero_slice_volume(tmp_path_factory) -> Path:
    """One 3-slice, 4-coil, 48 x 48 fully sampled volume whose slice 1 is all zero."""
    from unrolled.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("zero_slice")
    generate_dataset(
        root,
        num_volumes=1,
        slices_per_volume=3,
        num_coils=4,
        height=48,
        width=48,
        split=(0, 0, 1),
        seed=5,
        progress=False,
    )
    (src,) = sorted((root / "test").glob("*.h5"))
    folder = root / "in"
    folder.mkdir()
    path = folder / "file_zero_slice.h5"
    shutil.copy(src, path)
    with h5py.File(path, "r+") as f:
        assert f["kspace"].shape[0] == 3
        f["kspace"][1] = 0
        f["reconstruction_rss"][1] = 0
    return path


def _method(name: str, tmp_path: Path):
    """The method as conf/method/NAME.yaml builds it; trained ones small and untrained."""
    if name == "varnet_fastmri":  # fastMRI's VarNet from a weights file: small random ones
        pytest.importorskip("fastmri")
        from unrolled.models.fastmri_varnet import FastmriVarNet

        sizes = {"num_cascades": 1, "sens_chans": 2, "sens_pools": 2, "chans": 4, "pools": 2}
        weights = tmp_path / "varnet.pt"
        torch.save(FastmriVarNet(**sizes).varnet.state_dict(), weights)
        cfg = OmegaConf.load(Path(CONFIG_DIR) / "method" / f"{name}.yaml")
        cfg.merge_with({**sizes, "weights": str(weights)})
        return instantiate(cfg)
    if name == "unrolled":  # a checkpoint's network: the default model, untrained
        with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
            cfg = compose(
                "train", overrides=["model.num_cascades=2", "model.denoiser.cnn.channels=8"]
            )
        return instantiate(cfg.model)
    cfg = compose_option("method", name)
    if name == "zeroshot":  # a tiny schedule
        cfg.merge_with({"max_steps": 4, "warmup_steps": 1, "val_every": 2, "time_budget_s": None})
        cfg.net.num_cascades = 1
        cfg.net.denoiser.cnn.channels = 4
    if name.startswith("cs_"):
        cfg.num_iter = 10
    return instantiate(cfg)


def test_every_method_is_listed():
    assert {"zero_filled", "cg_sense", "cs_wavelet", "cs_tv", "unrolled", "zeroshot"} <= set(
        METHODS
    )


@pytest.mark.parametrize("name", METHODS)
def test_zero_slice_through_every_method(name, zero_slice_volume, tmp_path):
    method = _method(name, tmp_path).eval()
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reconstruct_volumes(
            method,
            list_volumes(zero_slice_volume.parent),
            out,
            RandomMaskFunc([0.16], [4]),
            batch_size=3,  # the zero slice shares its batch with the others
        )
    with h5py.File(out / zero_slice_volume.name) as f:
        recon = f["reconstruction"][()]
    assert recon.shape[0] == 3 and np.isfinite(recon).all()
    assert recon[0].max() > 0 and recon[2].max() > 0  # the other slices are reconstructed
    if name != "unrolled":  # our network's learned maps and biases give a finite image
        assert not recon[1].any(), f"{name}: max {np.abs(recon[1]).max()} on the zero slice"
    messages = [str(w.message) for w in caught if issubclass(w.category, ZeroCalibrationWarning)]
    if name in WARNING_METHODS:
        assert messages, f"{name}: no warning"
        assert all(m.startswith("file_zero_slice.h5 slice 1: ") for m in messages), messages
    else:
        assert not messages


def test_espirit_of_zero_calibration_is_zero():
    kspace = torch.zeros(2, 4, 32, 32, dtype=torch.complex64)
    kspace[0] = torch.randn(4, 32, 32, dtype=torch.complex64)
    maps = espirit(kspace, 10)
    assert maps.shape == kspace.shape and torch.isfinite(maps.abs()).all()
    assert not maps[1].any()
    energy = maps[0].abs().pow(2).sum(0)  # the other element keeps unit-norm maps
    torch.testing.assert_close(energy[energy > 0], torch.ones_like(energy[energy > 0]))
