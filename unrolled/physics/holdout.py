"""Disjoint hold-out folds of acquired k-space, outside the calibration region.

For k-space cross-validation (:mod:`unrolled.methods.weight_selection`): each
fold removes a small part of the acquired samples ``Omega`` of one slice; a
reconstruction from the rest is judged by how well it predicts the removed
samples. The calibration region (fastMRI's ``num_low_frequencies`` centre
columns, all rows) is never held out, so coil sensitivities estimated from it
are the same for every fold and for the final reconstruction.

Two units of hold-out:

* ``"lines"``: whole acquired phase-encoding lines (columns of a 1D Cartesian
  mask). A fold then looks like the real task -- predicting k-space columns
  that were not measured -- with the aliasing of a slightly sparser line mask.
* ``"points"``: single acquired ``(ky, kx)`` points, uniform over ``Omega``
  outside the calibration region (SSDU's uniform selection, Yaman et al.,
  MRM 2020). Works for any mask; for line masks the removed points sit between
  measured neighbours of the same line.

No learnable parameters, no I/O: pure functions of tensors.
"""

from __future__ import annotations

import torch

from unrolled.physics.calibration import calibration_columns

HOLDOUTS = ("auto", "lines", "points")
SELECTIONS = ("uniform", "gaussian")


def _centre_weights(h: int, w: int, std_scale: float) -> torch.Tensor:
    """Gaussian ``(H, W)`` weights centred on k-space, ``std = size / std_scale`` per axis."""
    ky = torch.arange(h, dtype=torch.float64) - h // 2
    kx = torch.arange(w, dtype=torch.float64) - w // 2
    return (
        torch.exp(-0.5 * (ky * std_scale / h) ** 2)[:, None]
        * torch.exp(-0.5 * (kx * std_scale / w) ** 2)[None, :]
    )


def calibration_region(shape: tuple[int, int], num_low_frequencies: int) -> torch.Tensor:
    """Boolean ``(H, W)``: the centre ``num_low_frequencies`` columns, all rows
    (:func:`~unrolled.physics.calibration.calibration_columns`)."""
    h, w = shape
    cols = calibration_columns(w, torch.tensor([int(num_low_frequencies)]))  # (1, 1, 1, W)
    return cols[0, 0].expand(h, w)


def is_line_mask(mask: torch.Tensor) -> bool:
    """Whether a ``(..., H, W)`` mask samples whole columns (1D Cartesian along ``W``)."""
    m = mask.reshape(-1, *mask.shape[-2:]) != 0  # (N, H, W)
    return bool((m == m[:, :1, :]).all())


def holdout_folds(
    mask: torch.Tensor,
    num_low_frequencies: int,
    fraction: float,
    num_folds: int,
    holdout: str = "auto",
    generator: torch.Generator | None = None,
    selection: str = "uniform",
    std_scale: float = 8.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``num_folds`` disjoint hold-out sets of one slice's acquired samples.

    Args:
        mask: acquired locations of one slice, ``(1, 1, H, W)`` or ``(H, W)``; nonzero
            where sampled.
        num_low_frequencies: calibration columns (never held out).
        fraction: share of the acquired units (lines or points) outside the
            calibration region that each fold holds out, in ``(0, 1)``; at least one unit.
        num_folds: number of disjoint folds (fewer if there are not enough units).
        holdout: ``"lines"``, ``"points"``, or ``"auto"`` (lines for a 1D
            Cartesian mask, else points).
        generator: random source (seed it for a reproducible split).
        selection: ``"uniform"`` over the candidate units, or ``"gaussian"``: drawn
            with probability ``exp(-k^2 / 2 std^2)``, ``std = size / std_scale`` per
            axis, so the held-out samples lie nearer the calibration region (SSDU's
            Gaussian selection).
        std_scale: the Gaussian's width parameter.

    Returns:
        ``(keep, held)``, float32 ``(K, 1, H, W)`` each, ``keep + held`` equal to
        the binarised mask in every fold, ``held`` disjoint across folds and zero
        in the calibration region.

    Raises:
        ValueError: bad ``fraction``, ``num_folds``, ``holdout`` or ``selection``; ``"lines"`` for a
            mask that is not 1D Cartesian; no acquired sample outside the
            calibration region.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"hold-out fraction must be in (0, 1), got {fraction}")
    if num_folds < 1:
        raise ValueError(f"num_folds must be >= 1, got {num_folds}")
    if holdout not in HOLDOUTS:
        raise ValueError(f"holdout must be one of {HOLDOUTS}, got {holdout!r}")
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    h, w = mask.shape[-2:]
    omega = (mask.reshape(-1, h, w)[0] != 0).cpu()  # (H, W) bool
    lines = is_line_mask(omega)
    if holdout == "lines" and not lines:
        raise ValueError("holdout='lines' needs a 1D Cartesian (column) mask; use 'points'")
    by_lines = holdout == "lines" or (holdout == "auto" and lines)
    candidates = omega & ~calibration_region((h, w), int(num_low_frequencies))
    if by_lines:
        units = torch.nonzero(candidates[0]).reshape(-1)  # acquired columns
    else:
        units = torch.nonzero(candidates.reshape(-1)).reshape(-1)  # flat (ky, kx) indices
    if units.numel() == 0:
        raise ValueError("no acquired sample outside the calibration region to hold out")
    per_fold = max(1, round(fraction * units.numel()))
    k = max(1, min(num_folds, units.numel() // per_fold))
    if selection == "uniform":
        order = units[torch.randperm(units.numel(), generator=generator)]
    else:
        weights = _centre_weights(h, w, std_scale)
        p = weights[0, units] if by_lines else weights.reshape(-1)[units]
        order = units[torch.multinomial(p, k * per_fold, replacement=False, generator=generator)]
    held = torch.zeros(k, h * w if not by_lines else w, dtype=torch.bool)
    for i in range(k):
        held[i, order[i * per_fold : (i + 1) * per_fold]] = True
    if by_lines:
        held = held[:, None, :].expand(k, h, w)  # whole columns
    held = held.reshape(k, 1, h, w).to(mask.device)
    keep = omega.to(mask.device)[None, None] & ~held
    return keep.float(), held.float()
