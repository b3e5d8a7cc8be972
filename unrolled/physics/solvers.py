"""Batched conjugate gradient for Hermitian positive-definite systems.

Solves ``(A^H A + lambda I) x = b`` (or any HPD ``normal(x) = b``) for a batch
of independent problems at once. Every step is a plain tensor operation, so
the solution is differentiable by autograd through the iterations (MoDL's
data-consistency layer), including with respect to ``lambda``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample inner product ``<a, b> = sum conj(a) b`` over all but dim 0, ``(B,)``."""
    return (a.conj() * b).flatten(1).sum(dim=1)


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def conjugate_gradient(
    normal: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    x0: torch.Tensor | None = None,
    max_iter: int = 10,
    tol: float = 1e-6,
) -> torch.Tensor:
    """Batched conjugate gradient.

    Args:
        normal: the HPD operator ``x -> (A^H A + lambda I) x``, acting on
            tensors of the shape of ``b``.
        b: right-hand side, ``(B, ...)`` complex or real.
        x0: initial guess (zeros when ``None``), shape of ``b``.
        max_iter: maximum number of iterations.
        tol: stop when every sample's relative residual ``||r|| / ||b||`` is
            below ``tol``. Converged samples stop updating while others go on.

    Returns:
        The approximate solution, shape of ``b``.
    """
    x = torch.zeros_like(b) if x0 is None else x0
    r = b - normal(x) if x0 is not None else b.clone()
    p = r
    rs_old = _dot(r, r).real  # (B,)
    b_norm2 = _dot(b, b).real.clamp_min(torch.finfo(rs_old.dtype).tiny)
    for _ in range(max_iter):
        active = rs_old > (tol**2) * b_norm2  # (B,)
        if not bool(active.any()):
            break
        ap = normal(p)
        p_ap = _dot(p, ap).real
        alpha = torch.where(active, rs_old / torch.where(active, p_ap, 1.0), 0.0)
        x = x + _bcast(alpha, x) * p
        r = r - _bcast(alpha, r) * ap
        rs_new = _dot(r, r).real
        beta = torch.where(active, rs_new / torch.where(active, rs_old, 1.0), 0.0)
        p = r + _bcast(beta, p) * p
        rs_old = torch.where(active, rs_new, rs_old)
    return x
