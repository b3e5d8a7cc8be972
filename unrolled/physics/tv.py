"""Finite differences and isotropic total variation of complex images.

``D`` takes forward differences along both image axes with Neumann
boundaries (the difference across the last row/column is 0), as in
Chambolle (JMIV 20:89-97, 2004): ``(B, H, W) -> (B, 2, H, W)`` with the
vertical (``H``) difference first. Its adjoint is minus the matching
divergence, and ``||D||^2 <= 8``. Isotropic TV of a complex image is
``sum_r sqrt(|D_y x(r)|^2 + |D_x x(r)|^2)`` (complex modulus).
"""

from __future__ import annotations

import torch

from unrolled.physics.operators import LinearOperator

#: Upper bound of ``||D||^2`` (the largest eigenvalue of ``D^H D`` in 2D).
GRAD_NORM_SQ = 8.0


class FiniteDifferenceOp(LinearOperator):
    """Forward differences ``D``: images ``(B, H, W)`` -> gradients ``(B, 2, H, W)``."""

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.zeros(x.shape[0], 2, *x.shape[-2:], dtype=x.dtype, device=x.device)
        g[:, 0, :-1] = x[:, 1:] - x[:, :-1]  # along H
        g[:, 1, :, :-1] = x[:, :, 1:] - x[:, :, :-1]  # along W
        return g

    def _adjoint(self, g: torch.Tensor) -> torch.Tensor:
        gy, gx = g[:, 0], g[:, 1]  # (B, H, W) each; last row / column are not used
        out = torch.zeros_like(gy)
        out[:, :-1] -= gy[:, :-1]
        out[:, 1:] += gy[:, :-1]
        out[:, :, :-1] -= gx[:, :, :-1]
        out[:, :, 1:] += gx[:, :, :-1]
        return out


def tv_norm(x: torch.Tensor) -> torch.Tensor:
    """Isotropic total variation per image, ``(B, H, W)`` -> ``(B,)`` real."""
    return FiniteDifferenceOp()(x).abs().pow(2).sum(dim=1).sqrt().flatten(1).sum(dim=1)


def project_l2_ball(g: torch.Tensor, radius: float | torch.Tensor) -> torch.Tensor:
    """Project each pixel's gradient (axis 1) onto the ball of ``radius``: the dual of TV.

    Args:
        g: gradients ``(B, 2, H, W)``, complex or real.
        radius: scalar or broadcastable to ``(B, 1, H, W)`` (e.g. ``(B, 1, 1, 1)``).
    """
    norm = g.abs().pow(2).sum(dim=1, keepdim=True).sqrt()  # (B, 1, H, W)
    return g * torch.clamp(radius / norm.clamp_min(torch.finfo(norm.dtype).tiny), max=1.0)
