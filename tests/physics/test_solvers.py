"""Batched conjugate gradient against a direct solve."""

import torch
from helpers.common import crandn

from unrolled.physics.operators import SenseOp
from unrolled.physics.solvers import conjugate_gradient


def test_cg_matches_direct_solve_on_sense_normal_equations():
    b, c, h, w, lam = 2, 3, 6, 5, 0.05
    maps = crandn(b, c, h, w, seed=1)
    mask = (torch.rand(b, 1, 1, w, generator=torch.Generator().manual_seed(2)) > 0.5).double()
    op = SenseOp(maps, mask)
    rhs = crandn(b, h, w, seed=3)
    x = conjugate_gradient(lambda v: op.normal(v) + lam * v, rhs, max_iter=200, tol=1e-12)
    for i in range(b):
        # Dense matrix of the normal operator for sample i, column by column.
        n = h * w
        eye = torch.eye(n, dtype=torch.complex128).reshape(n, h, w)
        sub = SenseOp(maps[i : i + 1].expand(n, -1, -1, -1), mask[i : i + 1])
        mat = (sub.normal(eye) + lam * eye).reshape(n, n).T
        direct = torch.linalg.solve(mat, rhs[i].reshape(n)).reshape(h, w)
        torch.testing.assert_close(x[i], direct, atol=1e-9, rtol=1e-9)


def test_cg_real_spd_and_warm_start():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(3, 8, 8, generator=g, dtype=torch.float64)
    spd = m @ m.transpose(1, 2) + 0.5 * torch.eye(8, dtype=torch.float64)
    rhs = torch.randn(3, 8, generator=g, dtype=torch.float64)

    def normal(v):
        return (spd @ v.unsqueeze(-1)).squeeze(-1)

    x = conjugate_gradient(normal, rhs, max_iter=100, tol=1e-12)
    torch.testing.assert_close(x, torch.linalg.solve(spd, rhs))
    x_warm = conjugate_gradient(normal, rhs, x0=x, max_iter=3, tol=1e-12)
    torch.testing.assert_close(x_warm, x)


def test_cg_is_differentiable_in_lambda():
    maps = crandn(1, 2, 4, 4, seed=4)
    op = SenseOp(maps, torch.ones(1, 1, 1, 1, dtype=torch.float64))
    rhs = crandn(1, 4, 4, seed=5)
    lam = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)

    def f(lam_):
        return conjugate_gradient(lambda v: op.normal(v) + lam_ * v, rhs, max_iter=50, tol=0)

    x = f(lam)
    x.abs().pow(2).sum().backward()
    eps = 1e-6
    fd = (f(lam.detach() + eps).abs().pow(2).sum() - f(lam.detach() - eps).abs().pow(2).sum()) / (
        2 * eps
    )
    torch.testing.assert_close(lam.grad, fd, rtol=1e-5, atol=1e-8)
