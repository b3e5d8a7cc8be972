"""Training losses on magnitude images: fastMRI's SSIM mixed with L1."""

from __future__ import annotations

import torch
from torch import nn

from unrolled.metrics import ssim_map


class SSIML1Loss(nn.Module):
    """``w_ssim * (1 - SSIM) + w_l1 * mean|pred - target| / max_value``.

    SSIM follows fastMRI's definition (7x7 uniform window, K1 = 0.01,
    K2 = 0.03, data range = the volume maximum of each slice's reference), in
    float32. The L1 term is divided by the same maximum so that both terms are
    scale free and the weights mean what they say.

    Args:
        ssim_weight: weight of ``1 - SSIM``.
        l1_weight: weight of the normalised L1 term.
        win_size: SSIM window side.

    Raises:
        ValueError: if a weight is negative or both are zero.
    """

    def __init__(self, ssim_weight: float = 0.84, l1_weight: float = 0.16, win_size: int = 7):
        super().__init__()
        if ssim_weight < 0 or l1_weight < 0 or ssim_weight + l1_weight == 0:
            raise ValueError("loss weights must be non-negative and not both zero")
        self.ssim_weight = ssim_weight
        self.l1_weight = l1_weight
        self.win_size = win_size

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, max_value: torch.Tensor
    ) -> torch.Tensor:
        """``pred``, ``target``: ``(B, h, w)``; ``max_value``: ``(B,)``. Returns a scalar."""
        pred, target = pred.float(), target.float()
        loss = pred.new_zeros(())
        if self.ssim_weight:
            s = ssim_map(target, pred, max_value.float(), self.win_size).mean()
            loss = loss + self.ssim_weight * (1 - s)
        if self.l1_weight:
            l1 = ((pred - target).abs().flatten(1).mean(1) / max_value.float()).mean()
            loss = loss + self.l1_weight * l1
        return loss


class KSpaceL1L2Loss(nn.Module):
    """SSDU's normalised L1-L2 loss on a subset of coil k-space.

    ``||M (p - y)||_2 / ||M y||_2 + ||M (p - y)||_1 / ||M y||_1`` per sample
    (complex magnitudes; the L1 norm sums ``|.|``), averaged over the batch.
    Both terms are scale free, so slices of any intensity weigh alike.

    Args:
        l2_weight: weight of the normalised L2 term.
        l1_weight: weight of the normalised L1 term.

    Raises:
        ValueError: if a weight is negative or both are zero.
    """

    def __init__(self, l2_weight: float = 1.0, l1_weight: float = 1.0) -> None:
        super().__init__()
        if l2_weight < 0 or l1_weight < 0 or l2_weight + l1_weight == 0:
            raise ValueError("loss weights must be non-negative and not both zero")
        self.l2_weight = l2_weight
        self.l1_weight = l1_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``pred``, ``target``: coil k-space ``(B, C, H, W)`` complex; ``mask``: ``(B, 1, H, W)``.

        Returns a scalar.
        """
        pred = pred.to(torch.complex64)
        target = target.to(torch.complex64)
        diff = ((pred - target) * mask).abs().flatten(1)  # (B, N)
        ref = (target * mask).abs().flatten(1)
        tiny = torch.finfo(torch.float32).tiny
        loss = pred.real.new_zeros(())
        if self.l2_weight:
            l2 = diff.norm(dim=1) / ref.norm(dim=1).clamp_min(tiny)
            loss = loss + self.l2_weight * l2.mean()
        if self.l1_weight:
            l1 = diff.sum(dim=1) / ref.sum(dim=1).clamp_min(tiny)
            loss = loss + self.l1_weight * l1.mean()
        return loss
