"""Draw every classical baseline on the real 4-coil brain slice: ``docs/real_brain_methods.png``.

Same set-up as ``tests/methods/test_real_brain.py``: the measured coil
images (``../shared/data/brain_t2_4coil``, normalised to max 1), fastMRI's
``EquispacedMaskFractionFunc([0.08], [4])`` (seed 0), reference = RSS of the
fully sampled coil images, each method with the weights of its
``conf/method`` YAML and one shared ESPIRiT estimator. Prints the metrics
table (PSNR / SSIM / NMSE with data range = reference maximum) and the time
of each method.

    .venv/bin/python bench/real_brain_figure.py [--out docs/real_brain_methods.png]
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import time
from pathlib import Path

import numpy as np
import scipy.io
import torch
import yaml

from unrolled.data.sample import Sample
from unrolled.evaluation.compare import format_table, save_comparison_figure
from unrolled.metrics import volume_metrics
from unrolled.models.sensitivity import EspiritSensitivity
from unrolled.physics.coils import rss
from unrolled.physics.fft import fft2c
from unrolled.physics.masks import EquispacedMaskFractionFunc

REPO = Path(__file__).resolve().parents[1]
BRAIN = REPO.parent / "shared" / "data" / "brain_t2_4coil" / "img_brain_4ch.mat"
METHODS = ("zero_filled", "cg_sense", "cs_wavelet", "cs_tv")


def load_sample(path: Path = BRAIN, seed: int = 0) -> tuple[Sample, torch.Tensor]:
    """The brain slice as a one-slice batch, and its ``(C, H, W)`` coil images."""
    img = scipy.io.loadmat(path)["img"].transpose(2, 0, 1)  # (C, H, W)
    coils = torch.from_numpy((img / np.abs(img).max()).astype(np.complex64))
    full = fft2c(coils)[None]  # (1, C, H, W)
    mask, nlf = EquispacedMaskFractionFunc([0.08], [4], seed=seed)(full.shape)  # (1, W)
    mask = mask.reshape(1, 1, 1, -1).expand(1, 1, *full.shape[-2:]).contiguous()
    target = rss(coils, dim=0)[None]  # (1, H, W)
    sample = Sample(
        kspace=full * mask,
        mask=mask,
        target=target,
        max_value=target.amax(dim=(1, 2)),
        num_low_frequencies=torch.tensor([nlf]),
        crop_size=torch.tensor([list(target.shape[-2:])]),
        slice_num=torch.tensor([0]),
        fname=("brain_t2_4coil (4x equispaced)",),
    )
    return sample, coils


def _instantiate(cfg: dict):
    """Call a plain config's ``_target_`` with its (recursively instantiated) arguments."""
    args = {
        k: _instantiate(v) if isinstance(v, dict) and "_target_" in v else v for k, v in cfg.items()
    }
    module, cls = args.pop("_target_").rsplit(".", 1)
    return getattr(importlib.import_module(module), cls)(**args)


def build(name: str, espirit: EspiritSensitivity, fixed_weight: bool = False):
    """The method of ``conf/method/<name>.yaml``, sharing ``espirit`` where it takes one.

    ``fixed_weight`` drops a per-scan weight selection (``weight_selection``, k-space
    cross-validation: the default of ``cs_tv``) so the YAML's fixed ``lam`` is used.
    """
    cfg = yaml.safe_load((REPO / "conf" / "method" / f"{name}.yaml").read_text())
    if fixed_weight and "weight_selection" in cfg:
        cfg["weight_selection"] = None
    module, cls_name = cfg["_target_"].rsplit(".", 1)
    if (
        "espirit"
        in inspect.signature(getattr(importlib.import_module(module), cls_name)).parameters
    ):
        cfg["espirit"] = espirit
    return _instantiate(cfg)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "real_brain_methods.png"))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    batch, _ = load_sample()
    espirit = EspiritSensitivity()
    methods = {name: build(name, espirit) for name in METHODS}
    results = {}
    for name, method in methods.items():
        t0 = time.perf_counter()
        out = method(batch.kspace, batch.mask, batch.num_low_frequencies, keys=[("brain", 0)])
        seconds = time.perf_counter() - t0
        results[name] = volume_metrics(batch.target, out.image, batch.max_value[0])
        print(f"{name}: {seconds:.2f} s (ESPIRiT included on the first method that uses it)")
    print(format_table(results, "Real 4-coil brain, 4x equispaced (centre 0.08)"))
    path = save_comparison_figure(methods, batch, Path(args.out))
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
