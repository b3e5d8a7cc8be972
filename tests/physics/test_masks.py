"""Tests for unrolled.physics.masks, grid_masks and mask_tools: fastMRI oracle for 1D masks,
properties for 2D masks."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from unrolled.physics import grid_masks as G
from unrolled.physics import mask_tools as T
from unrolled.physics import masks as M

LINE_TYPES = {  # our class -> fastMRI class name
    M.RandomMaskFunc: "RandomMaskFunc",
    M.EquispacedMaskFunc: "EquiSpacedMaskFunc",
    M.EquispacedMaskFractionFunc: "EquispacedMaskFractionFunc",
    M.MagicMaskFunc: "MagicMaskFunc",
    M.MagicMaskFractionFunc: "MagicMaskFractionFunc",
}
SHAPES = [(15, 640, 368), (1, 320, 321), (4, 256, 256)]
# (center_fractions, accelerations, allow_any_combination)
PARAMS = [
    ([0.08], [4], False),
    ([0.04], [8], False),
    ([0.08, 0.04], [4, 8], False),
    ([0.08, 0.04, 0.02], [4, 8, 12], True),  # every combination within cf <= 1/R
]
SEEDS = range(30)


@pytest.fixture(scope="module")
def fastmri_subsample():
    return pytest.importorskip(
        "fastmri.data.subsample", reason="fastmri (the oracle for 1D masks) is not installed"
    )


def _pair(fs, cls, params, seed):
    cf, acc, any_comb = params
    ours = cls(cf, acc, allow_any_combination=any_comb, seed=seed)
    theirs = getattr(fs, LINE_TYPES[cls])(cf, acc, allow_any_combination=any_comb, seed=seed)
    return ours, theirs


def _assert_same(ours, theirs, shape, offset=None, seed=None):
    """Call both (ours on complex shape, fastMRI on (..., 2)); same mask or same error."""
    try:
        expected, exp_low = theirs((*shape, 2), offset, seed)
    except ValueError:
        with pytest.raises(ValueError):
            ours(shape, offset, seed)
        return None
    mask, num_low = ours(shape, offset, seed)
    assert mask.shape == (1, shape[-1]) and mask.dtype == torch.float32
    assert torch.equal(mask.reshape(-1), expected.reshape(-1))
    assert num_low == exp_low and isinstance(num_low, int)
    return mask


# --------------------------------------------------------------------------- fastMRI oracle


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: f"{p[0]}-{p[1]}-{p[2]}")
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("cls", list(LINE_TYPES), ids=lambda c: c.__name__)
def test_identical_to_fastmri(fastmri_subsample, cls, shape, params):
    """Constructor seed, then: internal state, a per-call seed (state untouched), state again."""
    for seed in SEEDS:
        ours, theirs = _pair(fastmri_subsample, cls, params, seed)
        for call_seed in (None, (seed, 7), None, seed + 1000):
            _assert_same(ours, theirs, shape, seed=call_seed)


@pytest.mark.parametrize("offset", [0, 1, 2, 3, 5])
@pytest.mark.parametrize("shape", [(2, 64, 368), (1, 64, 321), (1, 8, 33)], ids=str)
@pytest.mark.parametrize("cls", list(LINE_TYPES), ids=lambda c: c.__name__)
def test_identical_to_fastmri_with_offset(fastmri_subsample, cls, shape, offset):
    for seed in range(10):
        for params in PARAMS:
            ours, theirs = _pair(fastmri_subsample, cls, params, seed)
            _assert_same(ours, theirs, shape, offset=offset)
            _assert_same(ours, theirs, shape, offset=offset, seed=seed)


@pytest.mark.parametrize("cls", list(LINE_TYPES), ids=lambda c: c.__name__)
def test_identical_to_fastmri_with_filename_seed(fastmri_subsample, cls):
    """fastMRI's data sets seed masks with ``tuple(map(ord, fname))``."""
    seed = tuple(map(ord, "file1000001.h5"))
    ours, theirs = _pair(fastmri_subsample, cls, PARAMS[2], None)
    for shape in SHAPES:
        _assert_same(ours, theirs, shape, seed=seed)


