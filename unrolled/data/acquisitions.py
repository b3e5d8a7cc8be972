"""Read N acquisitions of the same slices, for multi-acquisition fusion.

Two layouts are accepted:

1. **N fastMRI multicoil files**, one per acquisition, in the released layout
   (:mod:`unrolled.data.fastmri_io`), all with the same ``kspace`` shape
   ``(slices, coils, H, W)`` and recon size. The first file is the
   reference: its frame is the frame of the fused image and its reference
   image (``reconstruction_rss``, if any) is the one that scores it.
2. **One file with an acquisition axis**: fastMRI's layout with

   - ``kspace``: ``(acquisitions, slices, coils, H, W)`` complex64;
   - ``mask`` (optional): ``(acquisitions, W)``, the phase-encoding columns
     each acquisition kept (its k-space is then already undersampled, as in
     fastMRI's test set);
   - ``ismrmrd_header``: the usual XML (one for all acquisitions);
   - ``reconstruction_rss`` (optional): ``(slices, h, w)`` float32, the
     reference in the frame of acquisition 0;
   - attributes as in fastMRI (``max``, ``acquisition``, ``num_low_frequency``, ...).

Masks follow :class:`~unrolled.data.transforms.UnrolledTransform`: a stored
mask is used as is; otherwise ``mask_func`` undersamples the (fully sampled)
k-space, seeded by the file name *and* the acquisition index, so that every
acquisition gets its own, reproducible mask. Every problem is one
:class:`~unrolled.data.errors.DataError` naming the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from unrolled.data.errors import DataError

# The fastMRI file helpers (errors as DataError naming the file) are shared with fastmri_io.
from unrolled.data.fastmri_io import (
    RawSlice,
    _check_finite,
    _dataset,
    _header,
    _open,
    _plain,
    _read,
    read_slice,
    read_volume_info,
    reference_crop_size,
)
from unrolled.data.transforms import MaskFunc, UnrolledTransform

REFERENCE_KEY = "reconstruction_rss"


@dataclass(frozen=True, eq=False)
class AcquisitionSet:
    """N acquisitions of the same slices, checked but not loaded.

    Attributes:
        paths: the N files, or the one file with an acquisition axis.
        num_acquisitions: ``N``.
        num_slices: slices per acquisition.
        slice_shape: k-space shape of one slice of one acquisition ``(C, H, W)``.
        crop_size: recon size ``(h, w)`` (clipped to the k-space size).
        attrs: attributes of the reference (first) file, plus ``padding_left``,
            ``padding_right``, ``encoding_size``, ``recon_size``.
    """

    paths: tuple[Path, ...]
    num_acquisitions: int
    num_slices: int
    slice_shape: tuple[int, int, int]
    crop_size: tuple[int, int]
    attrs: dict[str, Any]

    @property
    def stacked(self) -> bool:
        """Whether the acquisitions share one file (an acquisition axis)."""
        return len(self.paths) == 1

    @property
    def names(self) -> list[str]:
        """One name per acquisition: the file name, or ``name[n]`` for a stacked file."""
        if self.stacked:
            return [f"{self.paths[0].name}[{n}]" for n in range(self.num_acquisitions)]
        return [p.name for p in self.paths]


@dataclass(frozen=True)
class AcquisitionSlice:
    """One slice of every acquisition, masked.

    Attributes:
        kspace: undersampled coil k-space ``(N, C, H, W)`` complex64, zero
            where not sampled.
        masks: ``(N, 1, H, W)`` float32, 1.0 where sampled.
        num_low_frequencies: calibration width common to all acquisitions.
        target: reference of acquisition 0 ``(h, w)`` float32, or ``None``.
        max_value: data range for metrics (the ``max`` attribute, else the
            target's maximum; 0 without a target).
        slice_num: slice index.
    """

    kspace: torch.Tensor
    masks: torch.Tensor
    num_low_frequencies: int
    target: torch.Tensor | None
    max_value: float
    slice_num: int


def open_acquisitions(paths: Sequence[str | PathLike[str]]) -> AcquisitionSet:
    """Check the inputs' structure and agreement, without loading k-space.

    Args:
        paths: two or more fastMRI multicoil files (same geometry), or one
            file with an acquisition axis.

    Raises:
        DataError: a file is unreadable, not multicoil, holds one acquisition
            only, or disagrees with the first file in shape or recon size.
        FileNotFoundError: no paths given.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise FileNotFoundError("no input files given: pass inputs=[a.h5,b.h5,...]")
    seen: set[Path] = set()
    for p in paths:
        key = p.resolve()
        if key in seen:
            raise DataError(p, "listed twice; each acquisition must be a different file")
        seen.add(key)
    if len(paths) == 1:
        return _open_stacked(paths[0])
    infos = [read_volume_info(p) for p in paths]
    first = infos[0]
    for info in infos:
        if info.num_coils is None:
            raise DataError(info.path, "singlecoil k-space; fusion needs multicoil files")
        if info.kspace_shape != first.kspace_shape or info.crop_size != first.crop_size:
            raise DataError(
                info.path,
                f"kspace {info.kspace_shape} with recon size {info.crop_size} differs from "
                f"{first.fname}'s {first.kspace_shape} with {first.crop_size}; acquisitions "
                "must share slices, coils, matrix and recon size",
            )
    return AcquisitionSet(
        paths=tuple(paths),
        num_acquisitions=len(paths),
        num_slices=first.num_slices,
        slice_shape=first.slice_shape,
        crop_size=first.crop_size,
        attrs=first.metadata(),
    )


def read_acquisitions(
    aset: AcquisitionSet, slice_idx: int, mask_func: MaskFunc | None = None
) -> AcquisitionSlice:
    """Read and mask one slice of every acquisition.

    Args:
        aset: from :func:`open_acquisitions`.
        slice_idx: slice index.
        mask_func: undersamples acquisitions without a stored mask (seeded by
            file name and acquisition index); ``None`` keeps them fully sampled.

    Raises:
        DataError: a slice is unreadable or holds NaN/Inf values.
    """
    transform = UnrolledTransform(mask_func, use_seed=True)
    raws = (
        _read_stacked(aset, slice_idx)
        if aset.stacked
        else [read_slice(p, slice_idx) for p in aset.paths]
    )
    samples = [transform(raw, seed=(*map(ord, raw.fname), n)) for n, raw in enumerate(raws)]
    first = samples[0]
    target = first.target if first.target.numel() else None
    return AcquisitionSlice(
        kspace=torch.stack([s.kspace for s in samples]),  # (N, C, H, W)
        masks=torch.stack([s.mask for s in samples]),  # (N, 1, H, W)
        num_low_frequencies=min(int(s.num_low_frequencies) for s in samples),
        target=target,
        max_value=float(first.max_value),
        slice_num=slice_idx,
    )


# --- one file with an acquisition axis ---------------------------------------


def _open_stacked(path: Path) -> AcquisitionSet:
    with _open(path) as hf:
        ks = _dataset(path, hf, "kspace")
        shape = tuple(int(n) for n in ks.shape)
        if ks.ndim == 4:
            raise DataError(
                path,
                "holds a single acquisition (kspace (slices, coils, H, W)); pass two or more "
                "files, or one file whose kspace is (acquisitions, slices, coils, H, W)",
            )
        if ks.ndim != 5:
            raise DataError(
                path,
                f"dataset 'kspace' has shape {shape}; expected (acquisitions, slices, coils, H, W)",
            )
        if ks.dtype.kind != "c":
            raise DataError(path, f"dataset 'kspace' has dtype {ks.dtype}, expected complex64")
        if 0 in shape:
            raise DataError(path, f"dataset 'kspace' is empty (shape {shape})")
        n, slices, coils, h, w = shape
        if n < 2:
            raise DataError(path, f"holds {n} acquisition; fusion needs two or more")
        header = _header(path, hf)
        if header.num_coils is not None and header.num_coils != coils:
            raise DataError(
                path,
                f"coil count mismatch: 'kspace' has {coils} coils but ismrmrd_header "
                f"receiverChannels is {header.num_coils}",
            )
        crop = reference_crop_size((h, w), header.recon_size[:2])
        if "mask" in hf:
            _stored_masks(path, hf, n, w)
        if REFERENCE_KEY in hf:
            ref = _dataset(path, hf, REFERENCE_KEY)
            if tuple(ref.shape) != (slices, *crop):
                raise DataError(
                    path,
                    f"dataset '{REFERENCE_KEY}' has shape {tuple(ref.shape)}, expected "
                    f"{(slices, *crop)}",
                )
        attrs = {str(k): _plain(v) for k, v in hf.attrs.items()}
    attrs = {
        "padding_left": header.padding_left,
        "padding_right": header.padding_right,
        "encoding_size": header.encoding_size,
        "recon_size": header.recon_size,
        **attrs,
    }
    return AcquisitionSet((path,), n, slices, (coils, h, w), crop, attrs)


def _read_stacked(aset: AcquisitionSet, slice_idx: int) -> list[RawSlice]:
    path = aset.paths[0]
    if not 0 <= slice_idx < aset.num_slices:
        raise IndexError(f"{path}: slice {slice_idx} out of range [0, {aset.num_slices})")
    with _open(path) as hf:
        kspace = _read(path, hf, "kspace", (slice(None), slice_idx))  # (N, C, H, W)
        _check_finite(path, kspace, f"kspace[:, {slice_idx}]")
        masks = _stored_masks(path, hf, aset.num_acquisitions, kspace.shape[-1])
        target = None
        if REFERENCE_KEY in hf:
            array = _read(path, hf, REFERENCE_KEY, slice_idx)
            _check_finite(path, array, f"{REFERENCE_KEY}[{slice_idx}]")
            target = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return [
        RawSlice(
            kspace=torch.from_numpy(np.ascontiguousarray(kspace[n], dtype=np.complex64)),
            target=target if n == 0 else None,
            mask=None if masks is None else masks[n],
            attrs=aset.attrs,
            fname=path.name,
            slice_num=slice_idx,
        )
        for n in range(aset.num_acquisitions)
    ]


def _stored_masks(path: Path, hf: h5py.File, n: int, width: int) -> torch.Tensor | None:
    """The stored ``mask`` ``(N, W)`` as float32 0/1, checked; ``None`` if absent."""
    if "mask" not in hf:
        return None
    ds = _dataset(path, hf, "mask")
    if tuple(ds.shape) != (n, width):
        raise DataError(
            path,
            f"dataset 'mask' has shape {tuple(ds.shape)}, expected {(n, width)} "
            "(acquisitions, k-space width)",
        )
    mask = _read(path, hf, "mask")
    if mask.dtype.kind not in "biuf":
        raise DataError(path, f"dataset 'mask' has dtype {mask.dtype}, expected bool or numeric")
    if not np.isfinite(mask.astype(np.float64)).all():
        raise DataError(path, "dataset 'mask' contains NaN or Inf values")
    empty = [i for i in range(n) if not mask[i].any()]
    if empty:
        raise DataError(path, f"dataset 'mask' is all zeros for acquisition {empty[0]}")
    return torch.from_numpy((mask != 0).astype(np.float32))
