"""The embedded default data set: synthetic multicoil brain scans in fastMRI's layout.

One volume is made by :func:`unrolled.data.synth_volume.synthesize_volume`; this module
writes volumes and whole train/val/test sets.

Files follow fastMRI's
multicoil layout exactly (``kspace``, ``ismrmrd_header``, ``reconstruction_rss``
and the attributes ``max``, ``norm``, ``acquisition``, ``patient_id``,
``padding_left``, ``padding_right``), so ``fastmri.data.SliceDataset`` and our
own readers load them unchanged.

Each volume draws its randomness from ``numpy.random.default_rng([seed, index])``
only: the same seed gives byte-identical k-space, and data sets of
different seeds share no volume.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
from filelock import FileLock

from unrolled.data.errors import DataError
from unrolled.data.header import build_ismrmrd_header
from unrolled.data.publish import atomic_path
from unrolled.data.synth_volume import (
    ACQUISITIONS,
    VolumeMeta,
    check_options,
    recon_size,
    rss_reconstruction,
    synthesize_volume,
)
from unrolled.physics.fov import folded_width

SPLITS = ("train", "val", "test")
LOCK_NAME = ".generate.lock"
log = logging.getLogger(__name__)


def write_volume(
    path: str | os.PathLike[str],
    kspace: np.ndarray,
    recon_size: tuple[int, int],
    meta: VolumeMeta,
    patient_id: str,
) -> None:
    """Write one fastMRI multicoil file atomically (a temporary name unique to this
    call, ``.<name>.<random>.tmp``, then rename), so writers never share a temporary file."""
    path = Path(path)
    S, C, H, W = kspace.shape
    h, w = recon_size
    target = rss_reconstruction(kspace, recon_size)
    header = build_ismrmrd_header(
        (H, W, 1), (h, w, 1), C, (meta.pixel_mm * H, meta.pixel_mm * W, meta.slice_thickness_mm)
    )
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("kspace", data=kspace.astype(np.complex64, copy=False))
            f.create_dataset("ismrmrd_header", data=np.bytes_(header))
            f.create_dataset("reconstruction_rss", data=target)
            f.attrs["max"] = float(target.max())
            f.attrs["norm"] = float(np.linalg.norm(target))
            f.attrs["acquisition"] = meta.acquisition
            f.attrs["patient_id"] = patient_id
            f.attrs["padding_left"] = 0
            f.attrs["padding_right"] = W


def generate_dataset(
    output_dir: str | os.PathLike[str],
    num_volumes: int = 16,
    slices_per_volume: int = 8,
    num_coils: int = 8,
    height: int = 256,
    width: int = 128,
    recon_height: int | None = None,
    recon_width: int | None = None,
    snr: float | None = 40.0,
    seed: int = 0,
    split: Sequence[float] = (10, 3, 3),
    acquisitions: Sequence[str] = ACQUISITIONS,
    overwrite: bool = False,
    progress: bool = True,
    fov_fraction: float = 1.0,
) -> dict:
    """Write a synthetic multicoil brain data set in fastMRI's layout.

    Files ``file_brain_synth_<index>.h5`` go to ``output_dir/{train,val,test}``.
    Volume ``i`` has contrast ``acquisitions[i % len(acquisitions)]``.

    Args:
        output_dir: created if needed; must hold no ``.h5`` file unless ``overwrite``.
        num_volumes: number of files.
        split: volumes per split (train, val, test); used as proportions
            (rounded, every non-zero share gets a volume) when they do not
            sum to ``num_volumes``.
        overwrite: delete the ``.h5`` files of the split folders first.
        progress: show a progress bar over volumes (on stderr).
        fov_fraction: phase-encoding field of view over the head's (1: the whole head);
            below 1 the k-space has ``round(fov_fraction * width)`` columns and the
            head wraps around (see :func:`synthesize_volume`).
        Others: as in :func:`synthesize_volume`.

    Returns:
        A summary: ``output_dir``, ``files`` (per split), ``num_slices``,
        ``kspace_shape``, ``recon_shape``, ``num_coils``, ``acquisitions``
        (per contrast), ``source``, ``snr``, ``seed``, ``bytes``, ``seconds``.

    Raises:
        DataError: ``output_dir`` already holds ``.h5`` files.
        ValueError: an option is out of range.
    """
    start = time.perf_counter()
    out = Path(output_dir)
    folded = folded_width(width, fov_fraction)  # checks the fraction
    recon = recon_size(height, width, recon_height, recon_width, folded)
    counts = split_counts(split, num_volumes)
    check_options(slices_per_volume, num_coils, height, width, snr, acquisitions)
    if out.exists() and not out.is_dir():
        raise DataError(out, "exists and is not a directory")
    if out.exists() and any(out.rglob("*.h5")):
        if not overwrite:
            raise DataError(out, "already contains .h5 files; pass overwrite=true to replace them")
        for name in SPLITS:
            for old in [*(out / name).glob("*.h5"), *(out / name).glob(".*.h5.*.tmp")]:
                old.unlink()

    names = [name for name, n in zip(SPLITS, counts, strict=True) for _ in range(n)]
    volume = dict(num_slices=slices_per_volume, num_coils=num_coils, height=height, width=width)
    volume.update(recon_height=recon[0], recon_width=recon[1], snr=snr)
    volume.update(fov_fraction=fov_fraction)
    for name in SPLITS:
        (out / name).mkdir(parents=True, exist_ok=True)
    sources, total_bytes = set(), 0
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), disable=not progress, transient=True) as bar:
        task = bar.add_task("synthesising volumes", total=num_volumes)
        for index, name in enumerate(names):
            acquisition = acquisitions[index % len(acquisitions)]
            kspace, meta = synthesize_volume(
                np.random.default_rng([seed, index]), acquisition=acquisition, **volume
            )
            path = out / name / f"file_brain_synth_{index:04d}.h5"
            patient = hashlib.sha256(f"unrolled-synth:{seed}:{index}".encode()).hexdigest()
            write_volume(path, kspace, recon, meta, patient)
            sources.add(meta.source)
            total_bytes += path.stat().st_size
            bar.advance(task)
    return {
        "output_dir": str(out),
        "files": dict(zip(SPLITS, counts, strict=True)),
        "num_slices": num_volumes * slices_per_volume,
        "kspace_shape": (slices_per_volume, num_coils, height, folded),
        "recon_shape": recon,
        "num_coils": num_coils,
        "acquisitions": dict(
            Counter(acquisitions[i % len(acquisitions)] for i in range(num_volumes))
        ),
        "source": "+".join(sorted(sources)),
        "snr": snr,
        "seed": seed,
        "bytes": total_bytes,
        "seconds": time.perf_counter() - start,
    }


def ensure_dataset(root: str | os.PathLike[str], **kwargs) -> dict | None:
    """Generate the data set into ``root`` unless it is there already.

    Safe when several processes call it at once on a shared file system (the jobs of a
    multirun, DDP ranks, SLURM array tasks): generation runs under an inter-process lock
    (``root/.generate.lock``, :class:`filelock.FileLock`), and a process that obtains the
    lock after another one generated the set finds it complete and does nothing. A
    complete set is recognised without the lock, so a read-only ``root`` works.

    Returns:
        The summary of :func:`generate_dataset`, or ``None`` when nothing was done.

    Raises:
        As :func:`generate_dataset`.
    """
    root = Path(root)
    lock_path = root / LOCK_NAME
    # A set of our own is complete when all its files exist; a folder of other files
    # (the user's own data, or a set generated before the lock existed) when every
    # split holds some and no generation ever ran there.
    if _is_complete(root, kwargs) or (not lock_path.exists() and _has_every_split(root)):
        return None
    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path)
    try:
        lock.acquire(timeout=0)
    except TimeoutError:
        log.info("waiting for another process generating the data set in %s", root)
        lock.acquire()
    try:
        # checked again now that we hold the lock: another process may have generated it
        if _is_complete(root, kwargs) or _has_every_split(root):
            return None
        return generate_dataset(root, **kwargs)
    finally:
        lock.release()


def _is_complete(root: Path, options: dict) -> bool:
    """Whether every file :func:`generate_dataset` would write with ``options`` exists
    (they are published atomically, so an existing file is a whole one)."""
    defaults = inspect.signature(generate_dataset).parameters
    num_volumes = options.get("num_volumes", defaults["num_volumes"].default)
    counts = split_counts(options.get("split", defaults["split"].default), num_volumes)
    names = [name for name, n in zip(SPLITS, counts, strict=True) for _ in range(n)]
    return all(
        (root / name / f"file_brain_synth_{index:04d}.h5").is_file()
        for index, name in enumerate(names)
    )


def _has_every_split(root: Path) -> bool:
    return all(any((root / name).glob("*.h5")) for name in SPLITS)


def save_preview(
    dataset_dir: str | os.PathLike[str], png_path: str | os.PathLike[str], num_images: int = 8
) -> Path:
    """A grid of ``reconstruction_rss`` slices from different volumes, as a PNG.

    Picks volumes spread over the data set (and so over contrasts) and a
    different slice of each.
    """
    from matplotlib.figure import Figure

    files = sorted(Path(dataset_dir).glob("*/*.h5"), key=lambda p: p.name)
    if not files:
        raise DataError(dataset_dir, "holds no .h5 files to preview")
    fractions = (0.55, 0.3, 0.8, 0.45, 0.65, 0.2, 0.9, 0.1)  # of the slab, bottom to top
    candidates = [
        (files[i * len(files) // num_images], fractions[i % 4]) for i in range(num_images)
    ]
    candidates += [(f, fr) for fr in fractions for f in files]
    picks: list[tuple[Path, int]] = []
    for path, fraction in candidates:
        with h5py.File(path, "r") as f:
            pick = (path, round(fraction * (f["reconstruction_rss"].shape[0] - 1)))
        if pick not in picks:
            picks.append(pick)
        if len(picks) == num_images:
            break
    num_images = len(picks)
    cols = min(4, num_images)
    rows = math.ceil(num_images / cols)
    fig = Figure(figsize=(2.6 * cols, 2.8 * rows), facecolor="black")
    for k, (path, s) in enumerate(picks):
        with h5py.File(path, "r") as f:
            image = f["reconstruction_rss"][s]
            label = f"{f.attrs['acquisition']}  {path.stem[-4:]}:{s}"
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(image, cmap="gray", vmin=0, vmax=float(np.percentile(image, 99.7)))
        ax.set_title(label, color="white", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    png_path = Path(png_path)
    fig.savefig(png_path, dpi=100, facecolor="black")
    return png_path


def split_counts(split: Sequence[float], num_volumes: int) -> tuple[int, int, int]:
    """Volumes per (train, val, test): exact counts, or proportions rounded."""
    if num_volumes < 1:
        raise ValueError(f"num_volumes must be >= 1, got {num_volumes}")
    shares = [float(s) for s in split]
    if len(shares) != 3 or min(shares) < 0 or sum(shares) <= 0:
        raise ValueError(
            f"split must be three non-negative numbers (train, val, test), got {list(split)}"
        )
    if sum(shares) == num_volumes and all(s.is_integer() for s in shares):
        return tuple(int(s) for s in shares)  # type: ignore[return-value]
    exact = [s / sum(shares) * num_volumes for s in shares]
    counts = [math.floor(e) for e in exact]
    for i in sorted(range(3), key=lambda i: counts[i] - exact[i])[: num_volumes - sum(counts)]:
        counts[i] += 1
    for i in range(3):  # every non-zero share gets a volume where possible
        donor = int(np.argmax(counts))
        if shares[i] > 0 and counts[i] == 0 and counts[donor] > 1:
            counts[i], counts[donor] = 1, counts[donor] - 1
    return tuple(counts)  # type: ignore[return-value]
