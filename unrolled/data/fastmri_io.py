"""Read and validate one fastMRI HDF5 file, exactly in the released layout.

A fastMRI file holds

- ``kspace``: ``(slices, coils, H, W)`` complex64 (singlecoil: ``(slices, H, W)``);
- ``ismrmrd_header``: XML with the encoded/recon matrix sizes and the
  phase-encoding limits (from which ``padding_left``/``padding_right`` follow);
- ``reconstruction_rss`` (multicoil) and/or ``reconstruction_esc``
  (singlecoil): ``(slices, h, w)`` float32 references at the recon size;
- test-set files instead carry ``mask``: ``(W,)``, the phase-encoding columns
  that were kept, and no reference;
- attributes such as ``max``, ``norm``, ``acquisition``, ``patient_id`` (and
  ``acceleration``, ``num_low_frequency`` on test-set files).

Everything that is wrong with a file is reported as one :class:`DataError`
whose message starts with the file path. Functions here open the file for the
duration of the call only, so data sets built on them hold no HDF5 handle and
work with worker processes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from unrolled.data.errors import DataError
from unrolled.data.header import HeaderInfo, parse_ismrmrd_header

RECON_KEYS = ("reconstruction_rss", "reconstruction_esc")
"""Names of the fully sampled references, multicoil (RSS) and singlecoil (ESC)."""


def reference_crop_size(kspace_hw: tuple[int, int], recon_hw: tuple[int, int]) -> tuple[int, int]:
    """The shape ``(h, w)`` of a file's reference and of every reconstruction of it.

    fastMRI's rule: the recon matrix ``reconSpace`` ``(rh, rw)`` from the header, except
    where the k-space is narrower than it (``W < rw``, the brain FLAIR files with ``W = 213``
    and a 320 x 320 recon matrix), where the crop is square, ``(W, W)``: the "FLAIR 203"
    branch of ``fastmri.pl_modules.VarNetModule.test_step`` and
    ``fastmri.data.transforms.UnetDataTransform``, and the ``(slices, 213, 213)`` references
    of those files. Sides are clipped to the k-space (``H``, ``W``).

    Args:
        kspace_hw: k-space ``(H, W)``.
        recon_hw: recon matrix ``(rh, rw)`` (``reconSpace`` ``x``, ``y``).

    Returns:
        ``(h, w)``: ``(min(rh, H), rw)`` normally, ``(min(rh, W, H), W)`` when ``W < rw``.
    """
    height, width = (int(v) for v in kspace_hw)
    rh, rw = (int(v) for v in recon_hw)
    if width < rw:  # FLAIR-like: k-space narrower than the recon matrix
        return (min(rh, width, height), width)
    return (min(rh, height), rw)


def recon_key_for(challenge: str) -> str:
    """The reference dataset of a challenge, as in ``fastmri.data.SliceDataset``."""
    if challenge not in ("singlecoil", "multicoil"):
        raise ValueError(f"challenge must be 'singlecoil' or 'multicoil', got {challenge!r}")
    return "reconstruction_esc" if challenge == "singlecoil" else "reconstruction_rss"


@dataclass(frozen=True, eq=False)
class VolumeInfo:
    """Metadata of one fastMRI file, read without loading its k-space.

    Attributes:
        path: the file.
        num_slices: number of slices.
        num_coils: number of receiver coils, ``None`` for singlecoil files.
        kspace_shape: shape of dataset ``kspace``, ``(slices, C, H, W)`` or
            ``(slices, H, W)``.
        header: the parsed ``ismrmrd_header``.
        attrs: the file attributes as plain Python values.
        recon_keys: the reference datasets present (subset of :data:`RECON_KEYS`).
        has_mask: whether the file stores a test-set ``mask``.
    """

    path: Path
    num_slices: int
    num_coils: int | None
    kspace_shape: tuple[int, ...]
    header: HeaderInfo
    attrs: dict[str, Any] = field(default_factory=dict)
    recon_keys: tuple[str, ...] = ()
    has_mask: bool = False

    @property
    def fname(self) -> str:
        """File name without directory, the key of fastMRI's submission layout."""
        return self.path.name

    @property
    def slice_shape(self) -> tuple[int, int, int]:
        """k-space shape of one slice, ``(C, H, W)`` with ``C = 1`` for singlecoil."""
        h, w = self.kspace_shape[-2:]
        return (self.num_coils or 1, h, w)

    @property
    def encoding_size(self) -> tuple[int, int, int]:
        """Encoded matrix ``(x, y, z)`` from the header."""
        return self.header.encoding_size

    @property
    def recon_size(self) -> tuple[int, int, int]:
        """Reconstructed matrix ``(x, y, z)`` from the header."""
        return self.header.recon_size

    @property
    def padding_left(self) -> int:
        """First acquired column; a file attribute overrides the header, as in fastMRI."""
        return int(self.attrs.get("padding_left", self.header.padding_left))

    @property
    def padding_right(self) -> int:
        """One past the last acquired column (attribute overrides header)."""
        return int(self.attrs.get("padding_right", self.header.padding_right))

    @property
    def crop_size(self) -> tuple[int, int]:
        """Reference shape ``(h, w)``: the recon size, or ``(W, W)`` for k-space narrower
        than the recon matrix (fastMRI's brain FLAIR files); see :func:`reference_crop_size`.
        """
        return reference_crop_size(self.kspace_shape[-2:], self.recon_size[:2])

    def has_target(self, recon_key: str) -> bool:
        """Whether reference ``recon_key`` is stored."""
        return recon_key in self.recon_keys

    def metadata(self) -> dict[str, Any]:
        """The per-file metadata dict of ``fastmri.data.SliceDataset.raw_samples``."""
        return {
            "padding_left": self.header.padding_left,
            "padding_right": self.header.padding_right,
            "encoding_size": self.encoding_size,
            "recon_size": self.recon_size,
            **self.attrs,
        }


