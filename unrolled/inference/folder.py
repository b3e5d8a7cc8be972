"""Reconstruct a folder of fastMRI files with any method, into fastMRI's submission layout.

The logic behind ``unrolled-reconstruct``. Inputs are fastMRI files as released:

- fully sampled files (train/val): the k-space is undersampled with the
  configured mask function, seeded per file with ``tuple(map(ord, fname))``
  (fastMRI's validation/test seeding), so every run draws the same masks;
- test-set files: their stored ``mask`` is used (the k-space is already
  undersampled), whatever mask function is configured.

Volumes are processed one at a time (memory stays at one volume), their
slices in batches of equal shape, and assembled in slice order. Each output
is ``output_dir / fname`` with the dataset ``reconstruction`` of shape
``(slices, h, w)`` float32 at the recon size, as ``fastmri.save_reconstructions``
writes it, plus the attributes ``acquisition`` and, where known,
``acceleration`` (which ``unrolled-evaluate`` can filter on).

Outputs are all-or-nothing: every volume is first written (atomically, by
:mod:`unrolled.data.writer`) into a hidden staging folder inside
``output_dir``, and moved into place only once all volumes succeeded; any
error removes the staging folder and leaves ``output_dir`` as it was.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unrolled.data.errors import DataError
from unrolled.data.fastmri_io import VolumeInfo, read_slice, read_volume_info
from unrolled.data.publish import publish
from unrolled.data.sample import Sample, collate_samples
from unrolled.data.transforms import MaskFunc, UnrolledTransform
from unrolled.data.writer import write_reconstruction
from unrolled.inference.runner import reconstruct
from unrolled.models.reconstructor import Reconstructor

PRECISIONS = {"32": None, "32-true": None, "bf16": torch.bfloat16, "bf16-mixed": torch.bfloat16}
"""Accepted ``precision`` values and their autocast dtype (``None``: plain float32)."""


@dataclass(frozen=True)
class ReconstructionSummary:
    """What :func:`reconstruct_volumes` did.

    Attributes:
        paths: the files written, in input order.
        num_slices: slices reconstructed in all.
        seconds: wall time of reading, reconstructing and writing.
    """

    paths: tuple[Path, ...]
    num_slices: int
    seconds: float

    @property
    def slices_per_second(self) -> float:
        return self.num_slices / self.seconds if self.seconds > 0 else float("inf")


def list_volumes(
    input_dir: str | PathLike[str],
    challenge: str = "multicoil",
    shard: int = 0,
    num_shards: int = 1,
) -> list[VolumeInfo]:
    """Read and check the structure of every ``*.h5`` file of a folder (hidden files skipped).

    Args:
        input_dir: a folder of fastMRI files, or a single file.
        challenge: ``"multicoil"`` (k-space of rank 4) or ``"singlecoil"`` (rank 3).
        shard, num_shards: only the files ``i`` with ``i % num_shards == shard`` in the
            name-sorted list: the ``num_shards`` shards of a folder are disjoint and cover it
            exactly once (one per task of a job array). A shard may be empty.

    Returns:
        The (shard's) files' :class:`VolumeInfo`, sorted by name.

    Raises:
        ValueError: ``num_shards < 1`` or ``shard`` not in ``[0, num_shards)``.
        DataError: the folder is missing or holds no ``.h5`` file, a file (of the shard) is
            unreadable, not in the fastMRI layout or of the other challenge.
    """
    if challenge not in ("multicoil", "singlecoil"):
        raise ValueError(f"challenge must be 'multicoil' or 'singlecoil', got {challenge!r}")
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ValueError(f"shard must be in [0, num_shards), got shard={shard} of {num_shards}")
    root = Path(input_dir)
    if not root.exists():
        raise DataError(root, "input directory does not exist")
    if root.is_file():
        files = [root]
    else:
        files = sorted(p for p in root.glob("*.h5") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DataError(root, "input directory contains no .h5 files")
    volumes = [read_volume_info(f) for f in files[shard::num_shards]]
    for vol in volumes:
        if (vol.num_coils is None) != (challenge == "singlecoil"):
            raise DataError(
                vol.path,
                f"k-space has rank {len(vol.kspace_shape)} but challenge is {challenge!r} "
                "(expected rank 4 for multicoil, 3 for singlecoil)",
            )
    return volumes


def check_outputs(
    volumes: Sequence[VolumeInfo], output_dir: str | PathLike[str], overwrite: bool = False
) -> list[Path]:
    """The output path of every volume; without ``overwrite``, refuse if any exists.

    Raises:
        FileExistsError: naming every output that exists already.
    """
    out = Path(output_dir)
    paths = [out / v.fname for v in volumes]
    if not overwrite:
        existing = [p.name for p in paths if p.exists()]
        if existing:
            raise FileExistsError(
                f"{out}: {len(existing)} of {len(paths)} outputs exist already "
                f"({', '.join(existing)}); pass overwrite=true to replace them"
            )
    return paths


def resolve_device(device: str) -> torch.device:
    """``"auto"`` picks CUDA when available, else the CPU; anything else must be usable.

    Raises:
        ValueError: the device is unknown or not available.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"device: unknown device {device!r} ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} requested but CUDA is not available")
    return dev


def autocast_dtype(precision: Any) -> torch.dtype | None:
    """The autocast dtype of a ``precision`` setting (32 or bf16).

    Raises:
        ValueError: any other value.
    """
    key = str(precision)
    if key not in PRECISIONS:
        raise ValueError(f"precision: expected one of 32, bf16, got {precision!r}")
    return PRECISIONS[key]


