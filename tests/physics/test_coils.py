"""Tests for unrolled.physics.coils: RSS, centre crop, ACS maps and ESPIRiT."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from unrolled.physics.coils import (
    acs_sensitivities,
    center_crop,
    center_crop_or_pad,
    espirit,
    rss,
)
from unrolled.physics.fft import fft2c

SHARED = Path(__file__).parents[2].parent / "shared"
BRAIN = SHARED / "data" / "brain_t2_4coil" / "img_brain_4ch.mat"


# ----------------------------------------------------------------------------- helpers


def _np_center_crop(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """fastMRI's ``center_crop`` formula, in numpy."""
    h_from = (x.shape[-2] - shape[0]) // 2
    w_from = (x.shape[-1] - shape[1]) // 2
    return x[..., h_from : h_from + shape[0], w_from : w_from + shape[1]]


def _synthetic(n: int = 128, coils: int = 8, seed: int = 0, dtype=torch.complex64):
    """Piecewise-constant phantom with smooth phase, seen by known smooth coils.

    Coil maps are Gaussian bumps placed around the object, each with its own
    constant and linear phase, normalised to ``sum_c |S_c|^2 = 1``.

    Returns:
        k-space ``(C, n, n)``, true maps ``(C, n, n)``, object mask ``(n, n)``.
    """
    g = torch.Generator().manual_seed(seed)
    axis = torch.linspace(-1, 1, n, dtype=torch.float64)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    obj = ((x / 0.75) ** 2 + (y / 0.9) ** 2 < 1).double()
    obj += 0.5 * (((x - 0.2) / 0.2) ** 2 + ((y + 0.3) / 0.35) ** 2 < 1).double()
    obj -= 0.4 * (((x + 0.25) / 0.15) ** 2 + ((y - 0.2) / 0.25) ** 2 < 1).double()
    support = obj > 0.3
    obj = obj * torch.exp(1j * (0.8 * x + 0.3 * y))
    maps = []
    for c in range(coils):
        angle = 2 * math.pi * c / coils + 0.3
        cy, cx = 1.3 * math.sin(angle), 1.3 * math.cos(angle)
        mag = torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 0.8**2))
        ph = torch.rand(3, generator=g, dtype=torch.float64) * 2 - 1
        maps.append(mag * torch.exp(1j * (math.pi * ph[0] + ph[1] * x + ph[2] * y)))
    maps = torch.stack(maps)  # (C, n, n)
    maps = maps / rss(maps, dim=0)
    return fft2c(maps * obj).to(dtype), maps.to(dtype), support


@pytest.fixture(scope="module")
def brain() -> torch.Tensor:
    """Real 4-coil brain images ``(4, 256, 256)`` complex64, max |img| = 1."""
    if not BRAIN.exists():
        pytest.skip("../shared/data not present (team-only real data)")
    from scipy.io import loadmat

    img = loadmat(str(BRAIN))["img"]  # (256, 256, 4) complex128
    img = torch.from_numpy(np.ascontiguousarray(np.moveaxis(img, -1, 0)))
    return (img / img.abs().max()).to(torch.complex64)


def _head_mask(img: torch.Tensor, fraction: float = 0.1) -> torch.Tensor:
    """RSS above ``fraction * max``, with holes of one pixel closed (3x3 max filter)."""
    r = rss(img, dim=0)
    mask = (r > fraction * r.max()).float()[None, None]
    closed = -torch.nn.functional.max_pool2d(
        -torch.nn.functional.max_pool2d(mask, 3, 1, 1), 3, 1, 1
    )
    return closed[0, 0] > 0.5


def _relative_error_inside(maps: torch.Tensor, img: torch.Tensor, mask: torch.Tensor) -> float:
    """``||S x - img|| / ||img||`` inside ``mask`` with ``x = sum_c conj(S_c) img_c``."""
    x = (maps.conj() * img).sum(0)  # (H, W)
    err = ((maps * x - img).abs() ** 2).sum(0)
    ref = (img.abs() ** 2).sum(0)
    return math.sqrt(err[mask].sum().item() / ref[mask].sum().item())


# ----------------------------------------------------------------------------- rss


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128, torch.float32])
def test_rss_matches_numpy(dim, dtype):
    x = torch.randn(3, 4, 5, 6, dtype=dtype)
    expected = np.sqrt(np.sum(np.abs(x.numpy()) ** 2, axis=dim))
    out = rss(x, dim=dim)
    assert not out.is_complex()
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5)
    assert rss(x, dim=dim, keepdim=True).shape[dim] == 1