@dataclass(frozen=True, eq=False)
class RawSlice:
    """One slice as stored, before masking.

    Attributes:
        kspace: fully sampled (or, for test-set files, already undersampled)
            k-space, ``(C, H, W)`` complex64; singlecoil has ``C = 1``.
        target: reference, ``(h, w)`` float32, or ``None`` where absent.
        mask: stored test-set mask, ``(W,)`` float32 of 0/1, or ``None``.
        attrs: file attributes plus ``encoding_size``, ``recon_size``,
            ``padding_left``, ``padding_right`` (the ``attrs`` that fastMRI
            passes to its transforms).
        fname: file name without directory.
        slice_num: slice index within the volume.
    """

    kspace: torch.Tensor
    target: torch.Tensor | None
    mask: torch.Tensor | None
    attrs: dict[str, Any]
    fname: str
    slice_num: int


def read_volume_info(path: str | PathLike[str]) -> VolumeInfo:
    """Read and check a file's structure (shapes, dtypes, header, mask).

    Values of k-space and references are not read; :func:`validate_volume`
    does that, and :func:`read_slice` checks each slice it reads.

    Args:
        path: the fastMRI HDF5 file.

    Returns:
        The file's :class:`VolumeInfo`.

    Raises:
        DataError: the file is unreadable or not in the fastMRI layout.
    """
    path = Path(path)
    with _open(path) as hf:
        return _volume_info(path, hf)


