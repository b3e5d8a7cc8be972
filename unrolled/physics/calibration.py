"""The calibration region (ACS, auto-calibration signal): the fully sampled centre of k-space.

Every part of the package that needs the calibration region takes it from here: the masks
(which sample it), the transform and the raw converters (which measure its width), the
sensitivity estimators (learned maps, ESPIRiT), SSDU (which keeps it out of the loss split)
and the zero-shot method.

fastMRI's convention (``fastmri.data.subsample``): the ``n = num_low_frequencies`` centre
columns of a ``W``-column k-space are ``[pad, pad + n)`` with ``pad = (W - n + 1) // 2``, so
the region always contains the centre column ``W // 2`` (the DC column of a centred FFT).
ESPIRiT calibrates on a ``rows x n`` block around the centre, ``rows = min(H, max(n, 24))``
(the rows of a Cartesian 1D mask are all sampled, so more of them than ``n`` help the
kernel fit; 24 is the ESPIRiT paper's smallest calibration size, Uecker et al., MRM 2014).
"""

from __future__ import annotations

import numpy as np
import torch

#: Calibration rows used when only the number of low-frequency columns is given
#: (at least this many, at most ``H``).
MIN_CALIB_ROWS = 24


def center_start(num_cols: int, num_low_frequencies: int | torch.Tensor) -> int | torch.Tensor:
    """First column of fastMRI's centre block: ``(num_cols - n + 1) // 2`` (elementwise for a
    tensor ``n``)."""
    return (num_cols - num_low_frequencies + 1) // 2


def center_mask_1d(num_cols: int, num_low_frequencies: int) -> np.ndarray:
    """fastMRI's centre block: ``float32`` ``(num_cols,)``, ones at ``[pad, pad + n)`` with
    ``n = num_low_frequencies`` and ``pad = (num_cols - n + 1) // 2`` (contains ``num_cols // 2``).
    """
    mask = np.zeros(num_cols, dtype=np.float32)
    pad = center_start(num_cols, num_low_frequencies)
    mask[pad : pad + num_low_frequencies] = 1
    return mask


def calibration_columns(width: int, num_low_frequencies: torch.Tensor) -> torch.Tensor:
    """Boolean ``(B, 1, 1, W)`` selecting the centre calibration columns.

    Uses fastMRI's centring: the region starts at ``(W - n + 1) // 2``.
    """
    n = num_low_frequencies.reshape(-1, 1)  # (B, 1)
    start = center_start(width, n)  # (B, 1)
    cols = torch.arange(width, device=n.device).reshape(1, -1)  # (1, W)
    return ((cols >= start) & (cols < start + n)).reshape(-1, 1, 1, width)


def center_run_length(mask: torch.Tensor) -> int:
    """Width of the contiguous sampled run of columns through the centre column.

    Args:
        mask: column mask, ``(W,)``; nonzero where sampled.

    Returns:
        The run length, 0 when the centre column ``W // 2`` is not sampled.
    """
    sampled = (mask != 0).tolist()
    centre = len(sampled) // 2
    if not sampled or not sampled[centre]:
        return 0
    left = centre
    while left > 0 and sampled[left - 1]:
        left -= 1
    right = centre
    while right + 1 < len(sampled) and sampled[right + 1]:
        right += 1
    return right - left + 1


def calibration_block(height: int, num_low_frequencies: int) -> tuple[int, int]:
    """ESPIRiT's ``(rows, cols)`` calibration block for ``n`` calibration columns.

    ``rows = min(height, max(n, MIN_CALIB_ROWS))``, ``cols = n``.
    """
    n = int(num_low_frequencies)
    return min(height, max(n, MIN_CALIB_ROWS)), n
