"""Batched iterative solvers: conjugate gradient, FISTA, Condat-Vu primal-dual.

All three act on a batch ``(B, ...)`` of independent problems at once; the
operators are passed in as callables, so the solvers hold no state and no
parameters.

* :func:`conjugate_gradient` solves ``(A^H A + lambda I) x = b`` (or any HPD
  ``normal(x) = b``). Every step is a plain tensor operation, so the solution is
  differentiable by autograd through the iterations (MoDL's data-consistency
  layer), including with respect to ``lambda``.
* :func:`fista` minimises ``f(x) + g(x)`` with ``f`` smooth (``L``-Lipschitz
  gradient) and ``g`` with an exact proximal operator (Beck & Teboulle 2009,
  step ``<= 1/L``), with O'Donoghue & Candes' gradient restart (2015).
* :func:`condat_vu` minimises ``f(x) + lam ||D x||`` (e.g. total variation,
  ``D`` the finite differences) through the dual ball ``|p| <= lam``, onto which
  projecting is cheap, by the Condat-Vu iteration
  (Condat, JOTA 158:460, 2013): ``x+ = x - tau (grad f(x) + D^H p)``,
  ``p+ = proj(p + sigma D(2 x+ - x))``, convergent for
  ``1/tau - sigma ||D||^2 > L/2``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Callback = Callable[[torch.Tensor], None]


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample inner product ``<a, b> = sum conj(a) b`` over all but dim 0, ``(B,)``."""
    return (a.conj() * b).flatten(1).sum(dim=1)


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-sample ``(B,)`` -> ``(B, 1, ..., 1)`` broadcasting against ``like``."""
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


def fista(
    grad: Callable[[torch.Tensor], torch.Tensor],
    prox: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    step: torch.Tensor,
    num_iter: int,
    restart: bool = True,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Batched FISTA with optional gradient-based adaptive restart.

    Args:
        grad: gradient of the smooth term, ``(B, ...)`` -> ``(B, ...)``.
        prox: ``prox(v, step)`` of ``step * g``, with ``step`` ``(B,)``.
        x0: initial point ``(B, ...)``.
        step: per-sample step ``(B,)``, at most ``1 / L``.
        num_iter: iterations (one ``grad`` and one ``prox`` each).
        restart: reset a sample's momentum when it points uphill
            (``Re <z - x+, x+ - x> > 0``; O'Donoghue & Candes 2015).
        callback: called with every iterate ``x`` (after the update).

    Returns:
        The last iterate, shape of ``x0``.
    """
    x, z = x0, x0
    t = torch.ones(x0.shape[0], dtype=step.dtype, device=x0.device)  # (B,)
    for _ in range(num_iter):
        x_new = prox(z - _bcast(step, z) * grad(z), step)
        if restart:
            uphill = ((z - x_new).conj() * (x_new - x)).real.flatten(1).sum(dim=1) > 0
            t = torch.where(uphill, torch.ones_like(t), t)
        t_new = (1 + torch.sqrt(1 + 4 * t * t)) / 2
        z = x_new + _bcast((t - 1) / t_new, x_new) * (x_new - x)
        x, t = x_new, t_new
        if callback is not None:
            callback(x)
    return x


def condat_vu(
    grad: Callable[[torch.Tensor], torch.Tensor],
    d: Callable[[torch.Tensor], torch.Tensor],
    d_adjoint: Callable[[torch.Tensor], torch.Tensor],
    project: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    tau: torch.Tensor,
    sigma: float,
    num_iter: int,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Batched Condat-Vu primal-dual iteration for ``min_x f(x) + lam ||D x||``.

    ``x+ = x - tau (grad(x) + D^H p)``, ``p+ = project(p + sigma D(2 x+ - x))``,
    from ``x0`` and ``p = 0``. Converges when ``1/tau - sigma ||D||^2 > L/2``
    (``L`` the Lipschitz constant of ``grad``); the caller chooses the steps.

    Args:
        grad: gradient of the smooth term, ``(B, ...)`` -> ``(B, ...)``.
        d: the linear operator ``D``, primal ``(B, ...)`` -> dual ``(B, ...)``.
        d_adjoint: its adjoint ``D^H``, dual -> primal.
        project: projection onto the dual ball (radius ``lam``: the weight of ``||D x||``).
        x0: initial primal point ``(B, ...)``.
        tau: per-sample primal step ``(B,)``.
        sigma: dual step.
        num_iter: iterations (one ``grad``, one ``D`` and one ``D^H`` each).
        callback: called with every primal iterate ``x`` (after the update).

    Returns:
        The last primal iterate, shape of ``x0``.
    """
    tau = _bcast(tau, x0)  # (B, 1, ..., 1)
    x = x0
    p = torch.zeros_like(d(x0))
    for _ in range(num_iter):
        x_new = x - tau * (grad(x) + d_adjoint(p))
        p = project(p + sigma * d(2 * x_new - x))
        x = x_new
        if callback is not None:
            callback(x)
    return x