@pytest.mark.parametrize("cls", list(LINE_TYPES), ids=lambda c: c.__name__)
def test_centre_fraction_one_over_r_is_the_centre_alone(cls):
    """cf = 1/R: fastMRI's fraction masks divide by zero (equispaced) or fail (magic); the
    centre alone already reaches W / R lines, so the mask is the centre block alone."""
    for width in (256, 368, 371, 64):
        for cf, accel in ((0.25, 4), (0.5, 2), (0.125, 8)):
            for seed in range(3):
                mask, num_low = cls([cf], [accel], seed=seed)((2, 16, width))
                centre = torch.from_numpy(M.center_mask_1d(width, num_low))
                assert bool(mask[0][centre == 1].all())
                fraction_type = cls in (M.EquispacedMaskFractionFunc, M.MagicMaskFractionFunc)
                if fraction_type and num_low * accel >= width:  # centre reaches W / R
                    assert torch.equal(mask[0], centre)
                    if width % accel == 0:  # exactly W / R lines: acceleration exactly R
                        assert T.effective_acceleration(mask) == accel


ALL_TYPES = [*LINE_TYPES, G.PoissonDiscMaskFunc, G.GaussianMaskFunc]
UNMEETABLE = [  # (center_fractions, accelerations, allow_any_combination), message
    (([0.08], [0.5], False), r"accelerations\[0\]=0.5 must be a number >= 1"),
    (([0.08], [0], False), r"accelerations\[0\]=0 must be a number >= 1"),
    (([1.5], [1], False), r"center_fractions\[0\]=1.5 is above 1: .*wider than the k-space"),
    (([-0.1], [4], False), r"center_fractions\[0\]=-0.1 must be a number >= 0"),
    (([], [], False), r"at least one value"),
    (([0.9], [2], False), r"center_fractions\[0\]=0.9 .*above 1/accelerations\[0\] = 1/2"),
]
UNMEETABLE_1D = [  # a centre above 1/R; the 2D block covers f**2 of the grid and fits these
    (([0.3], [4], False), r"center_fractions\[0\]=0.3 is above 1/accelerations\[0\] = 1/4"),
    (([0.08, 0.04], [4, 16], True), r"center_fractions\[0\]=0.08 is above 1/accelerations\[1\]"),
]


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("params, match", UNMEETABLE + UNMEETABLE_1D)
def test_unmeetable_configs_rejected_by_the_constructor(cls, params, match):
    """Configurations no mask can meet fail when the mask is built, naming the parameter;
    fastMRI accepts them and fails (or silently undershoots R) when sampling."""
    cf, acc, any_comb = params
    if cls in (G.PoissonDiscMaskFunc, G.GaussianMaskFunc) and (params, match) in UNMEETABLE_1D:
        cls(cf, acc, allow_any_combination=any_comb)((16, 16))  # f**2 <= 1/R: fits
        return
    with pytest.raises(ValueError, match=match):
        cls(cf, acc, allow_any_combination=any_comb)


def test_integer_acceleration_checked_by_the_constructor():
    for cls in (M.EquispacedMaskFunc, M.MagicMaskFunc):
        with pytest.raises(ValueError, match=r"accelerations\[0\]=4.5 must be an integer"):
            cls([0.08], [4.5])
    M.MagicMaskFractionFunc([0.08], [4.5])  # only its rounded spacing must be an integer
    M.EquispacedMaskFractionFunc([0.08], [4.5])


@pytest.mark.parametrize("name", ["random", "equispaced", "equispaced_fraction", "magic"])
def test_factory_matches_create_mask_for_mask_type(fastmri_subsample, name):
    ours = T.create_mask_func(name, [0.08, 0.04], [4, 8])
    theirs = fastmri_subsample.create_mask_for_mask_type(name, [0.08, 0.04], [4, 8])
    for seed in range(10):
        _assert_same(ours, theirs, (1, 320, 368), seed=seed)


# --------------------------------------------------------------------------- 1D properties


@pytest.mark.parametrize("cls", list(LINE_TYPES), ids=lambda c: c.__name__)
@pytest.mark.parametrize("width", [368, 321, 256])
def test_centre_fully_sampled_and_placed_like_fastmri(cls, width):
    for seed in range(10):
        mask, num_low = cls([0.08], [4], seed=seed)((3, 10, width))
        mask = mask[0]
        pad = (width - num_low + 1) // 2
        if cls is M.MagicMaskFractionFunc:  # clipped to [1, round(W / R)]
            assert 1 <= num_low <= round(width / 4)
        else:
            assert num_low == round(0.08 * width)
        assert bool(mask[pad : pad + num_low].all())
        assert pad <= width // 2 < pad + num_low  # the DC line is inside the centre
        assert set(mask.unique().tolist()) <= {0.0, 1.0}


