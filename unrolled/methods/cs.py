"""Compressed-sensing baselines: L1-wavelet SENSE (FISTA) and total-variation SENSE (primal-dual).

Both solve, per slice and batched over ``(B, H, W)``,

    min_x  1/2 ||A x - y||^2 + lam * s * R(x),        A = M F S  (SENSE, ESPIRiT maps)

and are called like :class:`~unrolled.methods.classical.CGSense`:
``method(kspace, mask, num_low_frequencies, keys=None)`` returns an
:class:`~unrolled.models.reconstructor.Reconstruction` whose image is ``|x|``
(the RSS convention for maps with ``sum_c |S_c|^2 = 1``).

Scale. ``s = max_r |A^H y|(r)`` per slice, so ``lam`` is scale free: fastMRI
k-space magnitudes vary by orders of magnitude between files, and ``R`` is
1-homogeneous, so the problem is solved on ``y / s`` (image maximum about 1)
with weight ``lam`` and the solution is multiplied by ``s``.

Step size. The gradient of the data term is ``L``-Lipschitz with
``L = ||A||^2 <= max|M|^2 * max_r sum_c |S_c(r)|^2`` (the FFT is unitary), a
bound computed per slice and equal to 1 for a binary mask and normalised
maps (tight whenever a coil sees a pixel; the tests check it against power
iteration). The methods use this bound, never a guess.

* :class:`CSWavelet`: ``R(x) = ||Psi x||_1`` over the detail coefficients of
  an orthogonal wavelet (:class:`~unrolled.physics.wavelets.WaveletOp`; the
  approximation band is not penalised) with complex magnitudes. ``Psi`` is
  orthogonal, so the proximal step ``Psi^H soft(Psi x)`` is exact and FISTA
  (Beck & Teboulle 2009, step ``1/L``) applies as is, with O'Donoghue &
  Candes' gradient restart so the objective decreases almost monotonically.
  Images whose sides are not multiples of ``2**levels`` are solved on a
  zero-padded grid (the pad is unmeasured, ``A`` crops it) and cropped back.
* :class:`CSTV`: ``R(x) = TV(x)``, isotropic, complex
  (:mod:`unrolled.physics.tv`). TV has no cheap exact proximal operator, so
  it is dualised: the Condat-Vu primal-dual iteration (Condat, JOTA 158:460,
  2013; Chambolle-Pock with an explicit gradient step on the data term)
  ``x+ = x - tau (A^H(Ax - y) + D^H p)``,
  ``p+ = proj_{|p| <= lam}(p + sigma D(2 x+ - x))``, which converges for
  ``1/tau - sigma ||D||^2 > L/2`` with ``||D||^2 <= 8``; ``sigma = 5 lam``
  and ``tau = min(0.99 / (L/2 + 8 sigma), 1.5 / L)`` (see :class:`CSTV`).
  No smoothing, no inner solver, one ``A^H A`` per iteration like FISTA.

Both start from ``A^H y`` and run a fixed number of iterations (50 by
default: 0.5 s of CPU for an 8-coil 256 x 128 slice, one thread). That is
close to, not at, the minimiser (on an embedded slice, objective gaps of
0.1-0.4 % for the wavelet and 1-4 % for TV after 50 iterations), so
``num_iter`` is part of the method: the tuned weights in ``conf/method``
hold for the iterations stated there. With ``lam = 0`` the methods are
early-stopped (accelerated) Landweber SENSE.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from unrolled.methods.weight_selection import KSpaceCrossValidation
from unrolled.models.reconstructor import Reconstruction
from unrolled.models.sensitivity import EspiritSensitivity
from unrolled.physics.coils import rss
from unrolled.physics.fft import ifft2c
from unrolled.physics.operators import SenseOp, coil_kspace
from unrolled.physics.solvers import Callback, condat_vu, fista
from unrolled.physics.tv import GRAD_NORM_SQ, FiniteDifferenceOp, project_l2_ball, tv_norm
from unrolled.physics.wavelets import WaveletOp, max_levels, padded_shape, soft_threshold


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-sample ``(B,)`` -> ``(B, 1, ..., 1)`` broadcasting against ``like``."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def lipschitz_bound(op: SenseOp) -> torch.Tensor:
    """``max|M|^2 * max_r ||S(r)||^2 >= ||A||^2`` per sample, ``(B,)`` float.

    ``||S(r)||^2`` is ``sum_c |S_c(r)|^2`` for one set of maps and the largest eigenvalue
    of the per-pixel ``M x M`` Gram matrix ``S(r)^H S(r)`` for ``M`` sets (1 for
    orthonormal ESPIRiT sets, where the sum over sets would give ``M``).
    """
    b = op.maps.shape[0]
    if op.maps.dim() == 5:  # (B, M, C, H, W)
        gram = torch.einsum("bmchw,bnchw->bhwmn", op.maps.conj(), op.maps)  # (B, H, W, M, M)
        coil_energy = torch.linalg.eigvalsh(gram)[..., -1].flatten(1).amax(dim=1)  # (B,)
    else:
        coil_energy = op.maps.abs().pow(2).sum(dim=1).flatten(1).amax(dim=1)  # (B,)
    mask_max = op.mask.abs().pow(2).reshape(op.mask.shape[0], -1).amax(dim=1).expand(b)
    return coil_energy * mask_max


class _SenseCS(nn.Module):
    """Shared parts: ESPIRiT maps, scale normalisation, step size and output convention."""

    def __init__(
        self,
        lam: float,
        num_iter: int,
        espirit: EspiritSensitivity | None,
        weight_selection: KSpaceCrossValidation | None = None,
    ) -> None:
        super().__init__()
        if lam < 0 or num_iter < 0:
            raise ValueError(f"lam and num_iter must be >= 0, got {lam}, {num_iter}")
        self.lam = lam
        self.num_iter = num_iter
        self.espirit = espirit or EspiritSensitivity(num_maps=None)
        self.weight_selection = weight_selection

    def solve_with_weight(self, lam: float, op: SenseOp, kspace: torch.Tensor) -> torch.Tensor:
        """:meth:`solve` with weight ``lam`` instead of ``self.lam`` (``self`` is unchanged)."""
        method = copy.copy(self)  # shallow: shares the ESPIRiT estimator, not the weight
        method.lam = lam
        return method.solve(op, kspace)

    def regulariser(self, x: torch.Tensor) -> torch.Tensor:
        """``R(x)`` per image, ``(B, H, W)`` -> ``(B,)``."""
        raise NotImplementedError

    def _solve(
        self, op: SenseOp, y: torch.Tensor, x0: torch.Tensor, lip: torch.Tensor, cb
    ) -> torch.Tensor:
        """Minimise ``1/2||A x - y||^2 + lam R(x)`` from ``x0`` (all scale-normalised)."""
        raise NotImplementedError

    def objective(self, x: torch.Tensor, op: SenseOp, kspace: torch.Tensor) -> torch.Tensor:
        """``1/2 ||A x - y||^2 + lam * s * R(x)`` per sample, ``(B,)``, in the data's units."""
        scale = self.data_scale(op, kspace)
        fit = (op(x) - kspace).abs().pow(2).flatten(1).sum(dim=1) / 2
        return fit + self.lam * scale * self.regulariser(x)

    @staticmethod
    def data_scale(op: SenseOp, kspace: torch.Tensor) -> torch.Tensor:
        """``s = max |A^H y|`` per sample, ``(B,)`` (tiny where the data are all zero)."""
        s = op.H(kspace).abs().flatten(1).amax(dim=1)
        return s.clamp_min(torch.finfo(s.dtype).tiny)

    @torch.no_grad()
    def solve(
        self, op: SenseOp, kspace: torch.Tensor, callback: Callback | None = None
    ) -> torch.Tensor:
        """The complex SENSE image ``x`` ``(B, H, W)`` (``(B, M, H, W)`` for ``M`` sets of
        maps) for a given operator (maps, mask).

        Starts from ``A^H y``; ``callback`` sees every iterate in the data's units.
        """
        scale = self.data_scale(op, kspace)  # (B,)
        y = kspace / _bcast(scale, kspace)
        cb = None if callback is None else (lambda x: callback(x * _bcast(scale, x)))
        x = self._solve(op, y, op.H(y), lipschitz_bound(op).clamp_min(1e-12), cb)
        return x * _bcast(scale, x)

    @torch.no_grad()
    def forward(self, kspace, mask, num_low_frequencies, keys=None, return_cascades=False):
        """Reconstruct ``kspace`` ``(B, C, H, W)`` sampled by ``mask`` ``(B, 1, H, W)``.

        With ``M`` sets of maps (``(B, M, C, H, W)``) every set's image is regularised
        alike and the output image is the RSS of the coil images, equal to the RSS over the
        sets for ESPIRiT's per-pixel orthonormal sets.
        """
        maps = self.espirit(kspace, mask, num_low_frequencies, keys=keys)  # (B, [M,] C, H, W)
        if self.weight_selection is None:
            x = self.solve(SenseOp(maps, mask), kspace)  # (B, [M,] H, W)
        else:  # lam chosen per slice by k-space cross-validation
            sel = self.weight_selection
            x, _ = sel.reconstruct(
                self.solve_with_weight, maps, kspace, mask, num_low_frequencies, self.lam
            )
        k = coil_kspace(x, maps)  # (B, C, H, W)
        return Reconstruction(rss(ifft2c(k), dim=1), k, maps, [])


