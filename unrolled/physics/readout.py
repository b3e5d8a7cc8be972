"""Readout oversampling: find it and remove it, exactly, from Cartesian k-space.

Scanners sample the readout (frequency-encoding) axis, here the rows ``H`` of
``(..., H, W)`` k-space, finer than the field of view needs, usually twice
(fastMRI: 640 rows for a 320-row image), because it costs no scan time; the
outer half of the image rows then holds only noise, and reconstructions crop it
at the end. For line masks (every row of a sampled column is acquired) the
crop commutes with the sampling: the 1D inverse FFT along the readout, a centre
crop of the rows and the FFT back map a measured column to a measured column
and an empty one to an empty one, so data consistency on the cropped k-space is
exact. Methods whose cost grows with the matrix (a network fitted to each scan)
can thus work on half the rows and pad the result back. As in BART's
``bart resize -c 0`` on an image after ``bart fft -i 1`` (readout only), and as
the Gadgetron's ``RemoveROOversamplingGadget`` does.
"""

from __future__ import annotations

import torch

from unrolled.physics.coils import center_crop_or_pad


def _ifft_rows(k: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal inverse FFT along the rows (dim -2)."""
    k = torch.fft.ifftshift(k, dim=-2)
    return torch.fft.fftshift(torch.fft.ifft(k, dim=-2, norm="ortho"), dim=-2)


def _fft_rows(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal FFT along the rows (dim -2)."""
    x = torch.fft.ifftshift(x, dim=-2)
    return torch.fft.fftshift(torch.fft.fft(x, dim=-2, norm="ortho"), dim=-2)


def _resize_rows(kspace: torch.Tensor, rows: int) -> torch.Tensor:
    """k-space of the image centre-cropped or zero-padded to ``rows`` rows (readout only)."""
    images = _ifft_rows(kspace)
    return _fft_rows(center_crop_or_pad(images, (rows, images.shape[-1])))


def oversampled_rows(
    kspace: torch.Tensor, mask: torch.Tensor, factor: int = 2, threshold: float = 0.01
) -> int | None:
    """Rows to keep if the readout is oversampled ``factor`` times, else ``None``.

    The readout counts as oversampled when the mask is the same in every row
    (a line mask: the crop is then exact) and the rows outside the central
    ``H // factor`` hold at most ``threshold`` of the zero-filled image's energy
    (undersampling the columns aliases along the columns only, so the energy per
    row of the zero-filled image is that of the fully sampled one, up to noise).

    Args:
        kspace: ``(B, C, H, W)`` complex k-space, zero where not sampled.
        mask: acquired locations, broadcastable to ``(B, 1, H, W)``.
        factor: readout oversampling to test for (fastMRI: 2).
        threshold: largest energy fraction of the outer rows that may be discarded.

    Returns:
        ``H // factor``, or ``None`` (a 2D mask, ``H // factor < 1``, or signal in
        the outer rows).

    Raises:
        ValueError: ``factor < 1`` or ``threshold`` outside ``[0, 1)``.
    """
    if factor < 1 or not 0 <= threshold < 1:
        raise ValueError(f"need factor >= 1 and threshold in [0, 1), got {factor}, {threshold}")
    h = kspace.shape[-2] // factor
    if factor == 1 or h < 1:
        return None
    full = mask.expand(*mask.shape[:-2], kspace.shape[-2], kspace.shape[-1])
    if not torch.equal(full.amax(dim=-2), full.amin(dim=-2)):
        return None  # 2D undersampling: the readout is not fully sampled
    energy = _ifft_rows(kspace).abs().pow(2).sum(dim=(0, 1, 3))  # (H,) per image row
    top = (kspace.shape[-2] - h) // 2
    outer = energy.sum() - energy[top : top + h].sum()
    return h if float(outer) <= threshold * float(energy.sum()) else None


def crop_readout(kspace: torch.Tensor, rows: int) -> torch.Tensor:
    """Remove readout oversampling: k-space ``(..., H, W)`` -> ``(..., rows, W)``.

    Inverse FFT along the rows, centre crop to ``rows`` image rows, FFT back
    (centred, orthonormal, as :func:`~unrolled.physics.fft.fft2c`).

    Raises:
        ValueError: ``rows`` is not in ``[1, H]``.
    """
    if not 1 <= rows <= kspace.shape[-2]:
        raise ValueError(f"rows must be in [1, {kspace.shape[-2]}], got {rows}")
    return _resize_rows(kspace, rows)


def pad_readout(kspace: torch.Tensor, rows: int) -> torch.Tensor:
    """The inverse of :func:`crop_readout`: ``(..., h, W)`` -> ``(..., rows, W)``, zero rows added.

    Raises:
        ValueError: ``rows`` is smaller than ``h``.
    """
    if rows < kspace.shape[-2]:
        raise ValueError(f"cannot pad {kspace.shape[-2]} rows to {rows}")
    return _resize_rows(kspace, rows)
