"""The unrolled network: shapes, exact hard DC, CG proximal step, weight sharing."""

import pytest
import torch

from unrolled.models.dc import GradientDC, HardDC, ProximalDC
from unrolled.models.denoisers import ComplexDenoiser, MultiScaleResNet, ResNet
from unrolled.models.sensitivity import EspiritSensitivity, LearnedSensitivity
from unrolled.models.unrolled import UnrolledNet
from unrolled.physics.fft import fft2c, ifft2c
from unrolled.physics.operators import SenseOp
from unrolled.physics.solvers import conjugate_gradient


def _problem(b=2, c=4, h=32, w=24, nlf=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    img = ((xx**2 + yy**2) < 0.6).float() * (1 + 0.3 * torch.randn(h, w, generator=g))
    angles = [2 * torch.pi * i / c for i in range(c)]
    maps = torch.stack(
        [
            torch.exp(
                -(
                    (xx - 0.8 * torch.cos(torch.tensor(a))) ** 2
                    + (yy - 0.8 * torch.sin(torch.tensor(a))) ** 2
                )
            )
            * torch.exp(1j * a * xx)
            for a in angles
        ]
    )
    coil = maps * img  # (C, H, W)
    k = fft2c(coil.to(torch.complex64)).expand(b, -1, -1, -1).clone()
    cols = torch.rand(w, generator=g) < 0.3
    cols[(w - nlf + 1) // 2 : (w - nlf + 1) // 2 + nlf] = True
    mask = cols.float().reshape(1, 1, 1, w).expand(b, 1, h, w).clone()
    return k * mask, mask, torch.full((b,), nlf), k


def _net(dc, sens=None, **kw):
    den = ComplexDenoiser(ResNet(2, 2, channels=8, num_blocks=2))
    return UnrolledNet(den, dc, sens or LearnedSensitivity(4, 1), num_cascades=3, **kw)


@pytest.mark.parametrize("dc", [HardDC(), ProximalDC(), GradientDC()], ids=["hard", "cg", "grad"])
def test_shapes_and_backward(dc):
    y, mask, nlf, _ = _problem()
    net = _net(dc)
    out = net(y, mask, nlf, return_cascades=True)
    assert out.image.shape == (2, 32, 24) and out.image.dtype == torch.float32
    assert out.kspace.shape == y.shape and out.kspace.dtype == torch.complex64
    assert len(out.cascades) == 3
    out.image.mean().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_hard_dc_output_matches_measured_samples_exactly():
    y, mask, nlf, _ = _problem()
    out = _net(HardDC())(y, mask, nlf)
    sampled = mask.expand_as(y) > 0
    torch.testing.assert_close(out.kspace[sampled], y[sampled], rtol=0, atol=0)
    # and unsampled locations are filled by the network, not left empty
    assert out.kspace[~sampled].abs().mean() > 0


def test_proximal_dc_solves_the_regularised_problem():
    y, mask, nlf, _ = _problem(b=1)
    maps = LearnedSensitivity(4, 1)(y, mask, nlf).detach()
    z = torch.randn(1, 32, 24, dtype=torch.complex64)
    dc = ProximalDC(init_lambda=0.1, max_iter=200, tol=1e-7)
    k = dc(z, y, maps, mask)
    op = SenseOp(maps, mask)
    x = conjugate_gradient(
        lambda v: op.normal(v) + 0.1 * v, op.H(y) + 0.1 * z, max_iter=500, tol=1e-8
    )
    torch.testing.assert_close(k, fft2c(maps * x.unsqueeze(1)), atol=1e-4, rtol=1e-3)


def test_gradient_dc_with_unit_step_is_hard_dc():
    y, mask, nlf, _ = _problem()
    maps = LearnedSensitivity(4, 1)(y, mask, nlf).detach()
    z = torch.randn(2, 32, 24, dtype=torch.complex64)
    torch.testing.assert_close(
        GradientDC(init_step=1.0)(z, y, maps, mask), HardDC()(z, y, maps, mask)
    )


def test_weight_sharing_and_independent_init():
    shared = _net(HardDC(), share_weights=True, share_dc=True)
    separate = _net(ProximalDC())
    n = sum(p.numel() for p in shared.denoisers.parameters())
    assert len(shared.denoisers) == 1 and len(separate.denoisers) == 3
    assert sum(p.numel() for p in separate.denoisers.parameters()) == 3 * n
    w0, w1 = (separate.denoisers[i].cnn.head.weight for i in (0, 1))
    assert not torch.equal(w0, w1)  # each cascade freshly initialised
    assert len(separate.dcs) == 3 and separate.dcs[0].log_lambda is not separate.dcs[1].log_lambda


def test_gradient_checkpointing_gives_the_same_gradients():
    y, mask, nlf, _ = _problem()
    torch.manual_seed(0)
    a = _net(ProximalDC())
    b = _net(ProximalDC(), checkpointing=True)
    b.load_state_dict(a.state_dict())
    for net in (a, b):
        net(y, mask, nlf).image.pow(2).mean().backward()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-4, atol=1e-6)


def test_multiscale_denoiser_handles_odd_sizes_and_starts_near_identity():
    den = ComplexDenoiser(MultiScaleResNet(2, 2, channels=8, num_blocks=2))
    x = torch.randn(2, 17, 15, dtype=torch.complex64)
    z = den(x)
    assert z.shape == x.shape
    assert (z - x).abs().mean() < x.abs().mean()


def test_denoiser_is_scale_equivariant():
    den = ComplexDenoiser(ResNet(2, 2, channels=8, num_blocks=2))
    x = torch.randn(1, 16, 16, dtype=torch.complex64)
    torch.testing.assert_close(den(1e-4 * x), 1e-4 * den(x), rtol=1e-4, atol=1e-9)


def test_learned_maps_are_normalised():
    y, mask, nlf, _ = _problem()
    maps = LearnedSensitivity(4, 1)(y, mask, nlf)
    torch.testing.assert_close(maps.abs().pow(2).sum(1), torch.ones(2, 32, 24), atol=1e-4, rtol=0)


def test_espirit_sensitivity_caches_per_slice():
    y, mask, nlf, _ = _problem(b=1, c=4, h=32, w=32)
    sens = EspiritSensitivity()
    keys = [("file.h5", 0)]
    m1 = sens(y, mask, nlf, keys=keys)
    assert len(sens._cache) == 1
    m2 = sens(torch.zeros_like(y), mask, nlf, keys=keys)  # served from the cache
    torch.testing.assert_close(m1, m2)
    assert not any(p.requires_grad for p in sens.parameters())


def test_zero_filled_reconstruction_is_rss_of_ifft():
    from unrolled.methods.classical import ZeroFilled

    y, mask, nlf, _ = _problem()
    out = ZeroFilled()(y, mask, nlf)
    torch.testing.assert_close(out.image, ifft2c(y).abs().pow(2).sum(1).sqrt())


@pytest.mark.parametrize("cnn", [ResNet, MultiScaleResNet])
def test_a_zeroed_residual_is_the_identity_and_trains_away_from_it(cnn):
    den = ComplexDenoiser(cnn(2, 2, channels=8, num_blocks=2)).zero_residual_()
    x = torch.randn(2, 16, 16, dtype=torch.complex64)
    torch.testing.assert_close(den(x), x, rtol=0, atol=0)
    opt = torch.optim.SGD(den.parameters(), lr=0.1)
    (den(x) - 2 * x).abs().pow(2).mean().backward()
    opt.step()
    assert not torch.equal(den(x), x)  # the last layer's gradient is not zero


def test_a_network_started_from_given_kspace_returns_its_data_consistent_image():
    """With identity denoisers and hard DC, one cascade returns the start's k-space with the
    measured samples put back; later cascades stay close to it (they project onto the maps'
    range and put the samples back again)."""
    y, mask, nlf, full = _problem()
    maps_net = _net(HardDC(), sens=EspiritSensitivity())
    for den in maps_net.denoisers:
        den.zero_residual_()
    maps = maps_net.sens(y, mask, nlf)  # (B, C, H, W), sum_c |S_c|^2 = 1 inside the support
    x0 = (maps.conj() * ifft2c(full)).sum(1)  # a good start: the fully sampled combination
    start = fft2c(maps * x0.unsqueeze(1))  # F S x0
    out = maps_net(y, mask, nlf, initial_kspace=start)
    sampled = mask.expand_as(y) > 0
    expected = torch.where(sampled, y, start)
    one_cascade = UnrolledNet(maps_net.denoisers[0], HardDC(), maps_net.sens, num_cascades=1)
    torch.testing.assert_close(one_cascade(y, mask, nlf, initial_kspace=start).kspace, expected)
    # the later cascades only re-project onto the maps' range: close to the first
    err = (out.kspace - expected).abs().pow(2).sum() / expected.abs().pow(2).sum()
    assert err < 1e-3, err
    # and far better than the zero-filled start the same network has without it
    zero_filled = maps_net(y, mask, nlf).kspace
    assert (zero_filled - full).abs().pow(2).sum() > 4 * (out.kspace - full).abs().pow(2).sum()
    with pytest.raises(ValueError, match="initial_kspace has shape"):
        maps_net(y, mask, nlf, initial_kspace=start[..., :-1])