def output_attrs(vol: VolumeInfo, mask_func: MaskFunc | None) -> dict[str, Any]:
    """Attributes stored with a reconstruction: ``acquisition`` and ``acceleration``.

    The acceleration is the file's own attribute (test-set files) or, for
    fully sampled files, the mask function's when it has a single one.
    """
    attrs: dict[str, Any] = {}
    if "acquisition" in vol.attrs:
        attrs["acquisition"] = vol.attrs["acquisition"]
    if "acceleration" in vol.attrs:
        attrs["acceleration"] = vol.attrs["acceleration"]
    elif not vol.has_mask and mask_func is not None:
        accelerations = set(getattr(mask_func, "accelerations", ()))
        if len(accelerations) == 1:
            attrs["acceleration"] = accelerations.pop()
    return attrs


def volume_batches(
    vol: VolumeInfo, transform: UnrolledTransform, batch_size: int = 1
) -> Iterator[Sample]:
    """The slices of a volume, masked by ``transform``, in slice order, ``batch_size`` at a time.

    Raises:
        ValueError: if ``batch_size`` is not positive.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    for start in range(0, vol.num_slices, batch_size):
        stop = min(start + batch_size, vol.num_slices)
        yield collate_samples([transform(read_slice(vol.path, s)) for s in range(start, stop)])


@torch.no_grad()
def reconstruct_volume(
    method: Reconstructor,
    vol: VolumeInfo,
    transform: UnrolledTransform,
    batch_size: int = 1,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> np.ndarray:
    """Reconstruct every slice of one volume.

    Args:
        method: any :class:`~unrolled.models.reconstructor.Reconstructor`, already on
            ``device`` and in eval mode.
        vol: the input file.
        transform: masks each slice (see :class:`UnrolledTransform`).
        batch_size: slices per forward pass.
        device: where to run.
        dtype: autocast dtype (``torch.bfloat16``), ``None`` for float32.

    Returns:
        The reconstruction, ``(slices, h, w)`` float32 at the recon size.

    Raises:
        DataError: a slice is unreadable or holds NaN/Inf values, the method
            rejects the input (a ``ValueError``, e.g. a calibration region too
            small for ESPIRiT) or returns non-finite values.
    """
    device = torch.device(device)
    volume = np.empty((vol.num_slices, *vol.crop_size), dtype=np.float32)  # (S, h, w)
    for batch in volume_batches(vol, transform, batch_size):
        batch = batch.to(device)
        try:
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                image, _ = reconstruct(method, batch)  # (B, h, w)
        except ValueError as e:  # the method cannot handle this input (e.g. ESPIRiT calibration)
            slices = batch.slice_num.tolist()
            raise DataError(vol.path, f"cannot reconstruct slices {slices}: {e}") from None
        image = image.float().cpu().numpy()
        if not np.isfinite(image).all():
            raise DataError(vol.path, "the reconstruction holds NaN or Inf values")
        volume[batch.slice_num.cpu().numpy()] = image
    return volume


def reconstruct_volumes(
    method: Reconstructor,
    volumes: Sequence[VolumeInfo],
    output_dir: str | PathLike[str],
    mask_func: MaskFunc | None = None,
    *,
    batch_size: int = 1,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    overwrite: bool = False,
    on_volume: Callable[[VolumeInfo], None] | None = None,
) -> ReconstructionSummary:
    """Reconstruct every volume and write ``output_dir / fname`` for each, all or nothing.

    Args:
        method: any :class:`~unrolled.models.reconstructor.Reconstructor`.
        volumes: the inputs (from :func:`list_volumes`).
        output_dir: created if missing.
        mask_func: undersamples fully sampled files, seeded per file name;
            ``None`` reconstructs them fully sampled. Test-set files keep
            their stored mask.
        batch_size: slices per forward pass.
        device: where to run.
        dtype: autocast dtype, ``None`` for float32.
        overwrite: replace existing outputs; otherwise refuse before any work.
        on_volume: called after each volume (e.g. to advance a progress bar).

    Returns:
        A :class:`ReconstructionSummary`.

    Raises:
        FileExistsError: an output exists and ``overwrite`` is false.
        DataError: an input is bad; nothing is written then.
    """
    start = time.perf_counter()
    targets = check_outputs(volumes, output_dir, overwrite)
    transform = UnrolledTransform(mask_func, use_seed=True)
    method = method.to(device).eval()
    out = Path(output_dir)
    created = _make_dirs(out)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".unrolled-reconstruct-"))
    num_slices = 0
    try:
        for vol in volumes:
            image = reconstruct_volume(method, vol, transform, batch_size, device, dtype)
            write_reconstruction(staging, vol.fname, image, attrs=output_attrs(vol, mask_func))
            num_slices += vol.num_slices
            if on_volume is not None:
                on_volume(vol)
        _publish_all([staging / v.fname for v in volumes], targets, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for d in created:  # folders this call made, if still empty
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return ReconstructionSummary(tuple(targets), num_slices, time.perf_counter() - start)


def _make_dirs(path: Path) -> list[Path]:
    """``mkdir -p``; returns the folders it created, deepest first."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    return missing


_MEANWHILE = "created by someone else meanwhile; pass overwrite=true to replace"


def _publish_all(staged: Sequence[Path], targets: Sequence[Path], overwrite: bool) -> None:
    """Move staged files into place; without ``overwrite`` never clobber, and undo on failure."""
    done: list[Path] = []
    try:
        for src, dst in zip(staged, targets, strict=True):
            publish(src, dst, overwrite, hint=_MEANWHILE)
            if not overwrite:
                done.append(dst)
    except BaseException:
        for dst in done:
            dst.unlink(missing_ok=True)
        raise
