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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nmse(gt: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """Normalised mean squared error over the whole volume, a scalar."""
    gt, pred = gt.double(), pred.double()
    return (gt - pred).pow(2).sum() / gt.pow(2).sum()


def psnr(gt: torch.Tensor, pred: torch.Tensor, maxval: float | torch.Tensor | None = None):
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


def ssim(gt: torch.Tensor, pred: torch.Tensor, maxval: float | torch.Tensor | None = None):
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


def volume_metrics(gt: torch.Tensor, pred: torch.Tensor, maxval=None) -> dict[str, float]:
    """``{"nmse", "psnr", "ssim"}`` of one volume, as Python floats."""
    return {
        "nmse": float(nmse(gt, pred)),
        "psnr": float(psnr(gt, pred, maxval)),
        "ssim": float(ssim(gt, pred, maxval)),
    }
