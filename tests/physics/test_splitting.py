"""SSDU splitting of the acquired k-space: disjoint, complete, at the requested ratio."""

import pytest
import torch

from unrolled.losses import KSpaceL1L2Loss
from unrolled.physics.masks import EquispacedMaskFractionFunc
from unrolled.physics.splitting import split_mask


def column_mask(b=3, h=64, w=48, acc=4):
    masks = []
    for i in range(b):
        m, _ = EquispacedMaskFractionFunc([0.08], [acc], seed=i)((1, h, w))
        masks.append(m.reshape(1, 1, w).expand(1, h, w))
    return torch.stack(masks)  # (B, 1, H, W)


@pytest.mark.parametrize("selection", ["uniform", "gaussian"])
@pytest.mark.parametrize("ratio", [0.2, 0.4, 0.6])
def test_split_is_a_partition_at_the_ratio(selection, ratio):
    mask = column_mask()
    g = torch.Generator().manual_seed(0)
    theta, lam = split_mask(mask, ratio, selection, keep_center=(4, 4), generator=g)
    full = mask
    assert theta.shape == lam.shape == (3, 1, 64, 48)
    assert torch.equal(theta + lam, full)  # complete
    assert float((theta * lam).sum()) == 0  # disjoint
    for i in range(3):
        got = float(lam[i].sum() / full[i].sum())
        assert abs(got - ratio) < 0.01
    # the central block stays with the network
    assert torch.all(lam[:, :, 30:34, 22:26] == 0)


def test_gaussian_selection_prefers_the_centre():
    mask = torch.ones(1, 1, 128, 128)
    g = torch.Generator().manual_seed(1)
    _, lam_u = split_mask(mask, 0.3, "uniform", generator=g)
    _, lam_g = split_mask(mask, 0.3, "gaussian", generator=g)
    centre = (slice(None), slice(None), slice(32, 96), slice(32, 96))
    assert lam_g[centre].sum() > 1.5 * lam_u[centre].sum()


def test_seeded_split_repeats_and_differs_between_seeds():
    mask = column_mask(b=1)
    a = split_mask(mask, generator=torch.Generator().manual_seed(5))[1]
    b = split_mask(mask, generator=torch.Generator().manual_seed(5))[1]
    c = split_mask(mask, generator=torch.Generator().manual_seed(6))[1]
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"ratio": 0.0}, "ratio"), ({"ratio": 1.0}, "ratio"), ({"selection": "poisson"}, "selection")],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        split_mask(torch.ones(1, 1, 8, 8), **kwargs)


def test_kspace_loss_is_zero_on_agreement_scale_free_and_masked():
    torch.manual_seed(0)
    y = torch.randn(2, 4, 16, 16, dtype=torch.complex64)
    mask = (torch.rand(2, 1, 16, 16) > 0.5).float()
    loss = KSpaceL1L2Loss()
    assert float(loss(y, y, mask)) == 0.0
    p = y + 0.1 * torch.randn_like(y)
    assert float(loss(p, y, mask)) == pytest.approx(float(loss(10 * p, 10 * y, mask)), rel=1e-5)
    # only the masked entries count
    q = torch.where(mask > 0, p, p + 100)
    assert float(loss(q, y, mask)) == pytest.approx(float(loss(p, y, mask)), rel=1e-6)
    # relative error 0.1 in every entry: L2 term 0.1, L1 term 0.1
    assert float(loss(1.1 * y, y, torch.ones(2, 1, 16, 16))) == pytest.approx(0.2, rel=1e-4)
