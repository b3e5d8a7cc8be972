"""k-space cross-validation of the regularisation weight (issue 16, section 2).

A small synthetic case where the oracle is clear: a 64 x 64 piecewise-constant
phantom, four smooth known coil maps, complex Gaussian noise, 3x equispaced
lines plus 8 calibration columns. CG-SENSE's PSNR peaks at one weight and drops
by more than 1 dB a decade away on either side; the weight chosen from the
acquired samples alone must lie within a factor 3 of that oracle.
"""

import math
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from unrolled.methods.classical import CGSense
from unrolled.methods.cs import CSTV, CSWavelet
from unrolled.methods.weight_selection import KSpaceCrossValidation
from unrolled.metrics import psnr
from unrolled.physics.fft import fft2c
from unrolled.physics.operators import SenseOp

CONF = Path(__file__).resolve().parents[2] / "conf" / "method"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class KnownMaps(torch.nn.Module):
    """Stands in for the ESPIRiT estimator: always the given maps."""

    def __init__(self, maps):
        super().__init__()
        self.maps = maps

    def forward(self, kspace, mask, num_low_frequencies, keys=None):
        return self.maps


def synthetic_scan(n: int = 64, sigma: float = 0.02, acc: int = 3, seed: int = 0):
    """-> ``(image (H, W), maps (1, 4, H, W), kspace (1, 4, H, W), mask (1, 1, H, W), nlf)``."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, n), torch.linspace(-1, 1, n), indexing="ij")
    image = (
        ((xx / 0.8) ** 2 + (yy / 0.9) ** 2 < 1).float()
        - 0.5 * (((xx - 0.2) / 0.3) ** 2 + (yy / 0.4) ** 2 < 1).float()
        + 0.3 * ((xx + 0.3) ** 2 + (yy + 0.3) ** 2 < 0.04).float()
    ).to(torch.complex64)
    maps = torch.stack(
        [
            torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 1.5)
            * torch.exp(1j * (cx * xx + cy * yy))
            for cx, cy in [(-1, -1), (1, -1), (-1, 1), (1, 1)]
        ]
    )[None].to(torch.complex64)
    maps = maps / maps.abs().pow(2).sum(dim=1, keepdim=True).sqrt()
    full = fft2c(maps * image)
    noise = torch.complex(
        torch.randn(full.shape, generator=gen), torch.randn(full.shape, generator=gen)
    )
    mask = torch.zeros(1, 1, n, n)
    mask[..., ::acc] = 1
    nlf = 8
    mask[..., n // 2 - nlf // 2 : n // 2 + nlf // 2] = 1
    return image, maps, (full + sigma * noise / math.sqrt(2)) * mask, mask, nlf


def test_selector_recovers_the_oracle_weight_within_a_factor_3():
    image, maps, kspace, mask, nlf = synthetic_scan()
    method = CGSense(max_iter=30)
    selector = KSpaceCrossValidation()
    sel = selector.select(method.solve, maps, kspace, mask, nlf)
    assert sel.holdout == "points" and sel.num_folds == 3 and not sel.at_edge
    op = SenseOp(maps, mask)
    grid = [10 ** (e / 4) for e in range(-16, 1)]  # 1e-4 ... 1, quarter decades

    def score(w):
        return float(psnr(image.abs()[None], method.solve(w, op, kspace).abs()))

    scores = {w: score(w) for w in grid}
    oracle = max(scores, key=scores.get)
    # the oracle is clear: a decade away on either side costs more than 1 dB
    assert scores[oracle] - score(oracle * 10) > 1.0
    assert scores[oracle] - score(oracle / 10) > 1.0
    assert oracle / 3 <= sel.weight <= oracle * 3, (sel.weight, oracle, sel.errors)
    assert scores[oracle] - score(sel.weight) < 0.5
    # the CV curve is what was minimised, and it has an interior minimum
    assert sel.errors[sel.weight] == min(sel.errors.values())
    ws = sorted(sel.errors)
    assert sel.errors[ws[0]] > sel.errors[sel.weight] < sel.errors[ws[-1]]


@pytest.mark.parametrize("cls", [CGSense, CSWavelet, CSTV])
def test_methods_reconstruct_from_all_samples_with_the_chosen_weight(cls):
    """The method with ``weight_selection`` = the same method with the chosen fixed weight."""
    image, maps, kspace, mask, nlf = synthetic_scan(n=32)
    kw = {"max_iter": 10} if cls is CGSense else {"num_iter": 10}
    selector = KSpaceCrossValidation(grid=(1e-3, 1e-2, 1e-1), refine_steps=2, max_extend=0)
    known = KnownMaps(maps)  # the ESPIRiT estimator replaced by the true maps
    auto = cls(lam=0.5, weight_selection=selector, espirit=known, **kw)
    solve = auto.solve if cls is CGSense else auto.solve_with_weight
    sel = selector.select(solve, maps, kspace, mask, nlf)
    assert len(sel.errors) == 5
    fixed = cls(lam=sel.weight, espirit=known, **kw)
    nlf_t = torch.tensor([nlf])
    out_auto = auto(kspace, mask, nlf_t)
    out_fixed = fixed(kspace, mask, nlf_t)
    torch.testing.assert_close(out_auto.image, out_fixed.image)
    assert auto.lam == 0.5  # the fixed weight is not overwritten


def test_selection_per_slice_in_a_batch():
    a = synthetic_scan(n=32, sigma=0.002, seed=1)
    b = synthetic_scan(n=32, sigma=0.2, seed=2)
    maps = torch.cat([a[1], b[1]])
    kspace, mask = torch.cat([a[2], b[2]]), torch.cat([a[3], b[3]])
    selector = KSpaceCrossValidation()
    method = CGSense(max_iter=20)
    x, sels = selector.reconstruct(method.solve, maps, kspace, mask, torch.tensor([8, 8]))
    assert x.shape == (2, 32, 32) and len(sels) == 2
    assert sels[1].weight > 3 * sels[0].weight  # the noisier slice gets the larger weight


def test_a_centre_only_mask_falls_back_to_the_fixed_weight():
    """Nothing acquired outside the calibration region: nothing to hold out, the YAML's lam."""
    image, maps, kspace, _, nlf = synthetic_scan(n=32)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 12:20] = 1
    selector = KSpaceCrossValidation()
    method = CGSense(max_iter=10)
    x, (sel,) = selector.reconstruct(method.solve, maps, kspace * mask, mask, 8, fallback=0.02)
    assert sel.weight == 0.02 and not sel.errors
    torch.testing.assert_close(x, method.solve(0.02, SenseOp(maps, mask), kspace * mask))
    with pytest.raises(ValueError, match="outside the calibration region"):
        selector.reconstruct(method.solve, maps, kspace * mask, mask, 8)


def test_bad_options_fail_at_construction():
    with pytest.raises(ValueError, match="grid"):
        KSpaceCrossValidation(grid=(1e-3,))
    with pytest.raises(ValueError, match="holdout"):
        KSpaceCrossValidation(holdout="rows")
    with pytest.raises(ValueError, match="fraction"):
        KSpaceCrossValidation(fraction=0.0)


@pytest.mark.parametrize("name", ["cg_sense", "cs_wavelet", "cs_tv"])
def test_method_configs_instantiate_with_and_without_selection(name):
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    assert "weight_selection" in cfg
    on = OmegaConf.merge(
        cfg,
        {
            "weight_selection": {
                "_target_": "unrolled.methods.weight_selection.KSpaceCrossValidation"
            }
        },
    )
    assert isinstance(instantiate(on).weight_selection, KSpaceCrossValidation)
    off = OmegaConf.merge(cfg, {"weight_selection": None})
    assert instantiate(off).weight_selection is None
