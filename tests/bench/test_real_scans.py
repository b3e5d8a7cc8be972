"""``bench/real_scans.py`` measures the methods as users run them, with one or two map sets.

Its tables (``bench/results/real_scans*.md`` and issue 16's per-scan table in
``bench/README.md``) put the fixed-weight rows next to zero-shot fits scored by another
script, so the fixed-weight image must be exactly what ``conf/method/cg_sense.yaml`` returns
with the same maps, and the scores must cover the whole image of a scan whose readout is not
oversampled (the folded brain, 256 x 192, lost 64 of its rows to fastMRI's crop before).
"""

import sys
from pathlib import Path

import h5py
import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def real_scans(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    sys.modules.pop("real_scans", None)
    import real_scans

    return real_scans


@pytest.fixture
def folded_scan(tiny_root):
    """A tiny synthetic slice folded to 75 % of its phase-encoding FOV: (C, H, W) k-space."""
    from unrolled.physics.fft import fft2c, ifft2c
    from unrolled.physics.fov import fold_fov

    path = sorted((tiny_root / "train").glob("*.h5"))[0]
    with h5py.File(path) as f:
        coils = ifft2c(torch.from_numpy(f["kspace"][0]))
    folded = fold_fov(coils, 0.75)
    return fft2c(folded / folded.abs().max())


@pytest.mark.usefixtures("one_thread_test")
@pytest.mark.parametrize("num_maps", ["1", "2"])
def test_fixed_weight_rows_equal_the_configured_method(real_scans, folded_scan, num_maps):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from unrolled.methods.weight_selection import KSpaceCrossValidation
    from unrolled.physics.coils import rss
    from unrolled.physics.fft import ifft2c

    reference = rss(ifft2c(folded_scan), dim=0)[None]
    selector = KSpaceCrossValidation(grid=(1e-3, 1e-2, 1e-1), refine_steps=0, num_folds=1)
    case = real_scans.run_case(folded_scan, reference, 4, ["cg_sense"], selector, {}, num_maps)
    assert case["map_sets"] == int(num_maps)
    assert case["auto_map_sets"] in (1, 2)

    cfg = OmegaConf.load(real_scans.CONF / "cg_sense.yaml")
    cfg.espirit = {"_target_": "unrolled.models.sensitivity.EspiritSensitivity"}
    cfg.espirit.num_maps = int(num_maps)
    method = instantiate(cfg)
    kspace, mask, nlf = real_scans.undersample(folded_scan, 4)
    expected = real_scans.score(reference, method(kspace, mask, nlf).image)
    fixed = case["cg_sense"]["fixed"]
    assert fixed["weight"] == float(cfg.lam)
    assert fixed["psnr"] == pytest.approx(expected["psnr"], abs=1e-3)
    assert fixed["ssim"] == pytest.approx(expected["ssim"], abs=1e-4)
    # the oracle is the best of the weights the selection tried, all reconstructed in full
    sweep = case["cg_sense"]["sweep"]
    assert case["cg_sense"]["oracle"]["psnr"] == max(r["psnr"] for r in sweep.values())
    assert case["cg_sense"]["cv"]["weight"] in sweep


def test_scores_cover_every_row_of_a_scan_without_readout_oversampling(real_scans):
    from unrolled.evaluation.scoring import score_volume

    reference = torch.rand(1, 32, 16, generator=torch.Generator().manual_seed(0))
    pred = reference.clone()
    pred[0, :4] = 0  # an error in rows that fastMRI's crop to (16, 16) drops
    assert score_volume(reference, pred)["nmse"] == 0  # what the script used before
    assert real_scans.score(reference, pred)["nmse"] > 0.05