def read_slice(
    source: str | PathLike[str] | h5py.File, slice_idx: int, recon_key: str | None = None
) -> RawSlice:
    """Read one slice, checking the file's structure and the slice's values.

    Args:
        source: a file path or an open ``h5py.File``.
        slice_idx: slice index, ``0 <= slice_idx < num_slices``.
        recon_key: reference to load; ``None`` picks ``reconstruction_esc``
            for singlecoil and ``reconstruction_rss`` for multicoil files.
            A missing reference gives ``target=None``.

    Returns:
        The :class:`RawSlice`.

    Raises:
        DataError: the file is unreadable, not in the fastMRI layout, or the
            slice holds NaN/Inf values.
        IndexError: ``slice_idx`` is out of range.
        ValueError: ``recon_key`` is not one of :data:`RECON_KEYS`.
    """
    if recon_key is not None and recon_key not in RECON_KEYS:
        raise ValueError(f"recon_key must be one of {RECON_KEYS}, got {recon_key!r}")
    if isinstance(source, h5py.File):
        return _read_slice(Path(source.filename), source, slice_idx, recon_key)
    path = Path(source)
    with _open(path) as hf:
        return _read_slice(path, hf, slice_idx, recon_key)


def read_reference_max(path: str | PathLike[str], recon_key: str) -> float:
    """Maximum of the whole reference volume ``recon_key`` of a file: the data range of
    fastMRI's metrics when the file has no ``max`` attribute.

    Raises:
        DataError: unreadable file, missing reference, or NaN / Inf values in it.
    """
    path = Path(path)
    with _open(path) as hf:
        ref = _read(path, hf, recon_key)  # (slices, h, w)
    _check_finite(path, ref, recon_key)
    return float(ref.max())


def validate_volume(path: str | PathLike[str]) -> VolumeInfo:
    """Check a whole file: its structure and that every value is finite.

    Reads one slice at a time, so memory stays at one slice.

    Raises:
        DataError: the first problem found.
    """
    path = Path(path)
    with _open(path) as hf:
        info = _volume_info(path, hf)
        for key in ("kspace", *info.recon_keys):
            for s in range(info.num_slices):
                _check_finite(path, _read(path, hf, key, s), f"{key}[{s}]")
        return info


# --- internals -------------------------------------------------------------


@contextlib.contextmanager
def _open(path: Path) -> Iterator[h5py.File]:
    if not path.exists():
        raise DataError(path, "no such file")
    try:
        hf = h5py.File(path, "r")
    except OSError as e:
        raise DataError(path, f"cannot open as HDF5, corrupt or truncated ({_short(e)})") from None
    with hf:
        yield hf


def _short(e: BaseException) -> str:
    return " ".join(str(e).split())[:200]


def _read(path: Path, hf: h5py.File, key: str, idx: Any = ()) -> np.ndarray:
    try:
        return np.asarray(hf[key][idx])
    except (OSError, KeyError, RuntimeError) as e:
        raise DataError(path, f"cannot read dataset '{key}', corrupt file ({_short(e)})") from None


