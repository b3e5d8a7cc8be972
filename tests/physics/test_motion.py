"""Rigid motion by Fourier shifts and shears, and the multi-acquisition SENSE operator."""

import math

import pytest
import torch
from helpers.common import crandn, inner

from unrolled.physics.motion import (
    MotionSenseOp,
    RigidMotion,
    rigid_transform,
    rigid_transform_adjoint,
    rotate,
    simulate_acquisitions,
    translate,
)


def _params(*rows):
    return torch.tensor(rows, dtype=torch.float64)


def _blob(h, w, centre, sigma=2.5):
    """A Gaussian (numerically band-limited) at ``centre = (row, col)`` offsets from the centre."""
    r = torch.arange(h, dtype=torch.float64)[:, None] - h // 2
    c = torch.arange(w, dtype=torch.float64)[None, :] - w // 2
    return torch.exp(-((r - centre[0]) ** 2 + (c - centre[1]) ** 2) / (2 * sigma**2)).to(
        torch.complex128
    )


@pytest.mark.parametrize("hw", [(12, 10), (9, 7), (16, 16)])
def test_rigid_motion_adjoint_is_inverse(hw):
    x, y = crandn(3, *hw, seed=1), crandn(3, *hw, seed=2)
    params = _params([1.3, -0.4, 12.0], [0.0, 2.7, -33.0], [-5.5, 0.25, 80.0])
    op = RigidMotion(params)
    lhs, rhs = inner(op(x), y), inner(x, op.H(y))
    assert abs(lhs - rhs) < 1e-12 * abs(lhs)
    # Unitary: the adjoint undoes the motion exactly, and norms are kept.
    torch.testing.assert_close(op.H(op(x)), x, rtol=0, atol=1e-12)
    torch.testing.assert_close(op(x).norm(), x.norm())


@pytest.mark.parametrize("hw", [(16, 12), (15, 9)])
def test_motion_sense_adjoint(hw):
    b, n, c, (h, w) = 2, 3, 4, hw
    maps = crandn(b, c, h, w, seed=3)
    g = torch.Generator().manual_seed(4)
    masks = (torch.rand(b, n, 1, 1, w, generator=g) > 0.5).double()
    params = torch.randn(b, n, 3, generator=g, dtype=torch.float64) * 3
    op = MotionSenseOp(maps, masks, params)
    x, y = crandn(b, h, w, seed=5), crandn(b, n, c, h, w, seed=6)
    assert op(x).shape == (b, n, c, h, w) and op.H(y).shape == (b, h, w)
    lhs, rhs = inner(op(x), y), inner(x, op.H(y))
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)
    torch.testing.assert_close(op.H.H(x), op(x))
    torch.testing.assert_close(op.normal(x), op.H(op(x)))


def test_motion_sense_without_motion_is_stacked_sense():
    from unrolled.physics.operators import SenseOp

    maps, x = crandn(1, 4, 10, 8, seed=7), crandn(1, 10, 8, seed=8)
    masks = torch.stack([torch.ones(1, 1, 8), (torch.arange(8) % 2).double()[None, None]])[None]
    op = MotionSenseOp(maps, masks, torch.zeros(1, 2, 3, dtype=torch.float64))
    for n in range(2):
        torch.testing.assert_close(op(x)[:, n], SenseOp(maps, masks[:, n])(x), atol=1e-12, rtol=0)


@pytest.mark.parametrize("shift", [(2, -3), (0, 5), (-7, 1)])
def test_integer_translation_is_roll(shift):
    x = crandn(2, 11, 8, seed=9)
    params = _params([*shift, 0.0])
    torch.testing.assert_close(rigid_transform(x, params), torch.roll(x, shift, (-2, -1)))


def test_a_field_of_view_shift_and_a_full_turn_are_identities():
    x = crandn(2, 12, 10, seed=16)
    base = rigid_transform(x, _params([1.3, -2.2, 17.0]))
    torch.testing.assert_close(rigid_transform(x, _params([13.3, 7.8, 377.0])), base)


def test_fractional_translation_moves_a_blob():
    out = translate(_blob(32, 24, (0, 0)), torch.tensor([1.5, -2.25], dtype=torch.float64))
    assert (out - _blob(32, 24, (1.5, -2.25))).abs().max() < 1e-3  # 0.1 % of the peak