def test_centre_position_by_hand():
    assert M.center_mask_1d(10, 4).tolist() == [0, 0, 0, 1, 1, 1, 1, 0, 0, 0]
    assert M.center_mask_1d(11, 4).tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0]
    assert M.center_mask_1d(11, 3).tolist() == [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0]


# Tolerances on the effective acceleration W / #lines (nominal R = 4, 8, 16):
# random lines are i.i.d., so only the mean sampling rate over seeds is close (6 %);
# equispaced/magic add the centre on top of W / R lines, so they land at 0.7 R .. R;
# equispaced_fraction is within 8 % per mask; magic_fraction undershoots the number of
# lines (round(W / (W / R - n_low)) spacing), overshooting R by up to 12 %.
ACCEL_TOL = {
    M.RandomMaskFunc: None,
    M.EquispacedMaskFunc: (0.7, 1.0),
    M.MagicMaskFunc: (0.7, 1.0),
    M.EquispacedMaskFractionFunc: (0.92, 1.08),
    M.MagicMaskFractionFunc: (0.92, 1.12),
}


@pytest.mark.parametrize("cls", list(LINE_TYPES), ids=lambda c: c.__name__)
@pytest.mark.parametrize("width", [368, 321, 256, 640])
@pytest.mark.parametrize("cf,accel", [(0.08, 4), (0.04, 8), (0.02, 16)])
def test_effective_acceleration_close_to_nominal(cls, width, cf, accel):
    func = cls([cf], [accel], seed=0)
    masks = [func((1, 8, width))[0] for _ in SEEDS]
    ratios = np.array([T.effective_acceleration(m) / accel for m in masks])
    if ACCEL_TOL[cls] is None:
        rate = np.mean([float(m.mean()) for m in masks])
        assert rate * accel == pytest.approx(1.0, abs=0.06)
    else:
        lo, hi = ACCEL_TOL[cls]
        assert lo <= ratios.min() and ratios.max() <= hi


def test_effective_acceleration_helper():
    mask = torch.tensor([[1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]])  # (1, W)
    assert T.effective_acceleration(mask) == 4.0
    assert T.effective_acceleration(mask.expand(5, 8)) == 4.0  # broadcast over H
    assert T.effective_acceleration(mask.numpy()) == 4.0
    assert T.effective_acceleration(torch.zeros(3, 3)) == float("inf")


def test_mask_broadcasts_over_complex_kspace():
    kspace = torch.randn(15, 64, 37, dtype=torch.complex64)
    mask, _ = M.RandomMaskFunc([0.08], [4], seed=0)(kspace.shape)
    masked = kspace * mask
    assert masked.shape == kspace.shape and masked.dtype == torch.complex64
    assert torch.equal(masked[..., mask[0] == 0], torch.zeros_like(masked[..., mask[0] == 0]))


def test_invalid_arguments():
    with pytest.raises(ValueError, match="center fractions"):
        M.RandomMaskFunc([0.08, 0.04], [4])
    with pytest.raises(ValueError, match="shape"):
        M.RandomMaskFunc([0.08], [4])((368,))
    with pytest.raises(ValueError, match="must be an integer"):
        M.EquispacedMaskFunc([0.08], [4.5], seed=0)
    with pytest.raises(ValueError, match="not supported"):
        T.create_mask_func("spiral", [0.08], [4])


def test_factory_names():
    expected = {
        "random": M.RandomMaskFunc,
        "equispaced": M.EquispacedMaskFunc,
        "equispaced_fraction": M.EquispacedMaskFractionFunc,
        "magic": M.MagicMaskFunc,
        "magic_fraction": M.MagicMaskFractionFunc,
        "poisson": G.PoissonDiscMaskFunc,
        "gaussian": G.GaussianMaskFunc,
    }
    for name, cls in expected.items():
        func = T.create_mask_func(name, [0.08, 0.04], [4, 8], seed=3)
        assert type(func) is cls
        a, _ = func((2, 48, 40), seed=1)
        b, _ = T.create_mask_func(name, [0.08, 0.04], [4, 8], seed=99)((2, 48, 40), seed=1)
        assert torch.equal(a, b)  # a per-call seed overrides the constructor seed


