"""The unrolled network and zero-shot with two sets of ESPIRiT maps (soft-SENSE)."""

import numpy as np
import pytest
import torch

from unrolled.data.synth_volume import synthesize_volume
from unrolled.methods.zeroshot import ZeroShot
from unrolled.models.dc import GradientDC, HardDC, ProximalDC
from unrolled.models.denoisers import ComplexDenoiser, ResNet
from unrolled.models.sensitivity import EspiritSensitivity
from unrolled.models.unrolled import UnrolledNet
from unrolled.physics.coils import rss
from unrolled.physics.fft import ifft2c


@pytest.fixture(scope="module")
def folded():
    """One 8-coil slice, field of view 75 % of the head (128 x 96), 4x equispaced, 16-col centre."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    kspace, _ = synthesize_volume(
        np.random.default_rng([0, 13]), num_slices=1, height=128, fov_fraction=0.75
    )
    full = torch.from_numpy(kspace)  # (1, 8, 128, 96)
    w = full.shape[-1]
    cols = torch.zeros(w)
    cols[::4] = 1
    cols[w // 2 - 8 : w // 2 + 8] = 1
    mask = cols.reshape(1, 1, 1, w)
    yield full * mask, mask, torch.tensor([16])
    torch.set_num_threads(threads)


def _net(dc, num_maps=2):
    cnn = ResNet(2 * num_maps, 2 * num_maps, 4, 1)
    return UnrolledNet(ComplexDenoiser(cnn), dc, EspiritSensitivity(num_maps=num_maps), 2)


@pytest.mark.parametrize("dc", [HardDC(), ProximalDC(max_iter=3), GradientDC()])
def test_two_set_network_runs_and_backpropagates(folded, dc):
    y, mask, nlf = folded
    net = _net(dc)
    out = net(y, mask, nlf)
    assert out.maps.shape == (1, 2, 8, 128, 96)
    assert out.maps[0, 1].abs().amax() > 0  # the second set is there on this folded slice
    assert out.image.shape == (1, 128, 96) and out.kspace.shape == y.shape
    torch.testing.assert_close(out.image, rss(ifft2c(out.kspace), dim=1))
    if isinstance(dc, HardDC):  # DC unchanged in coil k-space: measured samples kept
        assert torch.equal(torch.where(mask > 0, out.kspace, 0), y)
    out.image.sum().backward()
    grads = [p.grad for p in net.denoisers[0].parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert net.denoisers[0].cnn.head.in_channels == 4  # 2 real channels per set


def test_complex_denoiser_pairs_channels_per_set():
    """(B, M, H, W) -> channels [Re x1, Im x1, Re x2, Im x2]; one set is the 2-channel path."""
    torch.manual_seed(0)
    cnn = ResNet(2, 2, 4, 1)
    den1 = ComplexDenoiser(cnn)
    x = torch.randn(2, 16, 12, dtype=torch.complex64)
    torch.testing.assert_close(den1(x[:, None])[:, 0], den1(x))
    seen = {}
    cnn4 = ResNet(4, 4, 4, 1)
    cnn4.head.register_forward_hook(lambda m, i, o: seen.setdefault("in", i[0]))
    ComplexDenoiser(cnn4)(torch.stack([x, 2 * x], 1))
    r = seen["in"]  # normalised per channel: the pairs of one image match the other's
    torch.testing.assert_close(r[:, 0:2], r[:, 2:4], atol=1e-5, rtol=0)


def test_zero_shot_fits_a_two_set_network(folded):
    y, mask, nlf = folded
    zs = ZeroShot(
        _net(HardDC()), max_steps=4, warmup_steps=1, val_every=2, patience=50, time_budget_s=None
    )
    out = zs(y, mask, nlf)
    assert out.image.shape == (1, 128, 96) and torch.isfinite(out.image).all()
    assert out.maps.shape == (1, 2, 8, 128, 96)
    assert torch.equal(torch.where(mask > 0, out.kspace, 0), y)
