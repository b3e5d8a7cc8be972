"""The robustness suite on the tiny embedded set: grid, degradations, indicators, outputs."""

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from unrolled.evaluation.robustness import (
    Condition,
    degrade,
    estimate_noise_std,
    evaluate_condition,
    grid,
    kspace_errors,
    load_slices,
)
from unrolled.methods.classical import CGSense, ZeroFilled


@pytest.fixture(scope="module")
def slices(tiny_root):
    return load_slices(sorted((tiny_root / "test").glob("*.h5")))


def test_grid_varies_one_axis_at_a_time():
    cells = grid(Condition(), {"acceleration": [2, 4, 8], "num_coils": [2, 4]})
    assert [a for a, _ in cells] == ["acceleration"] * 3 + ["num_coils"] * 2
    assert [c.acceleration for _, c in cells] == [2, 4, 8, 4, 4]
    assert [c.num_coils for _, c in cells] == [None, None, None, 2, 4]
    with pytest.raises(ValueError, match="unknown robustness axis"):
        grid(Condition(), {"gamma": [1]})


def test_noise_estimate_matches_added_noise():
    g = torch.Generator().manual_seed(0)
    sigma = 0.3
    k = torch.randn(4, 200, 64, generator=g, dtype=torch.complex64) * sigma
    assert estimate_noise_std(k) == pytest.approx(sigma, rel=0.05)


def test_degrade_keeps_a_clean_reference_of_the_kept_coils(slices):
    raw = slices[0]
    g = torch.Generator().manual_seed(0)
    same, _ = degrade(raw, Condition(), g)
    torch.testing.assert_close(same.target, raw.target, rtol=1e-5, atol=1e-9)  # stored RSS
    noisy, clean = degrade(raw, Condition(noise=4.0, num_coils=2), g)
    assert noisy.kspace.shape[0] == 2
    assert not torch.equal(noisy.kspace, raw.kspace[:2])
    assert clean.shape == (2, *raw.kspace.shape[-2:])  # clean coil k-space of the kept coils
    torch.testing.assert_close(clean, raw.kspace[:2])
    with pytest.raises(ValueError, match="num_coils"):
        degrade(raw, Condition(num_coils=99), g)


def test_indicators_and_trends(slices):
    methods = {"zero_filled": ZeroFilled(), "cg_sense": CGSense()}
    base = evaluate_condition(methods, slices, Condition(center_fraction=0.16))
    # 0.12 <= 1/8: a centre of 0.16 alone would exceed 8x (a configuration error since issue 10)
    hard = evaluate_condition(methods, slices, Condition(acceleration=8, center_fraction=0.12))
    noisy = evaluate_condition(methods, slices, Condition(center_fraction=0.16, noise=8.0))
    # zero-filled returns the measured k-space itself: no data-consistency residual
    assert base["zero_filled"]["dc_residual"] == pytest.approx(0.0, abs=1e-6)
    assert base["cg_sense"]["dc_residual"] > 0
    # CG-SENSE beats zero-filled, and everything degrades with acceleration and noise
    assert base["cg_sense"]["ssim"] > base["zero_filled"]["ssim"]
    for name in methods:
        assert hard[name]["ssim"] < base[name]["ssim"]
        assert noisy[name]["psnr"] < base[name]["psnr"]
    # zero-filled puts nothing where nothing was measured: the indicator's unit, exactly;
    # CG-SENSE recovers part of it, and its sampled error is small but not zero
    assert base["zero_filled"]["hallucination"] == pytest.approx(1.0, abs=1e-6)
    assert base["zero_filled"]["sampled_error"] == pytest.approx(0.0, abs=1e-9)
    assert base["cg_sense"]["hallucination"] < 1
    assert 0 < base["cg_sense"]["sampled_error"] < 0.1


def test_hallucination_flags_invented_energy_and_is_blind_to_hard_dc():
    torch.manual_seed(0)
    k_ref = torch.randn(2, 3, 16, 16, dtype=torch.complex64)
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., ::2] = 1
    y = k_ref * mask
    # hard DC: exact on the samples, half the missing energy recovered
    good = torch.where(mask > 0, y, 0.5 * k_ref)
    stats = kspace_errors(good, y, k_ref, mask)
    assert stats["dc_residual"] == pytest.approx([0.0, 0.0])
    assert stats["hallucination"] == pytest.approx([0.25, 0.25], rel=1e-5)
    # energy that the reference does not have, where nothing was measured: above 1
    invented = torch.where(mask > 0, y, k_ref + 2 * torch.randn_like(k_ref))
    assert min(kspace_errors(invented, y, k_ref, mask)["hallucination"]) > 1


def test_cli_writes_csv_markdown_and_plot(tiny_root, tmp_path):
    exe = Path(sys.executable).parent / "unrolled-robustness"
    proc = subprocess.run(
        [
            str(exe),
            f"input_dir={tiny_root / 'test'}",
            f"hydra.run.dir={tmp_path}",
            "~methods.cg_sense",
            "axes.acceleration=[2,4]",
            "axes.mask_type=[random,poisson]",
            "axes.noise=[0.0,2.0]",
            "axes.center_fraction=[0.16]",
            "axes.num_coils=[2]",
            "base.center_fraction=0.16",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "WANDB_MODE": "disabled"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader(open(tmp_path / "robustness.csv")))
    assert len(rows) == 8 and {r["method"] for r in rows} == {"zero_filled"}
    assert (tmp_path / "robustness.png").stat().st_size > 10_000
    assert "| acceleration | 2 | zero_filled |" in (tmp_path / "robustness.md").read_text()


def test_a_method_that_cannot_run_a_condition_leaves_a_gap(slices):
    class ColumnMasksOnly(torch.nn.Module):
        def forward(self, kspace, mask, num_low_frequencies, keys=None):
            raise ValueError("2D masks are not supported")

    out = evaluate_condition(
        {"zero_filled": ZeroFilled(), "columns_only": ColumnMasksOnly()},
        slices,
        Condition(mask_type="poisson", center_fraction=0.16),
    )
    assert all(math.isnan(v) for v in out["columns_only"].values())
    assert out["zero_filled"]["ssim"] > 0
