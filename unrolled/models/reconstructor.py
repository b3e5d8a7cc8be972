"""Every reconstruction method is a :class:`Reconstructor` returning a :class:`Reconstruction`.

The trained network (:class:`~unrolled.models.unrolled.UnrolledNet`, fastMRI's E2E-VarNet
adapter), the classical methods (zero-filled, CG-SENSE), compressed sensing and the
zero-shot method are all called the same way::

    out = method(kspace, mask, num_low_frequencies, keys=keys)   # -> Reconstruction

so inference, studies and the command-line tools run any of them without asking which one
it is. What differs between methods is a capability, declared by a protocol of its own
(:class:`RecordsHistories`: the method fits itself per slice and keeps its training curves),
never a method's type or config name.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch


@dataclass
class Reconstruction:
    """What a :class:`Reconstructor` returns.

    Attributes:
        image: RSS magnitude image, ``(B, H, W)`` float32 (full k-space size;
            crop to the recon size for metrics).
        kspace: final coil k-space, ``(B, C, H, W)`` complex64.
        maps: coil sensitivities used, ``(B, C, H, W)`` complex64, or ``(B, M, C, H, W)`` for
            ``M`` sets of ESPIRiT maps (soft-SENSE); empty, shape ``(0,)``, for a method
            without maps, e.g. zero-filled.
        cascades: RSS images after each cascade, each ``(B, H, W)``; empty
            unless requested (and for methods without cascades).
    """

    image: torch.Tensor
    kspace: torch.Tensor
    maps: torch.Tensor
    cascades: list[torch.Tensor]


@runtime_checkable
class Reconstructor(Protocol):
    """A reconstruction method: undersampled multicoil k-space in, an image out.

    Args (of the call):
        kspace: measured coil k-space, zero where not sampled, ``(B, C, H, W)`` complex64.
        mask: the sampling mask, ``(B, 1, 1, W)`` (Cartesian columns) or ``(B, 1, H, W)``,
            1 where sampled.
        num_low_frequencies: width of the calibration region (ACS) per sample, ``(B,)``
            (see :mod:`unrolled.physics.calibration`).
        keys: ``(file name, slice)`` per sample, to cache per-slice work (ESPIRiT maps);
            ``None`` caches nothing.
        return_cascades: also return the image after each cascade (networks only).
    """

    def __call__(
        self,
        kspace: torch.Tensor,
        mask: torch.Tensor,
        num_low_frequencies: torch.Tensor,
        keys: Sequence[Hashable] | None = None,
        return_cascades: bool = False,
    ) -> Reconstruction: ...


@runtime_checkable
class RecordsHistories(Protocol):
    """The capability of a method that fits itself to each slice (the zero-shot method):
    ``histories`` holds one training history per slice fitted, in the order fitted, until a
    caller takes them out (e.g. to write a volume's training curves)."""

    histories: list[Any]