class CSWavelet(_SenseCS):
    """L1-wavelet SENSE by FISTA with ESPIRiT maps.

    Args:
        lam: weight of ``||Psi x||_1`` relative to ``max|A^H y|`` (see the module notes).
        num_iter: FISTA iterations.
        wavelet: orthogonal pywt wavelet name.
        levels: decomposition levels (fewer when the image is too small).
        restart: FISTA's adaptive restart.
        espirit: the ESPIRiT estimator (pass one to share its cache across methods);
            default: ESPIRiT's defaults (maps kept everywhere, ``crop=0``), one or two sets
            chosen per slice (``num_maps=None``; two where the field of view is too small).
        weight_selection: choose ``lam`` per slice from the slice's own samples
            (:class:`~unrolled.methods.weight_selection.KSpaceCrossValidation`);
            ``None``: the fixed ``lam``.

    Raises:
        ValueError: if ``lam`` or ``num_iter`` is negative.
    """

    def __init__(
        self,
        lam: float = 0.003,
        num_iter: int = 50,
        wavelet: str = "db4",
        levels: int = 4,
        restart: bool = True,
        espirit: EspiritSensitivity | None = None,
        weight_selection: KSpaceCrossValidation | None = None,
    ) -> None:
        super().__init__(lam, num_iter, espirit, weight_selection)
        self.wavelet = wavelet
        self.levels = levels
        self.restart = restart

    def transform(self, shape: tuple[int, int], like: torch.Tensor) -> WaveletOp:
        """The wavelet on the (padded) grid for images of ``shape``.

        Raises:
            ValueError: if not even one level of the wavelet fits ``shape``.
        """
        for levels in range(self.levels, 0, -1):
            grid = padded_shape(shape, levels)
            if levels <= max_levels(grid, self.wavelet):
                return WaveletOp(grid, self.wavelet, levels, like.device, like.dtype)
        raise ValueError(f"image {tuple(shape)} too small for wavelet {self.wavelet!r}")

    def regulariser(self, x: torch.Tensor) -> torch.Tensor:
        psi = self.transform(x.shape[-2:], x)
        c = _per_set(psi, _pad(x, psi.shape), x.dim() == 4)  # (B, [M,] H', W')
        return (c.abs() * psi.detail_mask()).flatten(1).sum(dim=1)

    def _solve(self, op, y, x0, lip, cb):
        h, w = x0.shape[-2:]
        psi = self.transform((h, w), x0)
        detail = psi.detail_mask()  # (H', W')
        aty = _pad(op.H(y), psi.shape)

        def grad(x):  # on the padded grid; A crops, A^H pads
            return _pad(op.normal(x[..., :h, :w]), psi.shape) - aty

        def prox(v, step):
            thresh = _bcast(step * self.lam, v) * detail  # (B, [1,] H', W'), 0 on the approx.
            sets = v.dim() == 4  # (B, M, H', W')
            return _per_set(psi.H, soft_threshold(_per_set(psi, v, sets), thresh), sets)

        crop_cb = None if cb is None else (lambda x: cb(x[..., :h, :w]))
        x = fista(grad, prox, _pad(x0, psi.shape), 1 / lip, self.num_iter, self.restart, crop_cb)
        return x[..., :h, :w]


