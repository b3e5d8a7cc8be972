"""Compressed-sensing baselines: regulariser operators, solvers, interface, tuning search."""

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.common import crandn, inner
from torch import nn

from unrolled.evaluation import tuning
from unrolled.methods.cs import CSTV, CSWavelet, lipschitz_bound
from unrolled.physics.coils import rss
from unrolled.physics.fft import fft2c, ifft2c
from unrolled.physics.operators import SenseOp
from unrolled.physics.solvers import fista
from unrolled.physics.tv import FiniteDifferenceOp, project_l2_ball, tv_norm
from unrolled.physics.wavelets import WaveletOp, max_levels, padded_shape, soft_threshold

CONF = Path(__file__).resolve().parents[2] / "conf" / "method"


pytestmark = pytest.mark.usefixtures("one_thread_test")


def _smooth_maps(b, c, h, w, dtype=torch.complex64):
    """Gaussian coil profiles around the image with linear phases, ``sum_c |S_c|^2 = 1``."""
    yy, xx = torch.meshgrid(
        torch.linspace(-1, 1, h, dtype=torch.float64),
        torch.linspace(-1, 1, w, dtype=torch.float64),
        indexing="ij",
    )
    maps = []
    for k in range(c):
        ang = 2 * math.pi * k / c
        cy, cx = 1.2 * math.sin(ang), 1.2 * math.cos(ang)
        mag = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 1.5)
        maps.append(mag * torch.exp(1j * (0.7 * k + yy * (k - 1) + 0.5 * xx)))
    maps = torch.stack(maps)  # (C, H, W)
    maps = maps / rss(maps, dim=0, keepdim=True)
    return maps.expand(b, c, h, w).to(dtype).clone()


