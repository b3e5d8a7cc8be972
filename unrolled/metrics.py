"""Image-quality metrics, identical to fastMRI's ``evaluate.py``.

fastMRI scores a volume ``(slices, h, w)`` against its reference with the
volume maximum as data range:

- NMSE: ``||gt - pred||^2 / ||gt||^2`` over the volume.
- PSNR: ``10 log10(max(gt)^2 / mean((gt - pred)^2))`` over the volume.
- SSIM: mean over slices of the 7x7 uniform-window SSIM (sample covariance,
  K1 = 0.01, K2 = 0.03, valid region only), data range ``max(gt)``.

These are torch re-implementations (so they run on the GPU, in float64 by
default) that agree with scikit-image / fastMRI to float precision; the test
suite checks that against the ``fastmri`` package.

:class:`VolumeMetricAccumulator` gives the same volume metrics from slices
that arrive one at a time, in any order and from any batch or process.
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch
import torch.nn.functional as F


def nmse(gt: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """Normalised mean squared error over the whole volume, a scalar."""
    gt, pred = gt.double(), pred.double()
    return (gt - pred).pow(2).sum() / gt.pow(2).sum()


def psnr(
    gt: torch.Tensor, pred: torch.Tensor, maxval: float | torch.Tensor | None = None
) -> torch.Tensor:
    """PSNR in dB over the volume, data range ``maxval`` (default ``gt.max()``)."""
    gt, pred = gt.double(), pred.double()
    maxval = gt.max() if maxval is None else torch.as_tensor(maxval, dtype=torch.float64)
    mse = (gt - pred).pow(2).mean()
    return 10 * torch.log10(maxval**2 / mse)


def ssim_map(
    gt: torch.Tensor,
    pred: torch.Tensor,
    data_range: torch.Tensor,
    win_size: int = 7,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Per-pixel SSIM over the valid region, as scikit-image computes it.

    Args:
        gt: reference images ``(N, h, w)``.
        pred: images to score ``(N, h, w)``.
        data_range: ``(N,)`` or scalar data range per image.
        win_size: side of the uniform window.

    Returns:
        SSIM map ``(N, h - win_size + 1, w - win_size + 1)``.
    """
    x, y = gt.unsqueeze(1), pred.unsqueeze(1)  # (N, 1, h, w)
    w = torch.ones(1, 1, win_size, win_size, dtype=x.dtype, device=x.device) / win_size**2
    np_ = win_size**2
    cov_norm = np_ / (np_ - 1)  # sample covariance, as skimage's default
    ux, uy = F.conv2d(x, w), F.conv2d(y, w)
    uxx, uyy, uxy = F.conv2d(x * x, w), F.conv2d(y * y, w), F.conv2d(x * y, w)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    dr = torch.as_tensor(data_range, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
    c1, c2 = (k1 * dr) ** 2, (k2 * dr) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return s.squeeze(1)


def ssim(
    gt: torch.Tensor, pred: torch.Tensor, maxval: float | torch.Tensor | None = None
) -> torch.Tensor:
    """fastMRI's volume SSIM: mean over slices of the 7x7 SSIM, data range ``maxval``.

    Args:
        gt: reference volume ``(slices, h, w)`` (a single ``(h, w)`` image works too).
        pred: reconstruction, same shape.
        maxval: data range (default: the maximum of ``gt``, as fastMRI).
    """
    gt, pred = gt.double(), pred.double()
    if gt.dim() == 2:
        gt, pred = gt[None], pred[None]
    maxval = gt.max() if maxval is None else torch.as_tensor(maxval, dtype=torch.float64)
    return ssim_map(gt, pred, maxval).mean(dim=(1, 2)).mean()


def volume_metrics(
    gt: torch.Tensor, pred: torch.Tensor, maxval: float | torch.Tensor | None = None
) -> dict[str, float]:
    """``{"nmse", "psnr", "ssim"}`` of one volume, as Python floats."""
    return {
        "nmse": float(nmse(gt, pred)),
        "psnr": float(psnr(gt, pred, maxval)),
        "ssim": float(ssim(gt, pred, maxval)),
    }


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

    def update(
        self,
        fname: str,
        slice_num: int,
        pred: torch.Tensor,
        target: torch.Tensor,
        max_value: float | torch.Tensor,
    ) -> None:
        """Add one slice: ``pred`` and ``target`` ``(h, w)`` real magnitude images, and the
        volume maximum ``max_value`` (fastMRI's data range). A slice already seen is ignored."""
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

    def state(self) -> dict[str, object]:
        """Plain-Python state, for ``all_gather_object`` across processes."""
        return {
            "stats": dict(self.stats),
            "seen": set(self.seen),
            "loss": (self.loss_sum, self.loss_count),
        }

    @classmethod
    def from_state(cls, state: dict[str, object]) -> VolumeMetricAccumulator:
        """The accumulator whose :meth:`state` was ``state``."""
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

        Raises:
            ValueError: a volume's slices are split between ``self`` and ``other``.
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