class CSTV(_SenseCS):
    """Isotropic total-variation SENSE by the Condat-Vu primal-dual method, ESPIRiT maps.

    Args:
        lam: weight of ``TV(x)`` relative to ``max|A^H y|`` (see the module notes).
        num_iter: primal-dual iterations.
        dual_step: the dual step relative to ``lam``, ``sigma = dual_step * lam``.
            The dual variable lives in the ball of radius ``lam``, so this keeps
            the dual dynamics independent of ``lam``; 5 gave the smallest
            objective gap after 50 iterations for ``lam`` in ``[3e-4, 3e-2]``
            on embedded validation slices (3 and 10: up to 1.5x larger gaps).
        max_primal_step: cap on ``tau * L``. The primal step is
            ``tau = min(0.99 / (L/2 + 8 sigma), max_primal_step / L)``: the
            largest that Condat-Vu's condition allows, but below ``2 / L`` so the
            data term still converges quickly as ``lam -> 0`` (the condition
            then allows steps up to ``2 / L``, where plain gradient descent stalls).
        espirit: the ESPIRiT estimator (pass one to share its cache across methods);
            default: ESPIRiT's defaults (maps kept everywhere, ``crop=0``), one or two sets
            chosen per slice (``num_maps=None``; two where the field of view is too small).
        weight_selection: choose ``lam`` per slice from the slice's own samples
            (:class:`~unrolled.methods.weight_selection.KSpaceCrossValidation`);
            ``None``: the fixed ``lam``.

    Raises:
        ValueError: if ``lam`` or ``num_iter`` is negative, or a step is not positive.
    """

    def __init__(
        self,
        lam: float = 0.003,
        num_iter: int = 50,
        dual_step: float = 5.0,
        max_primal_step: float = 1.5,
        espirit: EspiritSensitivity | None = None,
        weight_selection: KSpaceCrossValidation | None = None,
    ) -> None:
        super().__init__(lam, num_iter, espirit, weight_selection)
        if dual_step <= 0 or max_primal_step <= 0:
            raise ValueError(f"steps must be positive, got {dual_step}, {max_primal_step}")
        self.dual_step = dual_step
        self.max_primal_step = max_primal_step

    def regulariser(self, x: torch.Tensor) -> torch.Tensor:
        return tv_norm(x.reshape(-1, *x.shape[-2:])).reshape(x.shape[0], -1).sum(dim=1)

    def _solve(self, op, y, x0, lip, cb):
        d = FiniteDifferenceOp()
        sigma = self.dual_step * self.lam
        tau = torch.minimum(0.99 / (lip / 2 + GRAD_NORM_SQ * sigma), self.max_primal_step / lip)
        aty = op.H(y)
        sets = op.maps.dim() == 5  # x0 (B, M, H, W), the dual (B, M, 2, H, W)
        return condat_vu(
            lambda x: op.normal(x) - aty,
            lambda x: _per_set(d, x, sets),
            lambda p: _per_set(d.H, p, sets),
            lambda p: _per_set(lambda g: project_l2_ball(g, self.lam), p, sets),
            x0,
            tau,
            sigma,
            self.num_iter,
            cb,
        )


def _per_set(
    op: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, sets: bool
) -> torch.Tensor:
    """``op`` (acting on a batch ``(N, ...)``) applied to each set of ``x`` ``(B, M, ...)``
    when ``sets`` (soft-SENSE: the sets are folded into the batch); to ``x`` itself otherwise."""
    return op(x.flatten(0, 1)).unflatten(0, x.shape[:2]) if sets else op(x)


def _pad(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Zero-pad the last two axes at their ends to ``shape`` (no copy when already there)."""
    ph, pw = shape[0] - x.shape[-2], shape[1] - x.shape[-1]
    return x if ph == 0 and pw == 0 else torch.nn.functional.pad(x, (0, pw, 0, ph))
