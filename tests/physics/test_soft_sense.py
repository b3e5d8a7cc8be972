"""Soft-SENSE: the SENSE operator with M sets of maps, ESPIRiT's extra sets, the FOV fold."""

import numpy as np
import pytest
import torch

from unrolled.data.synth_volume import synthesize_volume
from unrolled.models.sensitivity import EspiritSensitivity
from unrolled.physics.coils import espirit
from unrolled.physics.fft import fft2c, ifft2c
from unrolled.physics.fov import fold_fov, folded_width
from unrolled.physics.operators import SenseOp, combine_coils, combine_sets, expand_coils


def _crandn(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(
        torch.randn(*shape, generator=g, dtype=dtype), torch.randn(*shape, generator=g, dtype=dtype)
    )


def _mask(b, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, 1, 1, w, generator=g) < 0.4).double()


@pytest.mark.parametrize("num_maps", [1, 2, 3])
def test_multi_map_sense_adjoint(num_maps):
    """<A x, y> = <x, A^H y> in complex128 for maps (B, M, C, H, W), images (B, M, H, W)."""
    maps = _crandn(2, num_maps, 4, 10, 9, seed=1)
    op = SenseOp(maps, _mask(2, 9))
    x, y = _crandn(2, num_maps, 10, 9, seed=2), _crandn(2, 4, 10, 9, seed=3)
    assert op(x).shape == (2, 4, 10, 9) and op.H(y).shape == (2, num_maps, 10, 9)
    lhs, rhs = torch.vdot(op(x).flatten(), y.flatten()), torch.vdot(x.flatten(), op.H(y).flatten())
    assert abs(lhs - rhs) <= 1e-12 * abs(lhs)
    assert op.num_maps == num_maps


def test_one_set_is_todays_operator_exactly():
    """(B, C, H, W) maps: the formulas of the single-set operator, bit for bit, and the same
    as the set given as (B, 1, C, H, W)."""
    maps, mask = _crandn(2, 4, 8, 6, seed=4).to(torch.complex64), _mask(2, 6).float()
    x, y = (
        _crandn(2, 8, 6, seed=5).to(torch.complex64),
        _crandn(2, 4, 8, 6, seed=6).to(torch.complex64),
    )
    op = SenseOp(maps, mask)
    assert torch.equal(op(x), mask * fft2c(maps * x.unsqueeze(1)))
    assert torch.equal(op.H(y), (maps.conj() * ifft2c(mask * y)).sum(dim=1))
    one = SenseOp(maps[:, None], mask)
    torch.testing.assert_close(one(x[:, None]), op(x), rtol=0, atol=1e-6)
    torch.testing.assert_close(one.H(y)[:, 0], op.H(y), rtol=0, atol=1e-6)
    assert combine_sets(x, maps).equal(x.abs())


def test_two_sets_sum_coil_images_and_rss_over_sets():
    maps, x = _crandn(1, 2, 3, 5, 5, seed=7), _crandn(1, 2, 5, 5, seed=8)
    expected = maps[:, 0] * x[:, 0, None] + maps[:, 1] * x[:, 1, None]
    torch.testing.assert_close(expand_coils(x, maps), expected)
    torch.testing.assert_close(
        combine_coils(expected, maps)[:, 1], (maps[:, 1].conj() * expected).sum(1)
    )
    torch.testing.assert_close(combine_sets(x, maps), (x.abs() ** 2).sum(1).sqrt())
    with pytest.raises(ValueError, match=r"\(B, M, C, H, W\)"):
        SenseOp(maps[0, 0, 0], torch.ones(1))


def test_fold_fov_wraps_columns_around_the_centre():
    """A column at offset u from the centre lands at u mod W' (centred), energy adds up."""
    W, frac = 16, 0.75
    Wf = folded_width(W, frac)
    assert Wf == 12
    x = torch.zeros(1, 2, W)
    x[0, 0, W // 2] = 1.0  # the centre stays the centre
    x[0, 1, 1] = 2.0  # offset -7 -> wraps to +5
    out = fold_fov(x, frac)
    assert out.shape == (1, 2, Wf)
    assert out[0, 0, Wf // 2] == 1 and out[0, 1, Wf // 2 + 5] == 2 and out.sum() == 3
    assert fold_fov(x, 1.0) is x
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="fov_fraction"):
            folded_width(W, bad)


def _slice(fov_fraction):
    kspace, _ = synthesize_volume(
        np.random.default_rng([0, 13]), num_slices=1, height=128, fov_fraction=fov_fraction
    )
    return torch.from_numpy(kspace)  # (1, 8, 128, W')


def test_espirit_extra_sets_keep_the_first_and_are_orthonormal():
    kspace = _slice(0.75)
    one = espirit(kspace, 16, crop=0.0)
    two = espirit(kspace, 16, crop=0.0, num_maps=2, extra_crop=0.0)
    assert one.shape == (1, 8, 128, 96) and two.shape == (1, 2, 8, 128, 96)
    assert torch.equal(two[:, 0], one)  # asking for more sets leaves the first one as it was
    gram = torch.einsum("bmchw,bnchw->bhwmn", two.conj(), two)  # (1, H, W, 2, 2)
    torch.testing.assert_close(
        gram, torch.eye(2, dtype=gram.dtype).expand_as(gram), atol=1e-4, rtol=0
    )
    with pytest.raises(ValueError, match="num_maps"):
        espirit(kspace, 16, num_maps=9)


@pytest.mark.parametrize("columns", [8, 16])
def test_second_set_of_maps_appears_only_for_folded_data(columns):
    """Automatic choice (num_maps=None): one set for the whole head, two for a field of
    view folded to 75 %, with 16 calibration columns and with 8 (4x, centre fraction 0.08:
    the two sets then come from a kernel of 4)."""
    sens = EspiritSensitivity(num_maps=None)  # automatic (the classical methods use it)
    nlf = torch.tensor([columns])
    full, folded = _slice(1.0), _slice(0.75)
    maps_full = sens(full, torch.ones(1, 1, 1, full.shape[-1]), nlf)
    maps_folded = sens(folded, torch.ones(1, 1, 1, folded.shape[-1]), nlf)
    assert maps_full.shape == (1, 8, 128, 128)  # one set: exactly the single-set maps
    assert torch.equal(maps_full, EspiritSensitivity(num_maps=1)(full, None, nlf))
    assert maps_folded.shape == (1, 2, 8, 128, 96)
    support = (maps_folded[0, 1].abs().amax(0) > 0).float().mean().item()
    assert 0.001 <= support < 0.2, support  # where the head's sides fold over its middle
    if columns == 16:  # the second set sits at the folded edges of the field of view
        cols = (maps_folded[0, 1].abs().amax(dim=(0, 1)) > 0).nonzero().flatten()
        assert ((cols < 24) | (cols >= 72)).all(), cols
