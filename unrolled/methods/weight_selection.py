"""Regularisation weight chosen per scan, from the scan: k-space cross-validation.

For a regularised SENSE reconstruction ``x(lam) = argmin 1/2||A x - y||^2 + lam R(x)``
(CG-SENSE, L1-wavelet, TV), the weight that suits one scan depends on its coils,
noise, acceleration and anatomy. :class:`KSpaceCrossValidation` picks it from the
scan's own measurements:

1. Split off ``num_folds`` disjoint hold-out sets of the acquired samples, each
   ``fraction`` of the acquired points (default) or lines outside the calibration
   region (:func:`~unrolled.physics.holdout.holdout_folds`), drawn with a
   centre-weighted Gaussian by default. The coil sensitivities come from the
   calibration region, which is never held out, so one set of maps serves every
   fold.
2. For each candidate weight, reconstruct every fold from its remaining samples
   (the folds are solved together as one batch) and measure how well the
   reconstruction predicts the held-out coil k-space through the SENSE forward
   model: ``CV(lam) = sum_k ||H_k (F S x_k(lam) - y)||^2 / sum_k ||H_k y||^2``.
3. Search ``log10(lam)``: a coarse grid (extended by one step at an end while
   the minimum sits there, at most ``max_extend`` times), then golden-section
   refinement inside the bracket around the grid minimum.
4. The method then reconstructs from *all* samples with the chosen weight.

Sources. Choosing among reconstructions by their error on measurements held out
of the fit is cross-validation as analysed for compressed sensing by R. Ward,
"Compressed sensing with cross validation", IEEE Trans. Inf. Theory 55(12),
2009 (arXiv:0803.1845): the held-out residual estimates the reconstruction
error. In parallel MRI the same idea chose GRAPPA kernels (Nana et al.,
"Cross-validation-based kernel support selection for improved GRAPPA
reconstruction", MRM 59:819, 2008). The split of the acquired samples into
disjoint sets with the calibration centre kept follows SSDU (Yaman et al.,
MRM 2020) and zero-shot SSL's held-out validation set (Yaman et al., ICLR
2022). The K-fold averaging, the scoring through the SENSE forward model and
the search are this module's choices, measured in ``bench/real_scans.py``.
Related approaches not implemented here: generalized cross-validation and the
L-curve for Tikhonov SENSE, and Monte-Carlo SURE (Weller et al., MRM 71:2014).

Defaults, as measured with CG-SENSE on the real scans of ``bench/real_scans.py``
(its ``exploration`` record): held-out *lines* chose weights 10-300x above the
PSNR oracle (predicting a removed line from a sparser, irregular mask is worse
than predicting zero at any weight, so the minimum sits at the heaviest
shrinkage); *uniform* points matched the oracle within 1.4-1.7x on the brain
but chose 8-9x too large on the 2-coil phantom (the outer points carry little
signal, and the cost of shrinkage at the never-held-out centre is invisible);
*Gaussian, centre-weighted* points (SSDU's selection, ``std = size / 8``) chose
within 1.9x of the oracle on all six scan/acceleration cases. The bias that
remains is that of any hold-out outside the calibration region: the weight is
judged by outer k-space only.

The chosen weight comes from reconstructions with ``1 - fraction`` of the
outer samples, then is used with all of them; with a small ``fraction`` the
difference is small (the bench reports chosen against oracle weights).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from unrolled.physics.holdout import (
    HOLDOUTS,
    SELECTIONS,
    calibration_region,
    holdout_folds,
    is_line_mask,
)
from unrolled.physics.operators import SenseOp

GOLDEN = (math.sqrt(5) - 1) / 2  # 0.618...

# solve(weight, op, kspace) -> complex image (K, H, W): a method's reconstruction for a
# batch of folds sharing maps (op.maps (K, C, H, W), op.mask (K, 1, H, W)).
Solver = Callable[[float, SenseOp, torch.Tensor], torch.Tensor]


@dataclass
class WeightSelection:
    """Outcome of :meth:`KSpaceCrossValidation.select` for one slice.

    Attributes:
        weight: the chosen weight (the evaluated one with the smallest CV error).
        errors: ``{weight: CV error}`` for every weight evaluated, in evaluation order.
        holdout: ``"lines"`` or ``"points"``, as used.
        num_folds: folds actually used.
        held_out_per_fold: acquired samples held out per fold.
        at_edge: the grid minimum stayed at an end after the extensions.
        seconds: wall time of the selection (all fold reconstructions).
    """

    weight: float
    errors: dict[float, float] = field(default_factory=dict)
    holdout: str = ""
    num_folds: int = 0
    held_out_per_fold: int = 0
    at_edge: bool = False
    seconds: float = 0.0


class KSpaceCrossValidation:
    """Choose a regularisation weight per slice by k-space cross-validation.

    Args:
        grid: ascending positive candidate weights (log-spaced), at least 2.
        refine_steps: golden-section evaluations on ``log10(weight)`` after the grid
            (0: grid only; each shrinks the bracket by 0.618).
        max_extend: how many times the grid may grow by one step at the end where
            its minimum lies.
        holdout: ``"points"`` (default), ``"lines"`` or ``"auto"`` (lines for 1D
            Cartesian masks). Whole held-out lines chose 10-100x too large weights on
            every real scan of ``bench/real_scans.py`` (see the module notes).
        fraction: share of the acquired units outside the calibration region held
            out per fold.
        num_folds: disjoint folds, reconstructed together as one batch.
        selection: ``"uniform"`` or ``"gaussian"`` (centre-weighted) choice of the
            held-out units (:func:`~unrolled.physics.holdout.holdout_folds`).
        seed: seed of the split (the same scan always gets the same folds).

    Raises:
        ValueError: on a bad grid, fraction, fold count or hold-out unit.
    """

    def __init__(
        self,
        grid: Sequence[float] = (1e-4, 3.16e-4, 1e-3, 3.16e-3, 1e-2, 3.16e-2, 1e-1),
        refine_steps: int = 4,
        max_extend: int = 2,
        holdout: str = "points",
        fraction: float = 0.1,
        num_folds: int = 3,
        selection: str = "gaussian",
        seed: int = 0,
    ) -> None:
        grid = sorted(float(g) for g in grid)
        if len(grid) < 2 or grid[0] <= 0:
            raise ValueError(f"weight grid needs >= 2 positive values, got {list(grid)}")
        if holdout not in HOLDOUTS:
            raise ValueError(f"holdout must be one of {HOLDOUTS}, got {holdout!r}")
        if selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
        if not 0.0 < fraction < 1.0 or num_folds < 1 or refine_steps < 0 or max_extend < 0:
            raise ValueError(
                f"need 0 < fraction < 1, num_folds >= 1, refine_steps >= 0, max_extend >= 0; "
                f"got {fraction}, {num_folds}, {refine_steps}, {max_extend}"
            )
        self.grid = grid
        self.refine_steps = refine_steps
        self.max_extend = max_extend
        self.holdout = holdout
        self.fraction = fraction
        self.num_folds = num_folds
        self.selection = selection
        self.seed = seed

    def folds(self, mask: torch.Tensor, num_low_frequencies: int):
        """``(keep, held)`` ``(K, 1, H, W)`` for one slice's mask (see :func:`holdout_folds`)."""
        gen = torch.Generator().manual_seed(self.seed)
        return holdout_folds(
            mask,
            num_low_frequencies,
            self.fraction,
            self.num_folds,
            self.holdout,
            gen,
            selection=self.selection,
        )

    @torch.no_grad()
    def select(
        self,
        solve: Solver,
        maps: torch.Tensor,
        kspace: torch.Tensor,
        mask: torch.Tensor,
        num_low_frequencies: int,
    ) -> WeightSelection:
        """The weight for one slice.

        Args:
            solve: ``solve(weight, op, kspace) -> x``: the method's complex image
                ``(K, H, W)`` for the SENSE operator ``op`` and k-space ``(K, C, H, W)``.
            maps: coil sensitivities ``(1, C, H, W)`` (from the calibration region).
            kspace: acquired coil k-space ``(1, C, H, W)``, zero where not sampled.
            mask: ``(1, 1, H, W)`` acquired locations.
            num_low_frequencies: calibration columns of this slice.

        Returns:
            The :class:`WeightSelection`.
        """
        t0 = time.perf_counter()
        keep, held = self.folds(mask, num_low_frequencies)  # (K, 1, H, W)
        k = keep.shape[0]
        maps_k = maps.expand(k, *maps.shape[1:])  # (K, C, H, W)
        y = kspace.expand(k, *kspace.shape[1:])
        op = SenseOp(maps_k, keep)
        y_keep = y * keep
        held_energy = (held * y).abs().pow(2).sum().clamp_min(torch.finfo(torch.float32).tiny)
        result = WeightSelection(
            weight=self.grid[0],
            holdout="lines" if self.holdout == "lines" or (
                self.holdout == "auto" and is_line_mask(mask)) else "points",
            num_folds=k,
            held_out_per_fold=int(held[0].sum()),
        )  # fmt: skip

        def cv(weight: float) -> float:  # smaller is better
            weight = float(f"{weight:.6g}")
            if weight not in result.errors:
                x = solve(weight, op, y_keep)  # (K, H, W)
                pred = SenseOp(maps_k, held)(x)  # (K, C, H, W), zero off the held-out set
                result.errors[weight] = float((pred - held * y).abs().pow(2).sum() / held_energy)
            return result.errors[weight]

        grid = list(self.grid)
        for g in grid:
            cv(g)
        for attempt in range(self.max_extend + 1):
            i = min(range(len(grid)), key=lambda j: cv(grid[j]))
            if 0 < i < len(grid) - 1:
                break
            if attempt == self.max_extend:
                result.at_edge = True
                break
            grid = [grid[0] ** 2 / grid[1], *grid] if i == 0 else [*grid, grid[-1] ** 2 / grid[-2]]
            cv(grid[0] if i == 0 else grid[-1])
        if self.refine_steps:
            lo, hi = math.log10(grid[max(i - 1, 0)]), math.log10(grid[min(i + 1, len(grid) - 1)])
            a, b = lo + (1 - GOLDEN) * (hi - lo), lo + GOLDEN * (hi - lo)
            fa = cv(10**a)
            fb = cv(10**b) if self.refine_steps >= 2 else math.inf
            for _ in range(self.refine_steps - 2):
                if fa <= fb:  # the minimum lies in [lo, b]
                    hi, b, fb = b, a, fa
                    a = lo + (1 - GOLDEN) * (hi - lo)
                    fa = cv(10**a)
                else:  # in [a, hi]
                    lo, a, fa = a, b, fb
                    b = lo + GOLDEN * (hi - lo)
                    fb = cv(10**b)
        result.weight = min(result.errors, key=result.errors.get)
        result.seconds = time.perf_counter() - t0
        return result

    @torch.no_grad()
    def reconstruct(
        self,
        solve: Solver,
        maps: torch.Tensor,
        kspace: torch.Tensor,
        mask: torch.Tensor,
        num_low_frequencies: torch.Tensor,
        fallback: float | None = None,
    ) -> tuple[torch.Tensor, list[WeightSelection]]:
        """Per slice: select the weight, then reconstruct from all acquired samples with it.

        Args:
            solve: as in :meth:`select`.
            maps: ``(B, C, H, W)`` coil sensitivities.
            kspace: ``(B, C, H, W)`` acquired k-space.
            mask: ``(B, 1, H, W)`` (or ``(1, 1, H, W)``, shared) acquired locations.
            num_low_frequencies: ``(B,)`` calibration columns.
            fallback: the weight for a slice with no acquired sample outside the
                calibration region (nothing to hold out; its selection then has no
                ``errors``); ``None``: such a slice raises.

        Returns:
            ``(x, selections)``: complex images ``(B, H, W)`` and one
            :class:`WeightSelection` per slice.

        Raises:
            ValueError: a slice has nothing to hold out and ``fallback`` is ``None``.
        """
        images, selections = [], []
        nlf = torch.as_tensor(num_low_frequencies).reshape(-1)
        for i in range(kspace.shape[0]):
            m = mask[i : i + 1] if mask.shape[0] > 1 else mask  # (1, 1, H, W)
            y = kspace[i : i + 1]
            n = int(nlf[i if nlf.numel() > 1 else 0])
            outer = (m[0, 0] != 0) & ~calibration_region(tuple(m.shape[-2:]), n).to(m.device)
            if fallback is not None and not bool(outer.any()):
                s = WeightSelection(weight=fallback)
            else:
                s = self.select(solve, maps[i : i + 1], y, m, n)
            images.append(solve(s.weight, SenseOp(maps[i : i + 1], m), y))
            selections.append(s)
        return torch.cat(images), selections
