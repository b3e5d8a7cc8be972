"""The embedded default data set: synthetic multicoil brain scans in fastMRI's layout.

A volume is an axial head (:mod:`unrolled.data.anatomy`) times a smooth random
phase, seen by simulated receive coils, Fourier transformed with the package's
centered orthonormal FFT, plus complex Gaussian noise. Files follow fastMRI's
multicoil layout exactly (``kspace``, ``ismrmrd_header``, ``reconstruction_rss``
and the attributes ``max``, ``norm``, ``acquisition``, ``patient_id``,
``padding_left``, ``padding_right``), so ``fastmri.data.SliceDataset`` and our
own readers load them unchanged.

Signal-to-noise ratio (``snr``): the mean of the noise-free root-sum-of-squares
coil image over the head, divided by the standard deviation ``sigma`` of the
complex noise of one coil, i.e. ``E|n|^2 = sigma^2`` per k-space sample (real
and imaginary parts each ``sigma / sqrt(2)``). With the orthonormal FFT
``sigma`` is also the per-coil noise level of every image pixel and of the
k-space corners. "The head" is where the noise-free RSS exceeds 10 % of its
99th percentile over the volume. Noise of neighbouring coils is mildly
correlated, as in real arrays; every coil still has noise level ``sigma``.
Images are scaled so that this mean head signal is ``SIGNAL_LEVEL`` (1e-4),
the order of magnitude of fastMRI's brain files.

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
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from filelock import FileLock

from unrolled.data.anatomy import CONTRASTS, head_template, sample_head, smooth_noise
from unrolled.data.errors import DataError
from unrolled.data.header import build_ismrmrd_header
from unrolled.data.publish import atomic_path
from unrolled.physics.coils import center_crop, rss
from unrolled.physics.fft import fft2c, ifft2c
from unrolled.physics.fov import fold_fov, folded_width

ACQUISITIONS = ("AXT1", "AXT2", "AXPD")
SPLITS = ("train", "val", "test")
LOCK_NAME = ".generate.lock"
log = logging.getLogger(__name__)
SIGNAL_LEVEL = 1e-4
FOV_MM = 220.0  # field of view of the reconstructed (cropped) image, larger side


@dataclass(frozen=True)
class VolumeMeta:
    """What :func:`synthesize_volume` made.

    Attributes:
        acquisition: contrast, e.g. ``"AXT2"``.
        noise_std: per-coil complex noise std ``sigma`` (0 without noise).
        pixel_mm: in-plane pixel size.
        slice_thickness_mm: partial-volume thickness of each slice.
        slice_mm: axial template position of each slice, ``(S,)``.
        source: anatomy, ``"mni152"`` or ``"procedural"``.
    """

    acquisition: str
    noise_std: float
    pixel_mm: float
    slice_thickness_mm: float
    slice_mm: tuple[float, ...]
    source: str


def synthesize_volume(
    rng: np.random.Generator,
    *,
    num_slices: int = 8,
    num_coils: int = 8,
    height: int = 256,
    width: int = 128,
    recon_height: int | None = None,
    recon_width: int | None = None,
    snr: float | None = 40.0,
    acquisition: str = "AXT2",
    fov_fraction: float = 1.0,
) -> tuple[np.ndarray, VolumeMeta]:
    """One fully sampled multicoil volume.

    Args:
        rng: the volume's random generator (the only source of randomness).
        num_slices: ``S``.
        num_coils: ``C``.
        height: k-space rows ``H`` (readout, oversampled when > recon_height).
        width: k-space columns ``W`` (phase encoding).
        recon_height: reconstructed rows ``h``; default ``min(H, W)``.
        recon_width: reconstructed columns ``w``; default ``min(H, W)``.
        snr: see the module docstring; ``None`` for noise-free k-space.
        acquisition: a key of :data:`unrolled.data.anatomy.CONTRASTS`.
        fov_fraction: phase-encoding field of view over the object's, in ``(0, 1]``.
            Below 1 the coil images (head on the ``H x W`` grid) are folded onto
            ``W' = round(fov_fraction * W)`` columns, centred
            (:func:`unrolled.physics.fov.fold_fov`), before the FFT: the head's
            sides wrap over its middle, as in a scan whose field of view is smaller
            than the head. ``recon_width`` must then fit in ``W'``.

    Returns:
        k-space ``(S, C, H, W')`` complex64 (``W' = W`` unless folded) and its
        :class:`VolumeMeta`.
    """
    _check_options(num_slices, num_coils, height, width, snr, [acquisition])
    folded = folded_width(width, fov_fraction)
    h, w = _recon_size(height, folded, recon_height, recon_width)
    # The pixel size is that of the whole field of view: folding keeps the head's size.
    full = (h, w) if folded == width else _recon_size(height, width, recon_height, None)
    pixel_mm = FOV_MM / max(full)
    head = sample_head(
        rng, head_template(rng, pixel_mm), num_slices, (height, width), pixel_mm, acquisition
    )
    phase = smooth_phase(rng, head.image.shape, pixel_mm)
    z_rel = head.slice_mm - head.slice_mm.mean()
    sens = torch.from_numpy(coil_sensitivities(rng, num_coils, (height, width), pixel_mm, z_rel))
    magnitude = torch.from_numpy(head.image)  # (S, H, W)
    rss0 = magnitude * rss(sens, dim=1)  # (S, H, W) noise-free RSS
    in_head = rss0 > 0.1 * torch.quantile(rss0.flatten()[::7], 0.99)
    scale = SIGNAL_LEVEL / rss0[in_head].mean().item()
    x = torch.polar(magnitude * scale, torch.from_numpy(phase))  # (S, H, W) complex
    kspace = fft2c(fold_fov(x[:, None] * sens, fov_fraction)).numpy()  # (S, C, H, W')

    sigma = 0.0 if snr is None else SIGNAL_LEVEL / snr
    if sigma > 0:
        kspace += correlated_noise(rng, kspace.shape, sigma)
    meta = VolumeMeta(
        acquisition=acquisition,
        noise_std=sigma,
        pixel_mm=pixel_mm,
        slice_thickness_mm=head.slice_thickness_mm,
        slice_mm=tuple(float(z) for z in head.slice_mm),
        source=head.source,
    )
    return kspace.astype(np.complex64, copy=False), meta


def coil_sensitivities(
    rng: np.random.Generator,
    num_coils: int,
    shape: tuple[int, int],
    pixel_mm: float,
    slice_offsets_mm: np.ndarray,
) -> np.ndarray:
    """Loop coils on an ellipse around the head (birdcage-like array).

    Each coil is a loop of radius ``rho`` facing the centre; its magnitude
    falls off with the 3D distance ``d`` as ``(rho^2 / (rho^2 + d^2))^p``
    (Biot-Savart on the loop axis for ``p = 3/2``; softened), its phase
    rotates with the viewing angle from the coil plus a random offset. The
    set is scaled so that its root-sum-of-squares peaks at 1.

    Args:
        slice_offsets_mm: axial offset of each slice from the array centre, ``(S,)``.

    Returns:
        ``(S, C, H, W)`` complex64.
    """
    H, W = shape
    v = ((np.arange(H) - H // 2) * pixel_mm)[:, None]  # rows (anterior up), mm
    u = ((np.arange(W) - W // 2) * pixel_mm)[None, :]  # columns
    semi = np.array([rng.uniform(110, 125), rng.uniform(130, 145)])  # (u, v) semi-axes
    angles = rng.uniform(0, 2 * math.pi) + 2 * math.pi * np.arange(num_coils) / num_coils
    angles = angles + rng.normal(0, 0.05, num_coils)
    rho = rng.uniform(60, 90)
    power = rng.uniform(0.6, 0.9)
    z0 = rng.uniform(-15, 15) + rng.normal(0, 8, num_coils)  # coil centres vs slab centre
    offsets = rng.uniform(-math.pi, math.pi, num_coils)
    twist = rng.uniform(0.2, 0.6, num_coils)

    pu, pv = semi[0] * np.cos(angles), semi[1] * np.sin(angles)  # coil centres, (C,)
    du = (u[None] - pu[:, None, None]).astype(np.float32)  # (C, 1, W)
    dv = (v[None] - pv[:, None, None]).astype(np.float32)  # (C, H, 1)
    nu, nv = (-pu / np.hypot(pu, pv))[:, None, None], (-pv / np.hypot(pu, pv))[:, None, None]
    view = np.arctan2(nu * dv - nv * du, nu * du + nv * dv)  # (C, H, W) angle seen from the coil
    phase = np.exp(1j * (offsets[:, None, None] + twist[:, None, None] * view)).astype(np.complex64)
    dz2 = ((np.asarray(slice_offsets_mm)[:, None] - z0[None, :]) ** 2).astype(np.float32)  # (S, C)
    d2 = (du**2 + dv**2)[None] + dz2[:, :, None, None]  # (S, C, H, W)
    sens = (rho**2 / (rho**2 + d2)) ** np.float32(power) * phase
    return sens / np.sqrt((np.abs(sens) ** 2).sum(1)).max()


def smooth_phase(
    rng: np.random.Generator, shape: tuple[int, int, int], pixel_mm: float
) -> np.ndarray:
    """A smooth random image phase in radians (B0-like), ``(S, H, W)`` float32."""
    S, H, W = shape
    v = ((np.arange(H) - H // 2) * pixel_mm / 100.0)[:, None]
    u = ((np.arange(W) - W // 2) * pixel_mm / 100.0)[None, :]
    ramp = rng.normal(0, 0.5) * u + rng.normal(0, 0.5) * v + rng.uniform(-math.pi, math.pi)
    field = smooth_noise(rng, (S, H, W), 35.0 / pixel_mm)
    return (ramp + rng.uniform(0.3, 1.5) * field).astype(np.float32)


def correlated_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Complex Gaussian noise ``(S, C, H, W)`` with ``E|n|^2 = sigma^2`` per coil.

    Neighbouring coils (on the ring) correlate with coefficient in [0.05, 0.2].
    """
    S, C, H, W = shape
    rho = rng.uniform(0.05, 0.2) if C > 2 else 0.0
    ring = np.eye(C, k=1) + np.eye(C, k=-1) + np.eye(C, k=C - 1) + np.eye(C, k=1 - C)
    mix = np.linalg.cholesky(np.eye(C) + rho * ring)  # unit-norm rows: variance sigma^2 per coil
    white = rng.standard_normal((S, C, H * W, 2), dtype=np.float32)
    white *= np.float32(sigma / math.sqrt(2))
    noise = white.view(np.complex64)[..., 0]  # (S, C, H*W)
    return np.matmul(mix.astype(np.complex64), noise).reshape(shape)


