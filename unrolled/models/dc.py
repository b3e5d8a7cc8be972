"""Data-consistency (DC) layers: one interface, three ways to trust the measurements.

Every layer maps the denoised image of a cascade back to coil k-space while
enforcing agreement with the measured samples ``y``:

``dc(z, y, maps, mask) -> k``  with  ``z`` ``(B, H, W)`` complex (denoiser output),
``y`` ``(B, C, H, W)`` measured k-space (zero where not sampled), ``maps``
``(B, C, H, W)``, ``mask`` broadcastable to ``(B, 1, H, W)``, and ``k``
``(B, C, H, W)`` the cascade's coil k-space.

- :class:`HardDC`: exact projection in coil k-space, measured samples replace
  predicted ones (noise-free data consistency).
- :class:`ProximalDC`: the exact proximal step of MoDL, solving
  ``(A^H A + lambda I) x = A^H y + lambda z`` by conjugate gradient.
- :class:`GradientDC`: one gradient step on the data term from ``z``, the soft
  DC of E2E-VarNet, with a learnable step size.

The physics runs in float32 even under mixed precision. Only the scalars
``lambda`` and the step size are learnable (stored as log for positivity).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from unrolled.physics.operators import SenseOp, coil_kspace
from unrolled.physics.solvers import conjugate_gradient


def _physics_dtype(*tensors: torch.Tensor) -> list[torch.Tensor]:
    out = []
    for t in tensors:
        if t.is_complex():
            out.append(t.to(torch.complex64) if t.dtype == torch.complex32 else t)
        else:
            out.append(t.float() if t.dtype in (torch.float16, torch.bfloat16) else t)
    return out


class DataConsistency(nn.Module):
    """Base class: ``forward(z, y, maps, mask) -> coil k-space (B, C, H, W)``."""

    def forward(
        self, z: torch.Tensor, y: torch.Tensor, maps: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        with torch.autocast(device_type=z.device.type, enabled=False):
            z, y, maps, mask = _physics_dtype(z, y, maps, mask)
            return self._dc(z, y, maps, mask)

    def _dc(self, z, y, maps, mask):  # pragma: no cover - abstract
        raise NotImplementedError


class HardDC(DataConsistency):
    """``k = M y + (1 - M) F S z``: after it, ``k`` equals ``y`` wherever ``M = 1``."""

    def _dc(self, z, y, maps, mask):
        k = coil_kspace(z, maps)  # (B, C, H, W)
        return torch.where(mask > 0, y, k)


class ProximalDC(DataConsistency):
    """MoDL's proximal step: ``argmin_x ||A x - y||^2 + lambda ||x - z||^2`` by CG.

    Args:
        init_lambda: initial regularisation weight (learnable, positive).
        learnable: whether ``lambda`` is trained.
        max_iter: conjugate-gradient iterations.
        tol: relative residual at which CG stops early.
    """

    def __init__(
        self,
        init_lambda: float = 0.05,
        learnable: bool = True,
        max_iter: int = 10,
        tol: float = 1e-6,
    ) -> None:
        super().__init__()
        self.log_lambda = nn.Parameter(torch.tensor(math.log(init_lambda)), requires_grad=learnable)
        self.max_iter = max_iter
        self.tol = tol

    @property
    def lam(self) -> torch.Tensor:
        return self.log_lambda.exp()

    def _dc(self, z, y, maps, mask):
        op = SenseOp(maps, mask)
        lam = self.lam
        rhs = op.H(y) + lam * z  # (B, H, W)
        x = conjugate_gradient(
            lambda v: op.normal(v) + lam * v, rhs, x0=z, max_iter=self.max_iter, tol=self.tol
        )
        return coil_kspace(x, maps)


class GradientDC(DataConsistency):
    """Soft DC: ``k = F S z - eta M (F S z - y)`` with a learnable step ``eta``.

    With ``eta = 1`` and a binary mask this is the hard projection; smaller
    steps trust noisy measurements less.

    Args:
        init_step: initial step size (learnable, positive).
        learnable: whether the step size is trained.
    """

    def __init__(self, init_step: float = 0.5, learnable: bool = True) -> None:
        super().__init__()
        self.log_step = nn.Parameter(torch.tensor(math.log(init_step)), requires_grad=learnable)

    @property
    def step(self) -> torch.Tensor:
        return self.log_step.exp()

    def _dc(self, z, y, maps, mask):
        k = coil_kspace(z, maps)  # (B, C, H, W)
        return k - self.step * mask * (k - y)
