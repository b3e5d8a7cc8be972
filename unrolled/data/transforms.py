"""Turn a stored slice (:class:`RawSlice`) into a training/inference :class:`Sample`.

The semantics follow ``fastmri.data.transforms.VarNetDataTransform``:

- the mask seed is ``tuple(map(ord, fname))`` when ``use_seed`` is set, so
  every slice of a volume, in every epoch, gets the same mask (as the
  fastMRI validation and test masks do);
- mask columns outside ``[padding_left, padding_right)`` are zeroed, as in
  ``fastmri.data.transforms.apply_mask``;
- the masked k-space is ``kspace * mask + 0.0`` (the ``+ 0.0`` drops the sign
  of zeros).

Differences, all on inputs fastMRI does not handle: a stored test-set mask
always wins over ``mask_func`` (the k-space is already undersampled); with
neither, the mask is all ones (fully sampled); ``num_low_frequencies`` of a
stored or all-ones mask is read from the ``num_low_frequency`` attribute or
counted as the contiguous sampled run around the centre column (fastMRI
returns 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from unrolled.data.fastmri_io import RawSlice, reference_crop_size
from unrolled.data.sample import Sample
from unrolled.physics.calibration import center_run_length

MaskFunc = Callable[..., tuple[torch.Tensor, int]]
"""``mask_func(shape, offset=None, seed=None) -> (mask, num_low_frequencies)``.

``shape`` is the complex k-space shape ``(..., H, W)``; ``mask`` is float32
``(1, W)`` (1D, phase-encoding columns) or ``(H, W)`` (2D).
"""


def zero_padding(mask: torch.Tensor, padding_left: int, padding_right: int) -> torch.Tensor:
    """A copy of ``mask`` with the columns outside ``[left, right)`` set to 0.

    Args:
        mask: ``(..., W)``.
        padding_left: first acquired column (clipped to ``[0, W]``).
        padding_right: one past the last acquired column (clipped to ``[0, W]``).

    Returns:
        The masked copy, same shape.
    """
    width = mask.shape[-1]
    left = min(max(int(padding_left), 0), width)
    right = min(max(int(padding_right), left), width)
    out = mask.clone()
    out[..., :left] = 0
    out[..., right:] = 0
    return out


class UnrolledTransform:
    """``RawSlice -> Sample``: mask the k-space and package the slice.

    Args:
        mask_func: mask generator (``unrolled.physics.masks``); ``None``
            keeps the stored test-set mask or, without one, samples fully.
        use_seed: seed ``mask_func`` with ``tuple(map(ord, fname))`` so masks
            repeat per volume (validation/test); ``False`` draws a new mask
            per call (training).
    """

    def __init__(self, mask_func: MaskFunc | None = None, use_seed: bool = True) -> None:
        self.mask_func = mask_func
        self.use_seed = use_seed

    def __repr__(self) -> str:
        return f"UnrolledTransform(mask_func={self.mask_func!r}, use_seed={self.use_seed})"

    def __call__(self, raw: RawSlice, seed: int | tuple[int, ...] | None = None) -> Sample:
        """Mask one slice.

        Args:
            raw: a slice from :func:`unrolled.data.fastmri_io.read_slice`.
            seed: explicit mask seed (overrides ``use_seed``); the training
                data module passes ``(seed, epoch, index)`` so that masks are
                random yet reproducible across workers and resumed runs.

        Returns:
            A single-slice :class:`Sample`: ``kspace`` ``(C, H, W)`` complex64
            (zero where not sampled), ``mask`` ``(1, H, W)`` float32, ``target``
            ``(h, w)`` float32 or ``(0, 0)``, scalar ``max_value``,
            ``num_low_frequencies`` and ``slice_num``, ``crop_size`` ``(2,)``.
        """
        kspace = raw.kspace  # (C, H, W) complex64
        if kspace.ndim != 3 or not kspace.is_complex():
            raise ValueError(
                f"{raw.fname}: expected complex k-space (C, H, W), got {tuple(kspace.shape)} "
                f"{kspace.dtype}"
            )
        _, height, width = kspace.shape
        attrs = raw.attrs
        mask, num_low = self._mask(raw, height, width, seed)  # (1, W) or (H, W)
        mask = zero_padding(mask, attrs.get("padding_left", 0), attrs.get("padding_right", width))
        if num_low is None:  # stored or all-ones mask: count the centre run
            num_low = int(attrs.get("num_low_frequency", center_run_length(mask.amax(dim=0))))
        mask = mask.expand(height, width).unsqueeze(0).contiguous()  # (1, H, W)
        masked = (kspace * mask).add_(0.0)  # (C, H, W) complex64; in place: no 2nd copy

        if raw.target is not None:
            target = raw.target.to(torch.float32)  # (h, w)
            max_value = float(attrs["max"]) if "max" in attrs else float(target.max())
        else:
            target = torch.zeros(0, 0, dtype=torch.float32)
            max_value = 0.0
        rx, ry = tuple(attrs.get("recon_size", (height, width)))[:2]
        return Sample(
            kspace=masked.to(torch.complex64),
            mask=mask,
            target=target,
            max_value=torch.tensor(max_value, dtype=torch.float32),
            num_low_frequencies=torch.tensor(num_low, dtype=torch.int64),
            crop_size=torch.tensor(reference_crop_size((height, width), (rx, ry))),
            slice_num=torch.tensor(raw.slice_num, dtype=torch.int64),
            fname=raw.fname,
        )

    def _mask(
        self, raw: RawSlice, height: int, width: int, seed: int | tuple[int, ...] | None = None
    ) -> tuple[torch.Tensor, int | None]:
        """The mask before padding, ``(1, W)`` or ``(H, W)``, and its centre width."""
        if raw.mask is not None:
            return raw.mask.to(torch.float32).reshape(1, width), None
        if self.mask_func is None:
            return torch.ones(1, width, dtype=torch.float32), None
        if seed is None and self.use_seed:
            seed = tuple(map(ord, raw.fname))
        mask, num_low = self.mask_func(tuple(raw.kspace.shape), None, seed)
        return _as_mask(mask, height, width), int(num_low)


def _as_mask(mask: Any, height: int, width: int) -> torch.Tensor:
    """Coerce a mask function's output to ``(1, W)`` or ``(H, W)`` float32."""
    mask = torch.as_tensor(mask, dtype=torch.float32)
    if mask.numel() == width:
        return mask.reshape(1, width)
    if mask.numel() == height * width and mask.shape[-1] == width:
        return mask.reshape(height, width)
    raise ValueError(
        f"mask_func returned shape {tuple(mask.shape)}; expected (1, {width}) or "
        f"({height}, {width})"
    )