# --------------------------------------------------------------------------- 2D masks

GRID_TYPES = [G.PoissonDiscMaskFunc, G.GaussianMaskFunc]
GRID_SHAPES = [(320, 320), (4, 218, 170), (33, 47)]


@pytest.mark.parametrize("accel", [2, 4, 8])
@pytest.mark.parametrize("shape", GRID_SHAPES, ids=str)
@pytest.mark.parametrize("cls", GRID_TYPES, ids=lambda c: c.__name__)
def test_2d_calibration_and_acceleration(cls, shape, accel):
    height, width = shape[-2:]
    for seed in range(2):
        mask, num_low = cls(accelerations=[accel], calib_size=(12, 10), seed=seed)(shape)
        assert mask.shape == (height, width) and mask.dtype == torch.float32
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        assert num_low == 10
        py, px = (height - 12 + 1) // 2, (width - 10 + 1) // 2
        assert bool(mask[py : py + 12, px : px + 10].all())
        assert T.effective_acceleration(mask) == pytest.approx(accel, rel=0.05)
        if cls is G.GaussianMaskFunc:  # exact number of samples
            assert int(mask.sum()) == round(height * width / accel)


@pytest.mark.parametrize("cls", GRID_TYPES, ids=lambda c: c.__name__)
def test_2d_calibration_from_center_fraction(cls):
    mask, num_low = cls([0.1], [4], seed=0)((200, 150))
    assert num_low == 15
    py, px = (200 - 20 + 1) // 2, (150 - 15 + 1) // 2
    assert bool(mask[py : py + 20, px : px + 15].all())
    assert cls(accelerations=[4])((64, 64))[1] == 24  # default 24 x 24 block


@pytest.mark.parametrize("cls", GRID_TYPES, ids=lambda c: c.__name__)
def test_2d_deterministic_per_seed(cls):
    shape = (96, 80)
    a, _ = cls([0.08], [4], seed=5)(shape)
    b, _ = cls([0.08], [4], seed=5)(shape)
    c, _ = cls([0.08], [4], seed=6)(shape)
    assert torch.equal(a, b) and not torch.equal(a, c)
    func = cls([0.08], [4], seed=5)
    d, _ = func(shape, seed=(1, 2))
    e, _ = func(shape)  # the per-call seed left the internal state alone
    f, _ = func(shape, seed=(1, 2))
    assert torch.equal(a, e) and torch.equal(d, f) and not torch.equal(d, e)


@pytest.mark.parametrize("cls", GRID_TYPES, ids=lambda c: c.__name__)
def test_2d_variable_density(cls):
    mask, _ = cls([0.08], [6], seed=0)((128, 128))
    ky, kx = np.meshgrid(np.arange(128) - 64, np.arange(128) - 64, indexing="ij")
    radius = np.hypot(ky, kx)
    inner = mask.numpy()[(radius > 12) & (radius < 30)].mean()
    outer = mask.numpy()[radius > 60].mean()
    assert inner > 1.5 * outer


def test_poisson_disc_is_more_uniform_than_iid():
    """Blue noise: far fewer 4-neighbour pairs than i.i.d. sampling at the same density."""
    func = G.PoissonDiscMaskFunc(accelerations=[4], calib_size=(0, 0), density_slope=0.0)
    mask = func((128, 128), seed=0)[0].numpy().astype(bool)
    assert T.effective_acceleration(mask) == pytest.approx(4, rel=0.05)
    pairs = (mask[1:] & mask[:-1]).sum() + (mask[:, 1:] & mask[:, :-1]).sum()
    iid_pairs = 2 * 128 * 127 * mask.mean() ** 2
    assert pairs < 0.25 * iid_pairs


def test_poisson_320_is_fast():
    func = G.PoissonDiscMaskFunc([0.08], [4], seed=0)
    start = time.perf_counter()
    func((320, 320))
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize("cls", GRID_TYPES, ids=lambda c: c.__name__)
def test_2d_calibration_too_large(cls):
    with pytest.raises(ValueError, match="calibration block"):
        cls(accelerations=[8], calib_size=(30, 30))((64, 64))