def _phantom(b, h, w, seed=0, dtype=torch.complex64):
    """Piecewise-constant ellipses with a smooth phase: sparse in wavelets and TV."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    out = []
    for _ in range(b):
        img = torch.zeros(h, w)
        for _ in range(5):
            cy, cx, ry, rx = (torch.rand(4, generator=g) * torch.tensor([1, 1, 0.5, 0.5])).tolist()
            inside = ((yy - cy + 0.5) / (ry + 0.15)) ** 2 + ((xx - cx + 0.5) / (rx + 0.15)) ** 2
            img += (inside < 1) * torch.rand(1, generator=g)
        out.append(img * torch.exp(1j * 0.5 * (yy + xx)))
    return torch.stack(out).to(dtype)  # (B, H, W)


class FixedMaps(nn.Module):
    """Stands in for ESPIRiT: returns the true maps."""

    def __init__(self, maps):
        super().__init__()
        self.maps = maps

    def forward(self, kspace, mask, num_low_frequencies, keys=None):
        return self.maps


def _problem(b=2, c=4, h=32, w=32, accel=3, seed=0):
    maps = _smooth_maps(b, c, h, w)
    x = _phantom(b, h, w, seed=seed)
    g = torch.Generator().manual_seed(seed)
    cols = (torch.rand(b, 1, 1, w, generator=g) < 1 / accel).float()
    cols[..., w // 2 - 3 : w // 2 + 3] = 1
    mask = cols.expand(b, 1, h, w).contiguous()
    noise = 0.01 * crandn(b, c, h, w, seed=seed + 1, dtype=torch.complex64)
    kspace = mask * (fft2c(maps * x.unsqueeze(1)) + noise)
    return kspace, mask, maps, x


# --------------------------------------------------------------------------- operators


def test_soft_threshold_is_the_complex_l1_prox():
    c = torch.tensor([3 + 4j, 0.3 - 0.4j, 0j, -2.0 + 0j], dtype=torch.complex128)
    out = soft_threshold(c, 1.0)
    expected = torch.tensor([2.4 + 3.2j, 0, 0, -1.0 + 0j], dtype=torch.complex128)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(soft_threshold(c, 0.0), c)
    # prox optimality: no random perturbation lowers 1/2|z - c|^2 + t|z|
    v = crandn(200, seed=1)
    z = soft_threshold(v, 0.7)
    f = lambda u: 0.5 * (u - v).abs() ** 2 + 0.7 * u.abs()  # noqa: E731
    for s in range(5):
        assert bool((f(z) <= f(z + 0.05 * crandn(200, seed=10 + s)) + 1e-12).all())


@pytest.mark.parametrize(
    ("shape", "levels", "wavelet"),
    [((64, 64), 4, "db4"), ((32, 48), 3, "db4"), ((16, 24), 2, "haar"), ((64, 32), 2, "sym8")],
)
def test_wavelet_is_orthogonal_and_matches_ptwt(shape, levels, wavelet):
    psi = WaveletOp(shape, wavelet, levels, dtype=torch.complex128)
    x = crandn(3, *shape, seed=2)
    c = psi(x)
    assert c.shape == x.shape and c.dtype == x.dtype
    torch.testing.assert_close(psi.H(c), x, atol=1e-10, rtol=0)  # perfect reconstruction
    d = crandn(3, *shape, seed=3)
    torch.testing.assert_close(psi(psi.H(d)), d, atol=1e-10, rtol=0)  # W W^H = I: no redundancy
    torch.testing.assert_close(c.norm(), x.norm())
    assert abs(inner(c, d) - inner(x, psi.H(d))) < 1e-10 * x.norm() * d.norm()
    # same coefficients as ptwt's own matrix transform (real part; W is real)
    ptwt = pytest.importorskip("ptwt")
    with warnings.catch_warnings():  # torch's notices on ptwt's sparse matrices
        warnings.simplefilter("ignore")
        ref = ptwt.MatrixWavedec2(wavelet, level=levels, orthogonalization="qr")(x.real)
    ah, aw = psi.approx_shape
    torch.testing.assert_close(c.real[:, :ah, :aw], ref[0])
    torch.testing.assert_close(c.real[:, ah : 2 * ah, aw : 2 * aw], ref[1][2])  # coarsest HH
    torch.testing.assert_close(c.real[:, shape[0] // 2 :, : shape[1] // 2], ref[-1][1])


def test_wavelet_shape_checks():
    assert max_levels((64, 64), "db4") == 4
    assert padded_shape((60, 44), 3) == (64, 48)
    with pytest.raises(ValueError, match="multiples"):
        WaveletOp((60, 44), "db4", 3)
    with pytest.raises(ValueError, match="not orthogonal"):
        WaveletOp((64, 64), "bior2.2", 2)


def test_finite_differences_adjoint_norm_and_tv():
    d = FiniteDifferenceOp()
    x, p = crandn(2, 7, 9, seed=4), crandn(2, 2, 7, 9, seed=5)
    assert abs(inner(d(x), p) - inner(x, d.H(p))) < 1e-12 * x.norm() * p.norm()
    v = crandn(1, 24, 24, seed=6)
    for _ in range(200):  # power iteration: ||D||^2 <= 8
        v = d.normal(v)
        v = v / v.norm()
    assert 7.5 < float(inner(v, d.normal(v)).real) <= 8.0
    torch.testing.assert_close(tv_norm(torch.full((2, 6, 5), 3 - 2j)), torch.zeros(2))
    step = torch.zeros(1, 6, 5, dtype=torch.complex64)
    step[..., 3:] = 2j  # a vertical edge of height 2 over 6 rows
    torch.testing.assert_close(tv_norm(step), torch.tensor([12.0]))
    g = project_l2_ball(crandn(2, 2, 5, 5, seed=7), 0.5)
    assert float(g.abs().pow(2).sum(dim=1).sqrt().max()) <= 0.5 + 1e-12


def test_lipschitz_bound_is_one_and_tight_for_normalised_maps():
    kspace, mask, maps, _ = _problem()
    op = SenseOp(maps.to(torch.complex128), mask.double())
    torch.testing.assert_close(lipschitz_bound(op), torch.ones(2, dtype=torch.float64))
    full = SenseOp(maps.to(torch.complex128), torch.ones_like(mask).double())
    v = crandn(2, 32, 32, seed=8)
    for _ in range(50):
        v = op.normal(v)
        v = v / v.flatten(1).norm(dim=1).reshape(-1, 1, 1)
    lam_max = (v.conj() * op.normal(v)).flatten(1).sum(1).real
    assert bool((lam_max <= 1 + 1e-9).all()) and bool((lam_max > 0.9).all())
    torch.testing.assert_close(full.normal(v), v)  # A^H A = I with full sampling


# --------------------------------------------------------------------------- solvers


def test_fista_solves_a_lasso_to_its_optimality_conditions():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(30, 60, generator=g, dtype=torch.float64)
    a = a / torch.linalg.matrix_norm(a, 2)  # L = 1
    y = torch.randn(2, 30, generator=g, dtype=torch.float64)
    lam = 0.05
    grad = lambda x: (x @ a.T - y) @ a  # noqa: E731
    prox = lambda v, step: soft_threshold(v, lam * step[:, None])  # noqa: E731
    obj = lambda x: 0.5 * (x @ a.T - y).pow(2).sum(1) + lam * x.abs().sum(1)  # noqa: E731
    trace = []
    step = torch.ones(2, dtype=torch.float64)
    x = fista(grad, prox, torch.zeros(2, 60, dtype=torch.float64), step, 400, callback=trace.append)
    # KKT: grad_i = -lam sign(x_i) on the support, |grad_i| <= lam off it
    gx, support = grad(x), x.abs() > 1e-9
    assert bool(support.any(1).all()) and bool((~support).any(1).all())
    torch.testing.assert_close(gx[support], -lam * x[support].sign(), atol=1e-7, rtol=0)
    assert float(gx[~support].abs().max()) <= lam + 1e-7
    values = torch.stack([obj(t) for t in trace])  # (iters, B)
    assert bool((values[1:] <= values[:-1] * (1 + 1e-3)).all())  # restarts keep it near-monotone


@pytest.mark.parametrize("cls", [CSWavelet, CSTV])
def test_objective_decreases_and_converges(cls):
    kspace, mask, maps, _ = _problem()
    op = SenseOp(maps, mask)
    method = cls(lam=0.01, num_iter=150)
    trace = []
    x = method.solve(op, kspace, callback=lambda v: trace.append(method.objective(v, op, kspace)))
    values = torch.stack(trace)  # (iters, B)
    start = method.objective(op.H(kspace), op, kspace)
    assert bool((values[-1] < 0.9 * start).all())
    assert bool((values[1:] <= values[:-1] * (1 + 2e-3)).all())  # monotone-ish
    # converged: 250 more iterations change the objective by < 0.1 %
    longer = cls(lam=0.01, num_iter=400)
    torch.testing.assert_close(
        method.objective(x, op, kspace), longer.objective(longer.solve(op, kspace), op, kspace),
        rtol=1e-3, atol=0,
    )  # fmt: skip


@pytest.mark.parametrize("cls", [CSWavelet, CSTV])
def test_zero_lambda_full_sampling_returns_the_fully_sampled_rss_image(cls):
    _, _, maps, x = _problem()
    kspace = fft2c(maps * x.unsqueeze(1))  # fully sampled, noise free, (B, C, H, W)
    mask = torch.ones(2, 1, 32, 32)
    method = cls(lam=1e-7, num_iter=10, espirit=FixedMaps(maps))
    out = method(kspace, mask, torch.tensor([32, 32]))
    torch.testing.assert_close(out.image, rss(ifft2c(kspace), dim=1), atol=1e-4, rtol=1e-4)


def test_larger_lambda_gives_sparser_and_smoother_images():
    kspace, mask, maps, _ = _problem()
    op = SenseOp(maps, mask)
    psi = WaveletOp((32, 32), "db4", 2)
    sparsity, tvs = [], []
    for lam in (0.001, 0.01, 0.1):
        x = CSWavelet(lam, num_iter=60, levels=2).solve(op, kspace)
        c = psi(x / x.abs().amax())
        sparsity.append(float((c.abs() < 1e-6).float().mean()))
        tvs.append(float(tv_norm(CSTV(lam, num_iter=60).solve(op, kspace)).sum()))
    assert sparsity[0] < sparsity[1] < sparsity[2]
    assert tvs[0] > tvs[1] > tvs[2]


@pytest.mark.parametrize("cls", [CSWavelet, CSTV])
def test_batched_equals_per_sample_and_scale_free(cls):
    kspace, mask, maps, _ = _problem()
    kspace[1], mask[1], maps[1] = 1e-4 * kspace[0], mask[0], maps[0]  # same slice, scaled
    nlf = torch.tensor([6, 6])
    method = cls(lam=0.01, num_iter=20, espirit=FixedMaps(maps))
    batched = method(kspace, mask, nlf).image
    for i in range(2):
        single = cls(lam=0.01, num_iter=20, espirit=FixedMaps(maps[i : i + 1]))
        one = single(kspace[i : i + 1], mask[i : i + 1], nlf[i : i + 1]).image
        torch.testing.assert_close(batched[i : i + 1], one, rtol=1e-4, atol=1e-6 * float(one.max()))
    torch.testing.assert_close(batched[1] * 1e4, batched[0], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("cls", [CSWavelet, CSTV])
def test_interface_shapes_and_dtypes_with_espirit(cls):
    kspace, mask, _, _ = _problem(b=2, c=4, h=32, w=32)  # 6 fully sampled centre columns
    method = cls(lam=0.003, num_iter=5)
    out = method(kspace, mask, torch.tensor([6, 6]), keys=[("a", 0), ("a", 1)])
    b, c, h, w = kspace.shape
    assert out.image.shape == (b, h, w) and out.image.dtype == torch.float32
    assert out.kspace.shape == (b, c, h, w) and out.kspace.dtype == torch.complex64
    assert out.maps.shape == (b, c, h, w) and out.cascades == []
    assert bool(torch.isfinite(out.image).all())
    assert len(method.espirit._cache) == 2  # ESPIRiT maps cached by key
    again = cls(lam=0.003, num_iter=5, espirit=method.espirit)  # shared cache
    torch.testing.assert_close(
        again(kspace, mask, torch.tensor([6, 6]), keys=[("a", 0), ("a", 1)]).image, out.image
    )


def test_wavelet_pads_sides_that_are_not_multiples_of_the_level_step():
    kspace, mask, maps, _ = _problem(h=30, w=22)
    out = CSWavelet(lam=0.01, num_iter=10, levels=3, espirit=FixedMaps(maps))(
        kspace, mask, torch.tensor([6, 6])
    )
    assert out.image.shape == (2, 30, 22) and bool(torch.isfinite(out.image).all())


@pytest.mark.parametrize("name", ["cs_wavelet", "cs_tv"])
def test_method_configs_instantiate(name):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    method = instantiate(OmegaConf.load(CONF / f"{name}.yaml"))
    assert isinstance(method, CSWavelet if name == "cs_wavelet" else CSTV)
    assert 0 < method.lam < 1


# --------------------------------------------------------------------------- tuning


def _fake_scores(monkeypatch, optimum):
    calls = []

    def fake(method, batches, device="cpu"):
        calls.append(method)
        s = 0.9 - (math.log10(method) - math.log10(optimum)) ** 2 / 10
        return {"ssim": s, "psnr": 30 * s, "nmse": 1 - s}

    monkeypatch.setattr(tuning, "score_method", fake)
    return calls


def test_log_scale_search_brackets_and_refines(monkeypatch):
    calls = _fake_scores(monkeypatch, optimum=0.0042)
    result = tuning.tune_log_scale(lambda v: v, lambda: [], refine_steps=6)
    assert len(calls) == 7 + 6 and len(result.scores) == 13
    assert abs(math.log10(result.best / 0.0042)) < 0.05  # within ~12 % after 6 golden steps
    assert result.score == max(result.scores.values()) and not result.at_edge
    assert set(result.to_dict()["scores"]) == {f"{v:.6g}" for v in result.scores}
    calls = _fake_scores(monkeypatch, optimum=0.0042)
    nmse = tuning.tune_log_scale(lambda v: v, lambda: [], refine_steps=4, metric="nmse")
    assert abs(math.log10(nmse.best / 0.0042)) < 0.15


def test_log_scale_search_extends_the_grid_at_its_edges(monkeypatch):
    _fake_scores(monkeypatch, optimum=3e-6)
    result = tuning.tune_log_scale(lambda v: v, lambda: [], refine_steps=2, max_extend=4)
    assert min(result.coarse) < 1e-5 and not result.at_edge
    assert abs(math.log10(result.best / 3e-6)) < 0.3
    _fake_scores(monkeypatch, optimum=1e3)
    far = tuning.tune_log_scale(lambda v: v, lambda: [], refine_steps=0, max_extend=1)
    assert far.at_edge and np.isclose(max(far.coarse), 10**-0.5, rtol=0.01)


def test_tune_parameter_grid_and_reexport(monkeypatch):
    from unrolled.evaluation import compare

    assert compare.tune_parameter is tuning.tune_parameter
    _fake_scores(monkeypatch, optimum=0.01)
    best, scores = tuning.tune_parameter(lambda v: v, [0.001, 0.01, 0.1], lambda: [])
    assert best == 0.01 and set(scores) == {0.001, 0.01, 0.1}
    best, _ = tuning.tune_parameter(lambda v: v, [0.001, 0.01, 0.1], lambda: [], metric="nmse")
    assert best == 0.01
