"""Run any reconstruction method over a data loader and score it per volume."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

import torch

from unrolled.data.sample import Sample
from unrolled.metrics import ssim_map
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


class VolumeMetricAccumulator:
    """Accumulates per-slice statistics into fastMRI's volume-level metrics exactly.

    PSNR and NMSE of a volume depend on sums of squares over its slices and
    SSIM on the mean of per-slice SSIMs (data range = the volume maximum), so
    slices may arrive in any order and from any batch.
    """

    def __init__(self) -> None:
        self.stats: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
        self.seen: set[tuple[str, int]] = set()
        self.loss_sum = 0.0  # optional: a training loss averaged alongside the metrics
        self.loss_count = 0

    def update(self, fname: str, slice_num: int, pred, target, max_value) -> None:
        key = (fname, int(slice_num))
        if key in self.seen:  # a padded duplicate (e.g. from a distributed sampler)
            return
        self.seen.add(key)
        pred, target = pred.double(), target.double()
        s = self.stats[fname]  # [sse, sum gt^2, pixels, ssim sum, slices, max]
        s[0] += float((pred - target).pow(2).sum())
        s[1] += float(target.pow(2).sum())
        s[2] += target.numel()
        s[3] += float(ssim_map(target[None], pred[None], torch.as_tensor(max_value)).mean())
        s[4] += 1
        s[5] = max(s[5], float(max_value))

    def volumes(self) -> dict[str, dict[str, float]]:
        """Per-volume ``{"psnr", "ssim", "nmse"}``."""
        out = {}
        for fname, (sse, sgt, n, ssim_sum, slices, maxval) in self.stats.items():
            out[fname] = {
                "psnr": 10 * math.log10(maxval**2 / max(sse / n, 1e-30)),
                "ssim": ssim_sum / slices,
                "nmse": sse / max(sgt, 1e-30),
            }
        return out

    def state(self) -> dict:
        """Plain-Python state, for ``all_gather_object`` across processes."""
        return {
            "stats": dict(self.stats),
            "seen": set(self.seen),
            "loss": (self.loss_sum, self.loss_count),
        }

    @classmethod
    def from_state(cls, state: dict) -> VolumeMetricAccumulator:
        acc = cls()
        acc.stats.update(state["stats"])
        acc.seen = set(state["seen"])
        acc.loss_sum, acc.loss_count = state["loss"]
        return acc

    def merge(self, other: VolumeMetricAccumulator) -> None:
        """Add another accumulator's volumes (e.g. from another rank).

        A volume that both scored in full (a copy given to an otherwise idle rank)
        counts once; a volume split between them is an error, since its metrics
        would be wrong.
        """
        self.loss_sum += other.loss_sum
        self.loss_count += other.loss_count
        for fname, s in other.stats.items():
            theirs = {k for k in other.seen if k[0] == fname}
            mine = {k for k in self.seen if k[0] == fname}
            if mine and theirs == mine:
                continue  # the same whole volume, scored twice
            if mine & theirs or (mine and fname in self.stats):
                raise ValueError(f"volume {fname} was split across accumulators")
            self.stats[fname] = list(s)
            self.seen |= theirs


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