def rss_reconstruction(kspace: np.ndarray, recon_size: tuple[int, int]) -> np.ndarray:
    """fastMRI's ``reconstruction_rss``: RSS of ``ifft2c`` over coils, centre-cropped.

    Args:
        kspace: ``(S, C, H, W)`` complex.
        recon_size: ``(h, w)``.

    Returns:
        ``(S, h, w)`` float32.
    """
    images = ifft2c(torch.from_numpy(kspace))  # (S, C, H, W)
    return center_crop(rss(images, dim=1), recon_size).numpy().astype(np.float32)  # (S, h, w)


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
    recon = _recon_size(height, folded, recon_height, recon_width)
    counts = split_counts(split, num_volumes)
    _check_options(slices_per_volume, num_coils, height, width, snr, acquisitions)
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


def _recon_size(
    height: int, width: int, recon_height: int | None, recon_width: int | None
) -> tuple[int, int]:
    side = min(height, width)
    h, w = recon_height or side, recon_width or side
    if not (0 < h <= height and 0 < w <= width):
        raise ValueError(
            f"recon size ({h}, {w}) must fit in the k-space matrix ({height}, {width})"
        )
    return h, w


def _check_options(
    slices: int, coils: int, height: int, width: int, snr: float | None, acquisitions: Sequence[str]
) -> None:
    if snr is not None and not snr > 0:
        raise ValueError(f"snr must be positive (or null for no noise), got {snr}")
    if slices < 1 or coils < 1:
        raise ValueError(f"slices_per_volume and num_coils must be >= 1, got {slices} and {coils}")
    if min(height, width) < 16:
        raise ValueError(f"height and width must be >= 16, got {height} x {width}")
    unknown = [a for a in acquisitions if a not in CONTRASTS]
    if unknown or not acquisitions:
        raise ValueError(f"acquisitions must be among {list(CONTRASTS)}, got {list(acquisitions)}")
