"""Grid the readouts of a :class:`RawScan` into fastMRI-layout k-space volumes.

Steps, in order (the conventions of Gadgetron's and ``ismrmrd_recon_cartesian_2d``'s
Cartesian chains):

1. **Noise covariance and prewhitening**: the noise-measurement readouts give
   ``Psi = X X^H / N`` (coils x coils), scaled by the dwell-time ratio of noise
   and imaging samples; the data are multiplied by ``L^-1`` with
   ``Psi = L L^H`` (Cholesky), so that the noise is white with unit variance.
2. **Placement**: a readout of phase-encoding index ``line`` goes to column
   ``line - center_line + W // 2`` (``W``: encoded matrix y), its centre sample
   to row ``H_enc // 2``; so partial Fourier and asymmetric echo stay zero where
   not acquired, placed by the encoding limits' centre.
3. **Calibration lines** (calibration-only) fill the columns that imaging left empty.
4. **Averages**: averaged per column over the averages that acquired it, or kept
   apart (``averages="separate"``) as acquisitions for ``unrolled-fuse``.
5. **Readout oversampling** is removed: inverse FFT along the readout, centre
   crop to the recon matrix x, FFT back (centred, orthonormal), so the image
   of the result is the central recon field of view of the full one.

Repetitions, contrasts, cardiac phases and sets become separate volumes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from unrolled.data.errors import DataError
from unrolled.data.raw.scan import RawScan


@dataclass(eq=False)
class Volume:
    """One output volume.

    Attributes:
        kspace: ``(slices, coils, H, W)`` complex64 or, with separate averages,
            ``(averages, slices, coils, H, W)``; zero where not acquired.
        mask: acquired phase-encoding columns, ``(W,)`` bool or ``(averages, W)``.
        key: ``(repetition, contrast, phase, set)``.
        geometry: ``slice_position``, ``read_dir``, ``phase_dir``, ``slice_dir``, each
            ``(slices, 3)`` float64 in the patient coordinate system (mm), or empty.
    """

    kspace: np.ndarray
    mask: np.ndarray
    key: tuple[int, int, int, int]
    geometry: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(eq=False)
class Assembly:
    """All volumes of a scan plus what was done to them.

    Attributes:
        volumes: the :class:`Volume` list, sorted by key.
        encoded_size: ``(H, W)`` of the k-space written (oversampling removed).
        oversampling_removed: readout oversampling factor removed (1.0: none).
        noise_covariance: ``(C, C)`` complex128 estimated from noise scans, or ``None``.
        prewhitened: whether the data were prewhitened.
        num_averages: averages found per volume.
        calibration_lines: calibration-only lines merged (per slice and volume).
    """

    volumes: list[Volume]
    encoded_size: tuple[int, int]
    oversampling_removed: float
    noise_covariance: np.ndarray | None
    prewhitened: bool
    num_averages: int
    calibration_lines: int


def noise_covariance(scan: RawScan) -> np.ndarray | None:
    """``Psi = X X^H / N`` of the noise scans, scaled to the imaging dwell time; ``None`` if none.

    Raises:
        DataError: noise scans with another coil count than the imaging data.
    """
    if not scan.noise:
        return None
    coils = scan.num_coils
    if any(n.shape[0] != coils for n in scan.noise):
        raise DataError(scan.path, "noise scans and imaging data have different coil counts")
    noise = np.concatenate(scan.noise, axis=1).astype(np.complex128)  # (C, N)
    psi = noise @ noise.conj().T / noise.shape[1]
    if scan.noise_dwell_us and scan.data_dwell_us:  # noise variance ~ bandwidth ~ 1 / dwell
        psi *= scan.noise_dwell_us / scan.data_dwell_us
    return psi


def prewhitening_matrix(psi: np.ndarray, path) -> np.ndarray:
    """``L^-1`` with ``psi = L L^H``.

    Raises:
        DataError: ``psi`` is not positive definite (dead or duplicated channel).
    """
    try:
        lower = np.linalg.cholesky(psi)
    except np.linalg.LinAlgError:
        raise DataError(path, "noise covariance is not positive definite") from None
    return np.linalg.inv(lower)


def assemble(scan: RawScan, prewhiten: bool = True, averages: str = "mean") -> Assembly:
    """Grid every readout of ``scan`` (see the module docstring).

    Args:
        scan: from a reader.
        prewhiten: prewhiten with the noise scans (ignored when there are none).
        averages: ``"mean"`` or ``"separate"``.

    Returns:
        The :class:`Assembly`.

    Raises:
        DataError: readouts that do not fit the encoded matrix, or a bad option.
        ValueError: ``averages`` is not ``"mean"`` or ``"separate"``.
    """
    if averages not in ("mean", "separate"):
        raise ValueError(f"averages must be 'mean' or 'separate', got {averages!r}")
    path = scan.path
    coils = scan.num_coils
    h_enc, width = scan.encoded_size[0], scan.encoded_size[1]
    psi = noise_covariance(scan)
    whiten = prewhitening_matrix(psi, path) if (psi is not None and prewhiten) else None

    slices = sorted({r.slice for r in scan.readouts})
    aves = sorted({r.average for r in scan.readouts if not r.calibration_only}) or [0]
    keys = sorted({r.volume for r in scan.readouts if not r.calibration_only})
    s_of = {s: i for i, s in enumerate(slices)}
    a_of = {a: i for i, a in enumerate(aves)}
    shape = (len(aves), len(slices), coils, h_enc, width)
    acc = {k: np.zeros(shape, np.complex128) for k in keys}
    count = {k: np.zeros((len(aves), len(slices), width), np.int64) for k in keys}
    calib = defaultdict(lambda: np.zeros((len(slices), coils, h_enc, width), np.complex128))
    calib_count = defaultdict(lambda: np.zeros((len(slices), width), np.int64))
    geometry: dict[int, tuple] = {}
    for r in scan.readouts:
        if r.data.shape[0] != coils:
            raise DataError(path, f"readouts with {r.data.shape[0]} and {coils} coils")
        col = r.line - scan.center_line + width // 2
        row0 = h_enc // 2 - r.center_sample
        n = r.data.shape[1]
        if not 0 <= col < width or row0 < 0 or row0 + n > h_enc:
            raise DataError(
                path,
                f"readout of line {r.line} ({n} samples, centre {r.center_sample}) does not fit "
                f"the encoded matrix {h_enc} x {width} (centre line {scan.center_line})",
            )
        s = s_of[r.slice]
        if r.geometry is not None:
            geometry.setdefault(s, r.geometry)
        if r.calibration_only:
            calib[r.volume][s, :, row0 : row0 + n, col] += r.data
            calib_count[r.volume][s, col] += 1
            continue
        a = a_of[r.average]
        acc[r.volume][a, s, :, row0 : row0 + n, col] += r.data
        count[r.volume][a, s, col] += 1

    volumes = []
    calib_lines = 0
    for key in keys:
        kspace, hits = acc[key], count[key]  # (A, S, C, H, W), (A, S, W)
        kspace /= np.maximum(hits, 1)[:, :, None, None, :]
        cal_key = key if key in calib else next(iter(calib), None)
        if cal_key is not None:  # merge calibration-only lines where imaging left gaps
            ck, cc = calib[cal_key], calib_count[cal_key]
            ck = ck / np.maximum(cc, 1)[:, None, None, :]
            gaps = (hits == 0) & (cc > 0)[None]  # (A, S, W)
            kspace += np.where(gaps[:, :, None, None, :], ck[None], 0)
            hits = hits + gaps
            calib_lines = max(calib_lines, int((cc > 0).sum(-1).max()))
        if averages == "mean" and len(aves) > 1:
            acquired = hits > 0  # (A, S, W)
            kspace = (
                kspace.sum(0, keepdims=True)
                / np.maximum(acquired.sum(0), 1)[None, :, None, None, :]
            )
            hits = acquired.sum(0, keepdims=True)
        if whiten is not None:
            kspace = np.einsum("dc,asc...->asd...", whiten, kspace)
        kspace = remove_readout_oversampling(kspace, scan.recon_size[0])
        mask = (hits > 0).any(1)  # (A, W): acquired in any slice
        separate = averages == "separate"
        volumes.append(
            Volume(
                kspace=(kspace if separate else kspace[0]).astype(np.complex64),
                mask=mask if separate else mask[0],
                key=key,
                geometry=_geometry_arrays(geometry, len(slices)),
            )
        )
    over = h_enc / volumes[0].kspace.shape[-2] if volumes else 1.0
    return Assembly(
        volumes=volumes,
        encoded_size=tuple(volumes[0].kspace.shape[-2:]) if volumes else (0, 0),
        oversampling_removed=over,
        noise_covariance=psi,
        prewhitened=whiten is not None,
        num_averages=len(aves),
        calibration_lines=calib_lines,
    )


def remove_readout_oversampling(kspace: np.ndarray, recon_x: int) -> np.ndarray:
    """Crop the image along the readout (axis -2) to its central ``recon_x`` rows.

    Args:
        kspace: ``(..., H, W)`` complex, centred k-space.
        recon_x: recon matrix x; nothing is done when ``recon_x >= H``.

    Returns:
        ``(..., recon_x, W)`` k-space whose centred orthonormal inverse FFT along
        the readout equals the central ``recon_x`` rows of that of ``kspace``.
    """
    h = kspace.shape[-2]
    if recon_x <= 0 or recon_x >= h:
        return kspace
    img = np.fft.fftshift(
        np.fft.ifft(np.fft.ifftshift(kspace, axes=-2), axis=-2, norm="ortho"), axes=-2
    )
    start = (h - recon_x) // 2
    img = img[..., start : start + recon_x, :]
    return np.fft.fftshift(
        np.fft.fft(np.fft.ifftshift(img, axes=-2), axis=-2, norm="ortho"), axes=-2
    )


def _geometry_arrays(geometry: dict[int, tuple], num_slices: int) -> dict[str, np.ndarray]:
    if len(geometry) != num_slices:
        return {}
    names = ("slice_position", "read_dir", "phase_dir", "slice_dir")
    return {
        name: np.array([geometry[s][i] for s in range(num_slices)], dtype=np.float64)
        for i, name in enumerate(names)
    }