def _dataset(path: Path, hf: h5py.File, key: str) -> h5py.Dataset:
    if key not in hf:
        raise DataError(path, f"dataset '{key}' is missing")
    ds = hf[key]
    if not isinstance(ds, h5py.Dataset):
        raise DataError(path, f"'{key}' is not a dataset")
    return ds


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | np.bytes_):
        return value.decode(errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _header(path: Path, hf: h5py.File) -> HeaderInfo:
    _dataset(path, hf, "ismrmrd_header")
    xml = _read(path, hf, "ismrmrd_header")
    raw = xml.item() if xml.shape == () else None
    if not isinstance(raw, bytes | str):
        raise DataError(path, "invalid ismrmrd_header: not a scalar XML string")
    try:
        return parse_ismrmrd_header(raw)
    except ValueError as e:
        problem = str(e) if "ismrmrd_header" in str(e) else f"invalid ismrmrd_header: {e}"
        raise DataError(path, problem) from None


def _volume_info(path: Path, hf: h5py.File) -> VolumeInfo:
    ks = _dataset(path, hf, "kspace")
    shape = tuple(int(n) for n in ks.shape)
    if ks.ndim not in (3, 4):
        raise DataError(
            path, f"dataset 'kspace' has rank {ks.ndim} (shape {shape}), expected 3 or 4"
        )
    if ks.dtype.kind != "c":
        raise DataError(path, f"dataset 'kspace' has dtype {ks.dtype}, expected complex64")
    if 0 in shape:
        raise DataError(path, f"dataset 'kspace' is empty (shape {shape})")
    header = _header(path, hf)
    num_slices, (h, w) = shape[0], shape[-2:]
    num_coils = shape[1] if ks.ndim == 4 else None
    if num_coils is not None and header.num_coils is not None and header.num_coils != num_coils:
        raise DataError(
            path,
            f"coil count mismatch: 'kspace' has {num_coils} coils but ismrmrd_header "
            f"receiverChannels is {header.num_coils}",
        )
    info = VolumeInfo(
        path=path,
        num_slices=num_slices,
        num_coils=num_coils,
        kspace_shape=shape,
        header=header,
        attrs={str(k): _plain(v) for k, v in hf.attrs.items()},
        recon_keys=tuple(k for k in RECON_KEYS if k in hf),
        has_mask="mask" in hf,
    )
    for key in info.recon_keys:
        ds = _dataset(path, hf, key)
        expected = (num_slices, *info.crop_size)
        if tuple(ds.shape) != expected:
            raise DataError(
                path,
                f"dataset '{key}' has shape {tuple(ds.shape)}, expected {expected} "
                f"(slices, recon size {info.recon_size[:2]} for k-space {(h, w)}, "
                "(W, W) where W is below the recon width, as fastMRI)",
            )
        if ds.dtype.kind not in "fiu":
            raise DataError(path, f"dataset '{key}' has dtype {ds.dtype}, expected float32")
    if info.has_mask:
        _mask(path, hf, w)
    return info


def _mask(path: Path, hf: h5py.File, width: int) -> torch.Tensor:
    ds = _dataset(path, hf, "mask")
    if ds.ndim != 1 or ds.shape[0] != width:
        raise DataError(
            path, f"dataset 'mask' has shape {tuple(ds.shape)}, expected ({width},) (k-space width)"
        )
    mask = _read(path, hf, "mask")
    if mask.dtype.kind not in "biuf":
        raise DataError(path, f"dataset 'mask' has dtype {mask.dtype}, expected bool or numeric")
    if not np.isfinite(mask.astype(np.float64)).all():
        raise DataError(path, "dataset 'mask' contains NaN or Inf values")
    if not mask.any():
        raise DataError(path, "dataset 'mask' is all zeros (empty mask)")
    return torch.from_numpy((mask != 0).astype(np.float32))


def _check_finite(path: Path, array: np.ndarray, what: str) -> None:
    if not np.isfinite(array).all():
        raise DataError(path, f"{what} contains NaN or Inf values")


def _read_slice(path: Path, hf: h5py.File, slice_idx: int, recon_key: str | None) -> RawSlice:
    info = _volume_info(path, hf)
    if not 0 <= slice_idx < info.num_slices:
        raise IndexError(f"{path}: slice {slice_idx} out of range [0, {info.num_slices})")
    kspace = _read(path, hf, "kspace", slice_idx)  # (C, H, W) or (H, W)
    _check_finite(path, kspace, f"kspace[{slice_idx}]")
    if info.num_coils is None:
        kspace = kspace[None]  # (1, H, W)
    if recon_key is None:
        recon_key = recon_key_for("singlecoil" if info.num_coils is None else "multicoil")
    target = None
    if info.has_target(recon_key):
        array = _read(path, hf, recon_key, slice_idx)  # (h, w)
        _check_finite(path, array, f"{recon_key}[{slice_idx}]")
        target = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    mask = _mask(path, hf, info.kspace_shape[-1]) if info.has_mask else None
    return RawSlice(
        kspace=torch.from_numpy(np.ascontiguousarray(kspace, dtype=np.complex64)),
        target=target,
        mask=mask,
        attrs=info.metadata(),
        fname=info.fname,
        slice_num=slice_idx,
    )
