"""BART as an independent reference: its .cfl files, and ``bart pics -l2`` vs our CG-SENSE."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rawtools import need, run
from torch import nn

from unrolled.data.errors import DataError
from unrolled.data.fastmri_io import read_slice
from unrolled.data.raw import convert, plan_conversion
from unrolled.data.raw.cfl import read_cfl, write_cfl
from unrolled.data.transforms import UnrolledTransform
from unrolled.methods.classical import CGSense


def test_read_bart_phantom(tmp_path):
    """``bart phantom -k -s 8`` -> our reader: BART's order kx, ky, kz, coil."""
    run([need("bart"), "phantom", "-k", "-x", "64", "-s", "8", "ph"], tmp_path)
    array = read_cfl(tmp_path / "ph")
    assert array.shape == (64, 64, 1, 8) + (1,) * 12 and array.dtype == np.complex64
    raw = np.fromfile(tmp_path / "ph.cfl", dtype=np.complex64)
    np.testing.assert_array_equal(array.ravel(order="F"), raw)  # column-major, bit-exact
    plan = plan_conversion(tmp_path / "ph.cfl")
    kspace = plan.files[0].datasets["kspace"]  # (slices, coils, H, W)
    np.testing.assert_array_equal(kspace[0], np.moveaxis(array.reshape(64, 64, 8), -1, 0))


def test_written_cfl_read_back_identically_by_bart(tmp_path):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((5, 7, 1, 3)) + 1j * rng.standard_normal((5, 7, 1, 3))).astype(
        np.complex64
    )
    write_cfl(tmp_path / "ours", array)
    run([need("bart"), "copy", "ours", "theirs"], tmp_path)  # BART reads ours, writes its own
    assert (tmp_path / "theirs.cfl").read_bytes() == (tmp_path / "ours.cfl").read_bytes()
    np.testing.assert_array_equal(read_cfl(tmp_path / "theirs").reshape(array.shape), array)
    theirs = (tmp_path / "theirs.hdr").read_text().splitlines()
    assert theirs[1].split() == (tmp_path / "ours.hdr").read_text().splitlines()[1].split()
    with pytest.raises(FileExistsError):
        write_cfl(tmp_path / "ours", array)


def test_bad_cfl_is_one_clear_error(tmp_path):
    (tmp_path / "x.hdr").write_text("# Dimensions\n4 4 1 2\n")
    (tmp_path / "x.cfl").write_bytes(b"\0" * 100)
    with pytest.raises(DataError, match=r"x\.cfl: holds 100 bytes, but dimensions"):
        read_cfl(tmp_path / "x")


def test_npy_with_stated_axes(tmp_path):
    rng = np.random.default_rng(1)
    k = (rng.standard_normal((4, 24, 32)) + 1j * rng.standard_normal((4, 24, 32))).astype(
        np.complex64
    )  # (coil, ky, kx)
    np.save(tmp_path / "k.npy", k)
    with pytest.raises(DataError, match="needs its axis order"):
        plan_conversion(tmp_path / "k.npy")
    plan = plan_conversion(tmp_path / "k.npy", axes=["coil", "ky", "kx"])
    kspace = plan.files[0].datasets["kspace"]
    assert kspace.shape == (1, 4, 32, 24)  # (slices, coils, H = kx, W = ky)
    np.testing.assert_array_equal(kspace[0], k.transpose(0, 2, 1))
    with pytest.raises(DataError, match="array of shape"):
        plan_conversion(tmp_path / "k.npy", axes=["coil", "kx"])


class FixedMaps(nn.Module):
    """Hands CG-SENSE the given sensitivity maps ``(1, C, H, W)`` instead of estimating them."""

    def __init__(self, maps: torch.Tensor) -> None:
        super().__init__()
        self.maps = maps

    def forward(self, kspace, mask, num_low_frequencies, keys=None):
        return self.maps.expand(kspace.shape[0], -1, -1, -1)


@pytest.mark.slow
def test_cg_sense_agrees_with_bart_pics(tmp_path):
    """Same undersampled phantom, same ESPIRiT maps (``bart ecalib``), same Tikhonov weight.

    Both solve ``(A^H A + lambda I) x = A^H y`` by conjugate gradients (``bart pics
    -l2 -w 1`` switches BART's data scaling off); 100 iterations each in float32
    converge to the unique solution, so what is left is float32 round-off: measured
    2.4e-6 relative on the complex image, 1.5e-5 on the magnitude CG-SENSE returns
    (RSS of the maps times x, after an FFT round trip). A 2x lambda differs by 4%.
    """
    bart = need("bart")
    n, coils, lam = 128, 8, 0.01
    run([bart, "phantom", "-k", "-x", str(n), "-s", str(coils), "ph"], tmp_path)
    full = read_cfl(tmp_path / "ph")[:, :, :, :, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(full.shape) + 1j * rng.standard_normal(full.shape)
    full = full + (1e-3 * np.abs(full).max() * noise).astype(np.complex64)
    mask = np.zeros(n, bool)
    mask[::4] = True
    mask[n // 2 - 12 : n // 2 + 12] = True  # 24 calibration lines
    write_cfl(tmp_path / "und", full * mask[None, :, None, None])
    run([bart, "ecalib", "-m1", "und", "maps"], tmp_path)
    run(
        [bart, "pics", "-l2", "-r", str(lam), "-w", "1", "-i", "100", "und", "maps", "pics"],
        tmp_path,
    )
    pics = read_cfl(tmp_path / "pics").reshape(n, n)  # (x, y)
    maps = read_cfl(tmp_path / "maps").reshape(n, n, coils)

    convert([tmp_path / "und.cfl"], tmp_path / "conv")  # challenge-style file
    sample = UnrolledTransform()(read_slice(tmp_path / "conv" / "und.h5", 0))
    assert int(sample.mask[0, 0].sum()) == int(mask.sum())
    fixed = FixedMaps(torch.from_numpy(np.ascontiguousarray(maps.transpose(2, 0, 1)))[None])
    ours = CGSense(lam=lam, max_iter=100, espirit=fixed)(
        sample.kspace[None], sample.mask[None], sample.num_low_frequencies[None]
    ).image[0]
    rel = np.linalg.norm(ours.numpy() - np.abs(pics)) / np.linalg.norm(pics)
    assert rel < 1e-4, rel
    other = CGSense(lam=2 * lam, max_iter=100, espirit=fixed)(
        sample.kspace[None], sample.mask[None], sample.num_low_frequencies[None]
    ).image[0]
    assert np.linalg.norm(other.numpy() - np.abs(pics)) / np.linalg.norm(pics) > 1e-2
