"""Every classical baseline on the real, measured 4-coil brain slice (team data).

Retrospective 4x undersampling with fastMRI's ``EquispacedMaskFractionFunc``
(centre fraction 0.08, seeded); the reference is the RSS of the fully sampled
coil images. Each baseline runs with the weights of its ``conf/method`` YAML,
so this also checks that the weights tuned on the synthetic embedded split
carry over to measured data. ``bench/real_brain_figure.py`` draws the same
reconstructions into ``docs/real_brain_methods.png``.
"""

from pathlib import Path

import pytest
import torch

from unrolled.metrics import psnr, ssim
from unrolled.models.sensitivity import EspiritSensitivity
from unrolled.physics.coils import rss
from unrolled.physics.fft import fft2c
from unrolled.physics.masks import EquispacedMaskFractionFunc

CONF = Path(__file__).resolve().parents[2] / "conf" / "method"
#: The classical baselines: every conf/method option that needs no checkpoint.
CLASSICAL = sorted(p.stem for p in CONF.glob("*.yaml") if "checkpoint" not in p.read_text())
ITERATIVE = ("cg_sense", "cs_wavelet", "cs_tv")


pytestmark = pytest.mark.usefixtures("one_thread_test")


def undersample(coil_images: torch.Tensor, seed: int = 0):
    """``(C, H, W)`` coil images -> ``(kspace (1, C, H, W), mask (1, 1, H, W), nlf (1,))``."""
    full = fft2c(coil_images)[None]  # (1, C, H, W)
    mask, nlf = EquispacedMaskFractionFunc([0.08], [4], seed=seed)(full.shape)  # (1, W)
    mask = mask.reshape(1, 1, 1, -1).expand(1, 1, *full.shape[-2:]).contiguous()
    return full * mask, mask, torch.tensor([nlf])


def build_method(name: str, espirit: EspiritSensitivity):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    return instantiate(cfg, espirit=espirit) if "espirit" in _params(cfg) else instantiate(cfg)


def _params(cfg) -> set[str]:
    import importlib
    import inspect

    module, cls = cfg._target_.rsplit(".", 1)
    return set(inspect.signature(getattr(importlib.import_module(module), cls)).parameters)


def test_every_classical_baseline_on_the_real_brain(real_brain_images):
    assert {"zero_filled", *ITERATIVE} <= set(CLASSICAL)
    kspace, mask, nlf = undersample(real_brain_images)
    assert 3.5 < mask.numel() / mask.sum() < 4.5
    reference = rss(real_brain_images, dim=0)  # (H, W)
    maxval = reference.max()
    espirit = EspiritSensitivity()  # maps computed once, shared by every method
    scores = {}
    for name in CLASSICAL:
        out = build_method(name, espirit)(kspace, mask, nlf, keys=[("brain", 0)])
        image = out.image[0]
        assert image.shape == reference.shape and bool(torch.isfinite(image).all()), name
        scores[name] = (
            float(psnr(reference, image, maxval)),
            float(ssim(reference, image, maxval)),
        )
    table = "\n".join(f"{n:12s} PSNR {p:6.2f} dB  SSIM {s:.4f}" for n, (p, s) in scores.items())
    print(table)
    zf_psnr, zf_ssim = scores["zero_filled"]
    for name in ITERATIVE:
        p, s = scores[name]
        assert p > zf_psnr + 1.0 and s > zf_ssim + 0.02, (
            f"{name} does not beat zero-filled:\n{table}"
        )