def test_rotation_by_90_degrees_is_rot90():
    # Odd sizes: the centre pixel N // 2 is the array centre, so it is exactly rot90.
    x = crandn(2, 9, 9, seed=10)
    out = rigid_transform(x, _params([0.0, 0.0, 90.0]))
    torch.testing.assert_close(out, torch.rot90(x, 1, (-2, -1)), atol=1e-12, rtol=0)
    # Even sizes: about pixel N // 2, half a pixel off the array centre: rot90, then roll.
    x = crandn(2, 8, 8, seed=11)
    out = rigid_transform(x, _params([0.0, 0.0, -90.0]))
    torch.testing.assert_close(
        out, torch.roll(torch.rot90(x, -1, (-2, -1)), 1, -1), atol=1e-12, rtol=0
    )


@pytest.mark.parametrize("angle", [3.0, -20.0, 45.0])
def test_rotation_is_counter_clockwise_and_accurate(angle):
    """A blob at (row, col) = (0, 12) moves to R(angle) (0, 12): up and left for angle > 0."""
    h, w, centre = 64, 48, (0.0, 12.0)
    a = math.radians(angle)
    moved = (-math.sin(a) * centre[1], math.cos(a) * centre[1])  # R = [[cos, -sin], [sin, cos]]
    out = rigid_transform(_blob(h, w, centre), _params([1.5, -0.75, angle]))
    expected = _blob(h, w, (moved[0] + 1.5, moved[1] - 0.75))
    assert (out - expected).abs().max() < 1e-3  # a peak of 1: 0.1 % interpolation error


def test_rotations_compose_on_band_limited_images():
    x = _blob(48, 48, (5.0, -8.0), sigma=3.0) + 0.5j * _blob(48, 48, (-6.0, 3.0), sigma=3.0)
    two_steps = rotate(rotate(x, torch.tensor(7.0, dtype=torch.float64)), torch.tensor(11.0))
    one_step = rotate(x, torch.tensor(18.0, dtype=torch.float64))
    assert (two_steps - one_step).abs().max() < 1e-3
    back = rotate(rotate(x, torch.tensor(25.0, dtype=torch.float64)), torch.tensor(-25.0))
    torch.testing.assert_close(back, x, atol=1e-12, rtol=0)


def test_gradient_with_respect_to_motion_matches_finite_differences():
    x = crandn(2, 8, 6, seed=12)
    params = _params([0.7, -1.2, 9.0], [-0.3, 0.4, -4.0]).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: rigid_transform(x, p), (params,), fast_mode=True)
    maps = crandn(1, 3, 8, 6, seed=13)
    masks = (torch.arange(6) % 2 == 0).double().reshape(1, 1, 1, 1, 6)

    def loss(p):
        return MotionSenseOp(maps, masks, p[None])(x[:1]).abs().pow(2).sum()

    assert torch.autograd.gradcheck(loss, (params,))
    adjoint = lambda p: rigid_transform_adjoint(x, p)  # noqa: E731
    assert torch.autograd.gradcheck(adjoint, (params,), fast_mode=True)


def test_simulated_acquisitions_are_masked_with_the_stated_noise():
    b, n, c, h, w = 1, 2, 3, 32, 32
    maps, x = crandn(b, c, h, w, seed=14), crandn(b, h, w, seed=15)
    masks = torch.zeros(b, n, 1, 1, w, dtype=torch.float64)
    masks[..., ::2] = 1
    params = _params([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])[None]
    clean = simulate_acquisitions(x, maps, masks, params)
    torch.testing.assert_close(clean, MotionSenseOp(maps, masks, params)(x))
    noisy = simulate_acquisitions(x, maps, masks, params, 0.5, torch.Generator().manual_seed(0))
    noise = noisy - clean
    assert noise[..., 1::2].abs().max() == 0  # nothing where not sampled
    sampled = noise[..., ::2]
    assert abs(sampled.abs().pow(2).mean().sqrt() - 0.5) < 0.02  # E|e|^2 = sigma^2
    assert abs(sampled.real.std() - 0.5 / math.sqrt(2)) < 0.02


def test_bad_parameter_shapes_are_rejected():
    x = crandn(1, 8, 8)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        rigid_transform(x, torch.zeros(1, 2))
    with pytest.raises(ValueError, match="params must be"):
        MotionSenseOp(crandn(1, 2, 8, 8), torch.ones(1, 2, 1, 8, 8), torch.zeros(2, 3))
