"""One synthetic multicoil brain volume: anatomy, phase, coils, k-space and noise.

A volume is an axial head (:mod:`unrolled.data.anatomy`) times a smooth random
phase, seen by simulated receive coils, Fourier transformed with the package's
centered orthonormal FFT, plus complex Gaussian noise (:mod:`unrolled.data.synth`
writes volumes in fastMRI's layout).

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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from unrolled.data.anatomy import CONTRASTS, head_template, sample_head, smooth_noise
from unrolled.physics.coils import center_crop, rss
from unrolled.physics.fft import fft2c, ifft2c
from unrolled.physics.fov import fold_fov, folded_width

ACQUISITIONS = ("AXT1", "AXT2", "AXPD")
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
    check_options(num_slices, num_coils, height, width, snr, [acquisition])
    folded = folded_width(width, fov_fraction)
    h, w = recon_size(height, width, recon_height, recon_width, folded)
    # The pixel size is that of the whole field of view: folding keeps the head's size.
    full = (h, w) if folded == width else recon_size(height, width, recon_height, None)
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


def recon_size(
    height: int,
    width: int,
    recon_height: int | None,
    recon_width: int | None,
    folded: int | None = None,
) -> tuple[int, int]:
    """Reconstruction size ``(h, w)``: the given sides, else the smaller k-space side.

    Args:
        height: k-space rows ``H`` (readout).
        width: k-space columns ``W`` of the whole head (phase encoding).
        recon_height: rows ``h`` (``None``: ``min(H, W)``).
        recon_width: columns ``w`` (``None``: ``min(H, W)``, at most ``folded``).
        folded: columns left after folding to a field of view smaller than the
            head (``None``: not folded). Folding shortens only the phase-encoding
            side: the default rows stay those of the whole head.

    Raises:
        ValueError: the size does not fit in the ``(height, folded or width)`` k-space matrix.
    """
    side = min(height, width)
    columns = width if folded is None else folded
    h, w = recon_height or side, recon_width or min(side, columns)
    if not (0 < h <= height and 0 < w <= columns):
        raise ValueError(
            f"recon size ({h}, {w}) must fit in the k-space matrix ({height}, {columns})"
        )
    return h, w


def check_options(
    slices: int, coils: int, height: int, width: int, snr: float | None, acquisitions: Sequence[str]
) -> None:
    """Reject impossible synthesis options before any work.

    Raises:
        ValueError: ``snr <= 0``, fewer than one slice or coil, a side under 16, or an
            acquisition that is not a known contrast.
    """
    if snr is not None and not snr > 0:
        raise ValueError(f"snr must be positive (or null for no noise), got {snr}")
    if slices < 1 or coils < 1:
        raise ValueError(f"slices_per_volume and num_coils must be >= 1, got {slices} and {coils}")
    if min(height, width) < 16:
        raise ValueError(f"height and width must be >= 16, got {height} x {width}")
    unknown = [a for a in acquisitions if a not in CONTRASTS]
    if unknown or not acquisitions:
        raise ValueError(f"acquisitions must be among {list(CONTRASTS)}, got {list(acquisitions)}")
