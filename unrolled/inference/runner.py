"""Run any reconstruction method over a data loader and score it per volume."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from unrolled.data.sample import Sample
from unrolled.metrics import VolumeMetricAccumulator
from unrolled.models.reconstructor import Reconstruction, Reconstructor
from unrolled.physics.coils import center_crop


def reconstruct(
    net: Reconstructor, batch: Sample, return_cascades: bool = False
) -> tuple[torch.Tensor, Reconstruction]:
    """Run any method on a batch: ``(image cropped to the recon size (B, h, w), output)``."""
    keys = [(f, int(s)) for f, s in zip(batch.fname, batch.slice_num, strict=True)]
    out = net(
        batch.kspace,
        batch.mask,
        batch.num_low_frequencies,
        keys=keys,
        return_cascades=return_cascades,
    )
    h, w = (int(v) for v in batch.crop_size[0])
    return center_crop(out.image, (h, w)), out


def summarise(volumes: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over volumes."""
    if not volumes:
        return {}
    keys = next(iter(volumes.values())).keys()
    return {k: sum(v[k] for v in volumes.values()) / len(volumes) for k in keys}


@torch.no_grad()
def evaluate_method(
    method: Reconstructor, batches: Iterable[Sample], device: str | torch.device = "cpu"
) -> dict[str, dict[str, float]]:
    """Per-volume ``{"psnr", "ssim", "nmse"}`` of ``method`` over ``batches`` (with targets)."""
    method = method.to(device).eval()
    acc = VolumeMetricAccumulator()
    for batch in batches:
        batch = batch.to(device)
        pred, _ = reconstruct(method, batch)
        for i, fname in enumerate(batch.fname):
            acc.update(fname, batch.slice_num[i], pred[i], batch.target[i], batch.max_value[i])
    return acc.volumes()