def test_rss_gradient_finite_at_zero():
    x = torch.zeros(2, 4, 3, 3, dtype=torch.complex64, requires_grad=True)
    rss(x).sum().backward()
    assert torch.isfinite(torch.view_as_real(x.grad)).all()


# ----------------------------------------------------------------------------- crop


@pytest.mark.parametrize("in_shape", [(8, 8), (9, 7), (10, 11)])
@pytest.mark.parametrize("shape", [(1, 1), (4, 5), (5, 4), (7, 6)])
def test_center_crop_matches_fastmri_formula(in_shape, shape):
    x = np.arange(2 * 3 * in_shape[0] * in_shape[1]).reshape(2, 3, *in_shape)
    out = center_crop(torch.from_numpy(x), shape)
    np.testing.assert_array_equal(out.numpy(), _np_center_crop(x, shape))


@pytest.mark.parametrize("shape", [(9, 4), (4, 9), (0, 3)])
def test_center_crop_rejects_invalid_shape(shape):
    with pytest.raises(ValueError):
        center_crop(torch.zeros(8, 8), shape)


@pytest.mark.parametrize("in_shape", [(6, 7), (7, 6)])
@pytest.mark.parametrize("shape", [(9, 10), (10, 3), (4, 4), (6, 7)])
def test_center_crop_or_pad(in_shape, shape):
    x = torch.randn(2, *in_shape, dtype=torch.complex64)
    out = center_crop_or_pad(x, shape)
    assert out.shape == (2, *shape)
    # Reference: numpy zero-pad ((h - H) // 2 before), then fastMRI crop.
    extra = [max(t - s, 0) for s, t in zip(in_shape, shape, strict=True)]
    pad = [(0, 0)] + [(e // 2, e - e // 2) for e in extra]
    expected = _np_center_crop(np.pad(x.numpy(), pad), shape)
    np.testing.assert_array_equal(out.numpy(), expected)
    # Padding is undone by cropping back.
    big = (in_shape[0] + 3, in_shape[1] + 4)
    torch.testing.assert_close(center_crop(center_crop_or_pad(x, big), in_shape), x)


# ----------------------------------------------------------------------------- ACS maps


@pytest.mark.parametrize("window", ["box", "hann"])
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_acs_sensitivities_shape_dtype_normalised(window, dtype):
    k, _, support = _synthetic(n=64, coils=4, dtype=dtype)
    k = torch.stack([k, 2 * k])  # (2, C, H, W)
    maps = acs_sensitivities(k, 12, window=window)
    assert maps.shape == k.shape and maps.dtype == dtype
    power = (maps.abs() ** 2).sum(1)  # (2, H, W)
    torch.testing.assert_close(
        power[:, support], torch.ones_like(power[:, support]), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(maps[0][:, support], maps[1][:, support])  # scale invariant


def test_acs_sensitivities_reads_only_centre_columns():
    k, _, _ = _synthetic(n=64, coils=4)
    n, W = 11, k.shape[-1]
    start = (W - n + 1) // 2  # fastMRI mask convention
    masked = torch.zeros_like(k)
    masked[..., start : start + n] = k[..., start : start + n]
    torch.testing.assert_close(acs_sensitivities(k, n), acs_sensitivities(masked, n))
    with pytest.raises(ValueError):
        acs_sensitivities(k, 12, window="triangle")


# ----------------------------------------------------------------------------- ESPIRiT


def test_espirit_recovers_known_smooth_maps():
    k, true_maps, support = _synthetic()
    maps = espirit(k[None], 24)[0]
    assert maps.dtype == torch.complex64 and maps.shape == k.shape
    # Equal up to a per-pixel phase: |<S_est, S_true>| = 1 inside the object.
    overlap = (maps.conj() * true_maps).sum(0).abs()[support]
    assert overlap.min() > 0.99, overlap.min()
    power = (maps.abs() ** 2).sum(0)
    torch.testing.assert_close(power[support], torch.ones_like(power[support]))
    # Outside the support the maps are exactly zero, inside exactly unit norm.
    assert torch.all((power < 1e-6) | ((power - 1).abs() < 1e-4))


def test_espirit_maps_are_phase_smooth():
    k, _, support = _synthetic()
    maps = espirit(k[None], 24)[0]
    # Phase of each map changes little between horizontal neighbours in the object.
    inner = support[:, 1:] & support[:, :-1]
    step = (maps[..., 1:] * maps[..., :-1].conj()).sum(0)  # (H, W-1)
    assert (step.angle().abs()[inner]).max() < 0.3


def test_espirit_uses_only_calibration_region():
    k, _, _ = _synthetic(n=96, coils=4)
    cy, cx = 24, 20
    top, left = (96 - cy + 1) // 2, (96 - cx + 1) // 2
    acs = torch.zeros_like(k)
    acs[:, top : top + cy, left : left + cx] = k[:, top : top + cy, left : left + cx]
    # 1D-undersampled k-space: every 4th column plus the centre 20.
    under = k.clone()
    keep = torch.zeros(96, dtype=torch.bool)
    keep[::4] = True
    keep[left : left + cx] = True
    under[..., ~keep] = 0
    ref = espirit(k, calib=(cy, cx))
    torch.testing.assert_close(espirit(acs, calib=(cy, cx)), ref)
    torch.testing.assert_close(espirit(under, cx), ref)  # cy = max(cx, 24) = 24


@pytest.mark.parametrize("columns", [5, 4, 3])
def test_espirit_narrow_calibration_takes_a_smaller_kernel_with_a_warning(columns):
    # 8x with a 4% centre on 128 columns keeps 5 columns, narrower than the kernel of 6.
    # crop=0 keeps the maps everywhere, as CG-SENSE and the CS baselines use them.
    k, true_maps, support = _synthetic()
    with pytest.warns(UserWarning, match=f"kernel size 6; using kernel size {columns}"):
        maps = espirit(k[None], columns, crop=0.0)[0]
    torch.testing.assert_close(maps, espirit(k[None], columns, kernel_size=columns, crop=0.0)[0])
    # measured: median 0.996 (5 columns), 0.992 (4), 0.989 (3); 1% quantile 0.95 .. 0.875
    overlap = (maps.conj() * true_maps).sum(0).abs()[support]
    assert overlap.median() > 0.98 and overlap.quantile(0.01) > 0.85, overlap


def test_espirit_batched_equals_single_calls():
    k0, _, _ = _synthetic(n=64, coils=4, seed=0)
    k1, _, _ = _synthetic(n=64, coils=4, seed=1)
    batch = torch.stack([k0, 3 * k1])  # (2, C, H, W)
    out = espirit(batch, 16)
    assert out.shape == batch.shape and out.dtype == torch.complex64
    torch.testing.assert_close(out[0], espirit(k0[None], 16)[0])
    torch.testing.assert_close(out[1], espirit(3 * k1[None], 16)[0])
    torch.testing.assert_close(out[1], espirit(3 * k1, 16))  # unbatched (C, H, W)
    # One calibration width per batch element.
    mixed = espirit(batch, torch.tensor([16, 12]))
    torch.testing.assert_close(mixed[1], espirit(3 * k1[None], 12)[0])


def test_espirit_complex128_and_errors():
    k, _, _ = _synthetic(n=48, coils=4, dtype=torch.complex128)
    assert espirit(k[None], 16).dtype == torch.complex128
    with pytest.raises(ValueError):
        espirit(k[None])  # no calibration size
    with pytest.raises(ValueError):
        espirit(k[None], calib=(64, 16))  # larger than k-space
    with pytest.raises(ValueError, match="at least 3 fully sampled centre columns"):
        espirit(k[None], 2)  # narrower than the smallest kernel
    with pytest.raises(TypeError):
        espirit(k.real[None], 16)


@pytest.mark.parametrize("calib", [None, (256, 24)], ids=["24x24", "256x24"])
def test_espirit_real_brain(brain, calib):
    k = fft2c(brain)[None]  # (1, 4, 256, 256)
    maps = espirit(k, 24, calib=calib)[0]
    mask = _head_mask(brain)
    power = (maps.abs() ** 2).sum(0)
    torch.testing.assert_close(power[mask], torch.ones_like(power[mask]), atol=1e-4, rtol=0)
    assert _relative_error_inside(maps, brain, mask) < 0.10


def test_acs_sensitivities_real_brain(brain):
    maps = acs_sensitivities(fft2c(brain)[None], 24)[0]
    mask = _head_mask(brain)
    assert _relative_error_inside(maps, brain, mask) < 0.10
