"""FFT against numpy; adjointness of every operator in complex128."""

import numpy as np
import pytest
import torch
from helpers.common import crandn, inner

from unrolled.physics.fft import fft2c, ifft2c
from unrolled.physics.operators import CartesianOp, SenseOp, combine_coils, expand_coils


@pytest.mark.parametrize("shape", [(8, 8), (7, 9), (2, 3, 16, 11), (1, 5, 6)])
def test_fft2c_matches_numpy(shape):
    x = crandn(*shape)
    ref = np.fft.fftshift(
        np.fft.fft2(np.fft.ifftshift(x.numpy(), axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
    )
    np.testing.assert_allclose(fft2c(x).numpy(), ref, atol=1e-12)
    iref = np.fft.fftshift(
        np.fft.ifft2(np.fft.ifftshift(x.numpy(), axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
    )
    np.testing.assert_allclose(ifft2c(x).numpy(), iref, atol=1e-12)


@pytest.mark.parametrize("shape", [(8, 8), (7, 9), (3, 10, 13)])
def test_fft2c_matches_fastmri(shape):
    fastmri = pytest.importorskip("fastmri")
    x = crandn(*shape).to(torch.complex64)
    ours = fft2c(x)
    theirs = torch.view_as_complex(fastmri.fft2c(torch.view_as_real(x).contiguous()))
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    ours_i = ifft2c(x)
    theirs_i = torch.view_as_complex(fastmri.ifft2c(torch.view_as_real(x).contiguous()))
    torch.testing.assert_close(ours_i, theirs_i, atol=1e-5, rtol=1e-5)


def test_fft_is_unitary_and_inverse():
    x = crandn(2, 4, 12, 10)
    torch.testing.assert_close(ifft2c(fft2c(x)), x)
    torch.testing.assert_close(fft2c(x).norm(), x.norm())


def test_fft_rejects_real_input():
    with pytest.raises(TypeError, match="complex"):
        fft2c(torch.zeros(4, 4))


def _random_mask(b, h, w, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, 1, 1, w, generator=g) > 0.5).to(torch.float64).expand(b, 1, h, w)


@pytest.mark.parametrize("hw", [(16, 12), (15, 9)])
def test_sense_adjoint(hw):
    b, c, (h, w) = 2, 4, hw
    maps = crandn(b, c, h, w, seed=2)
    op = SenseOp(maps, _random_mask(b, h, w))
    x, y = crandn(b, h, w, seed=3), crandn(b, c, h, w, seed=4)
    lhs, rhs = inner(op(x), y), inner(x, op.H(y))
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)
    # The operator algebra: A.H.H is A, normal is A^H A.
    torch.testing.assert_close(op.H.H(x), op(x))
    torch.testing.assert_close(op.normal(x), op.H(op(x)))


@pytest.mark.parametrize("shape", [(2, 16, 12), (2, 3, 9, 7)])
def test_cartesian_adjoint(shape):
    mask = (torch.rand(shape[-1], generator=torch.Generator().manual_seed(0)) > 0.4).double()
    op = CartesianOp(mask)
    x, y = crandn(*shape, seed=5), crandn(*shape, seed=6)
    lhs, rhs = inner(op(x), y), inner(x, op.H(y))
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)


def test_expand_combine_adjoint():
    maps = crandn(1, 3, 8, 8, seed=7)
    x, y = crandn(1, 8, 8, seed=8), crandn(1, 3, 8, 8, seed=9)
    lhs, rhs = inner(expand_coils(x, maps), y), inner(x, combine_coils(y, maps))
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)


def test_sense_fully_sampled_with_normalised_maps_is_identity():
    maps = crandn(2, 4, 8, 8, seed=10)
    maps = maps / (maps.abs() ** 2).sum(1, keepdim=True).sqrt()
    op = SenseOp(maps, torch.ones(1, 1, 1, 1, dtype=torch.float64))
    x = crandn(2, 8, 8, seed=11)
    torch.testing.assert_close(op.normal(x), x)
