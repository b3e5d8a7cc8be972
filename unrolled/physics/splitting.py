"""Splitting the acquired k-space samples into disjoint sets (SSDU, zero-shot).

Self-supervised training (Yaman et al., SSDU, MRM 2020) divides the acquired
locations ``Omega`` of each slice into a data-consistency set ``Theta``, which
the network sees, and a loss set ``Lambda``, on which its prediction is
compared with the measurements. Zero-shot (scan-specific) reconstruction
additionally holds out a validation set used only to decide when to stop.

The selection is point-wise over the 2D k-space grid (also for 1D Cartesian
masks, as in SSDU), either uniform over the acquired points or weighted by a
Gaussian centred on the k-space centre (``std = size / std_scale`` per axis),
which picks more low-frequency points. A small central block (``keep_center``)
always stays in ``Theta``, so that calibration and the image's low frequencies
remain visible to the network.

No learnable parameters, no I/O: pure functions of tensors.
"""

from __future__ import annotations

import torch

SELECTIONS = ("uniform", "gaussian")


def _weights(h: int, w: int, selection: str, std_scale: float, device) -> torch.Tensor:
    """Selection weights over the ``(H, W)`` grid (unnormalised)."""
    if selection == "uniform":
        return torch.ones(h, w, device=device)
    ky = torch.arange(h, device=device, dtype=torch.float32) - h // 2
    kx = torch.arange(w, device=device, dtype=torch.float32) - w // 2
    gy = torch.exp(-0.5 * (ky * std_scale / h) ** 2)
    gx = torch.exp(-0.5 * (kx * std_scale / w) ** 2)
    return gy[:, None] * gx[None, :]  # (H, W)


def split_mask(
    mask: torch.Tensor,
    ratio: float = 0.4,
    selection: str = "gaussian",
    keep_center: tuple[int, int] = (4, 4),
    std_scale: float = 4.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split each sample's acquired locations into ``(Theta, Lambda)``.

    Args:
        mask: acquired locations, ``(B, 1, H, W)`` (full size, as in
            :class:`~unrolled.data.sample.Sample`); nonzero where sampled.
        ratio: fraction of the acquired points moved to ``Lambda``, in ``(0, 1)``
            (SSDU's rho; 0.4 in the paper).
        selection: ``"uniform"`` or ``"gaussian"`` (centre-weighted).
        keep_center: ``(rows, cols)`` of the central block that never goes to
            ``Lambda``.
        std_scale: Gaussian width: ``std = size / std_scale`` along each axis.
        generator: random source (pass a seeded one for a fixed split).

    Returns:
        ``(theta, lam)``, both float32 ``(B, 1, H, W)``, disjoint, with
        ``theta + lam`` equal to the (binarised) input mask.

    Raises:
        ValueError: bad ``ratio`` or ``selection``, or a mask of the wrong rank.
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio must be in (0, 1), got {ratio}")
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    if mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask must have shape (B, 1, H, W), got {tuple(mask.shape)}")
    b, h, w = mask.shape[0], mask.shape[-2], mask.shape[-1]
    omega = (mask != 0).reshape(b, h * w)  # (B, H*W) bool
    weights = _weights(h, w, selection, std_scale, mask.device)
    ch, cw = keep_center
    protected = torch.zeros(h, w, dtype=torch.bool, device=mask.device)
    top, left = h // 2 - ch // 2, w // 2 - cw // 2
    protected[top : top + ch, left : left + cw] = True
    protected = protected.reshape(-1)
    lam = torch.zeros(b, h * w, dtype=torch.bool, device=mask.device)
    for i in range(b):
        candidates = omega[i] & ~protected
        n = int(round(ratio * int(omega[i].sum())))
        n = min(n, int(candidates.sum()))
        if n == 0:
            continue
        p = torch.where(candidates, weights.reshape(-1), torch.zeros((), device=mask.device))
        chosen = torch.multinomial(p.cpu(), n, replacement=False, generator=generator)
        lam[i, chosen.to(mask.device)] = True
    theta = omega & ~lam
    shape = (b, 1, h, w)
    return theta.reshape(shape).float(), lam.reshape(shape).float()
