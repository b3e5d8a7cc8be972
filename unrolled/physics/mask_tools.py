"""Masks by name (fastMRI's mask-type names plus ``'poisson'`` and ``'gaussian'``) and the
effective acceleration of a mask: grid points over sampled points."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from unrolled.physics.grid_masks import GaussianMaskFunc, PoissonDiscMaskFunc
from unrolled.physics.masks import (
    EquispacedMaskFractionFunc,
    EquispacedMaskFunc,
    MagicMaskFractionFunc,
    MagicMaskFunc,
    MaskFunc,
    RandomMaskFunc,
)

MASK_TYPES: dict[str, type[MaskFunc]] = {
    "random": RandomMaskFunc,
    "equispaced": EquispacedMaskFunc,
    "equispaced_fraction": EquispacedMaskFractionFunc,
    "magic": MagicMaskFunc,
    "magic_fraction": MagicMaskFractionFunc,
    "poisson": PoissonDiscMaskFunc,
    "gaussian": GaussianMaskFunc,
}


def create_mask_func(
    mask_type: str,
    center_fractions: Sequence[float],
    accelerations: Sequence[float],
    seed: int | None = None,
    allow_any_combination: bool = False,
) -> MaskFunc:
    """Build a mask function by name (fastMRI's ``create_mask_for_mask_type`` names plus
    ``'poisson'`` and ``'gaussian'``, whose calibration block is ``round(f * H/W)``)."""
    try:
        cls = MASK_TYPES[mask_type]
    except KeyError:
        raise ValueError(f"{mask_type!r} not supported; choose from {sorted(MASK_TYPES)}") from None
    return cls(center_fractions, accelerations, allow_any_combination, seed)


def effective_acceleration(mask: torch.Tensor | np.ndarray) -> float:
    """Grid points over sampled points of a mask broadcast over the ``(H, W)`` grid.

    Args:
        mask: ``(1, W)`` 1D mask, ``(H, W)`` 2D mask, or any shape with leading batch
            axes; values in {0, 1}. Broadcasting over ``H`` does not change the ratio.

    Returns:
        ``mask.size / mask.sum()`` (``inf`` for an empty mask).
    """
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    total = float(m.astype(np.float64).sum())
    return m.size / total if total > 0 else math.inf
