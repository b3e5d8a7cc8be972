"""A field of view smaller than the object: fold images along the phase-encoding axis.

Sampling k-space with a spacing ``1 / FOV'`` larger than ``1 / FOV_object`` (fewer
phase-encoding lines at the same resolution) replicates the object every ``FOV'``
in image space; what lies outside ``FOV'`` wraps around onto the opposite side
(the Poisson summation formula). :func:`fold_fov` builds that image on a grid of
``W' = round(fraction * W)`` columns with the same pixel size, the reduced field of
view centred on the full one, so that ``fft2c(fold_fov(coil_images, f))`` is the
k-space of a scan whose phase-encoding field of view is ``f`` times the object's
(the case of Uecker et al., MRM 71:990-1001, 2014, Fig. 8, that needs two sets of
ESPIRiT maps).
"""

from __future__ import annotations

import torch


def folded_width(width: int, fraction: float) -> int:
    """Columns ``W' = round(fraction * W)`` of the reduced field of view.

    Raises:
        ValueError: ``fraction`` is not in ``(0, 1]`` or leaves fewer than 2 columns.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fov_fraction must be in (0, 1], got {fraction}")
    out = int(round(fraction * width))
    if out < 2:
        raise ValueError(f"fov_fraction {fraction} leaves {out} of {width} columns")
    return out


def fold_fov(images: torch.Tensor, fraction: float) -> torch.Tensor:
    """Wrap images onto a field of view ``fraction`` times as wide along the last axis.

    Column ``i`` of the input (position ``i - W // 2`` from the centre, the
    ``ifft2c`` convention) is added to column ``j`` of the output with
    ``j - W' // 2 = (i - W // 2) mod W'`` taken into ``[-W' // 2, W' - W' // 2)``:
    the centred part is kept in place, the sides fold over it.

    Args:
        images: complex or real images ``(..., H, W)`` (e.g. coil images ``(S, C, H, W)``).
        fraction: the reduced field of view over the full one, in ``(0, 1]``.

    Returns:
        ``(..., H, W')`` with ``W' = folded_width(W, fraction)``; the input itself when
        ``W' = W``.

    Raises:
        ValueError: as :func:`folded_width`.
    """
    W = images.shape[-1]
    Wf = folded_width(W, fraction)
    if Wf == W:
        return images
    target = (torch.arange(W, device=images.device) - W // 2 + Wf // 2) % Wf  # (W,)
    out = images.new_zeros(*images.shape[:-1], Wf)
    return out.index_add_(-1, target, images)
