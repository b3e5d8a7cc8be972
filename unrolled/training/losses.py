"""Training losses on magnitude images: fastMRI's SSIM mixed with L1."""

from __future__ import annotations

import torch
from torch import nn

from unrolled.evaluation.metrics import ssim_map


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
