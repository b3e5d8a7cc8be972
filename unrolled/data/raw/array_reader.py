"""k-space arrays without a scanner header: BART ``.cfl`` and NumPy ``.npy``.

The axis order is stated by the user (``axes=[coil,ky,kx]``-style); a BART file
defaults to BART's order (``kx, ky, kz, coil``, then its higher dimensions).
Axis names: ``kx`` (readout), ``ky`` (phase encoding), ``kz`` (must be 1: 3D
is refused), ``coil``, ``slice``, ``repetition``, ``contrast``; other axes must
have size 1. Every non-zero phase-encoding column becomes one readout, so an
undersampled array (zeros where not acquired) yields a challenge-style file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unrolled.data.errors import DataError
from unrolled.data.header import build_ismrmrd_header
from unrolled.data.raw.cfl import cfl_base, read_cfl
from unrolled.data.raw.scan import RawScan, Readout, RefusedScan

AXES = ("kx", "ky", "kz", "coil", "slice", "repetition", "contrast")
BART_AXES = ("kx", "ky", "kz", "coil")
"""BART's dimension order (``READ_DIM, PHS1_DIM, PHS2_DIM, COIL_DIM``); dims 5 (TE),
10 (TIME) and 13 (SLICE) map to contrast, repetition and slice."""
_BART_HIGHER = {5: "contrast", 10: "repetition", 13: "slice"}


def read_array(
    path: str | Path,
    axes: list[str] | None = None,
    field_of_view_mm: tuple[float, float, float] = (220.0, 220.0, 5.0),
) -> RawScan:
    """Read a ``.npy`` or BART ``.cfl``/``.hdr`` k-space array.

    Args:
        path: the file (for BART, ``name``, ``name.cfl`` or ``name.hdr``).
        axes: one name per array axis (see the module docstring); ``None``
            only for BART files (BART's order).
        field_of_view_mm: recon field of view ``(x, y, slice thickness)`` for the header.

    Returns:
        A :class:`RawScan` without noise scans or oversampling (encoded = recon matrix).

    Raises:
        DataError: unreadable, not complex, axes missing or inconsistent with the shape.
        RefusedScan: ``kz`` larger than 1 (3D).
    """
    path = Path(path)
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(path, f"cannot read as .npy ({e})") from None
        fmt = "NumPy .npy"
        if axes is None:
            raise DataError(path, "a .npy array needs its axis order: pass axes=[coil,ky,kx]-style")
    else:
        array = read_cfl(path)
        path = cfl_base(path).with_suffix(".cfl")
        fmt = "BART .cfl"
        if axes is None:
            axes = [*BART_AXES, *[_BART_HIGHER.get(i, f"dim{i}") for i in range(4, array.ndim)]]
    axes = [str(a) for a in axes]
    if array.ndim != len(axes):
        trailing = array.shape[len(axes) :]
        if array.ndim < len(axes) or any(n != 1 for n in trailing):
            raise DataError(path, f"array of shape {array.shape} but {len(axes)} axes {axes}")
        array = array.reshape(array.shape[: len(axes)])
    if not np.iscomplexobj(array):
        raise DataError(path, f"k-space must be complex, got {array.dtype}")
    for name, size in zip(axes, array.shape, strict=True):
        if name not in AXES and size != 1:
            raise DataError(path, f"axis '{name}' (size {size}) is not one of {list(AXES)}")
    if len(set(axes)) != len(axes) or not {"kx", "ky"} <= set(axes):
        raise DataError(path, f"axes {axes} must name kx and ky once each")
    if "kz" in axes and array.shape[axes.index("kz")] > 1:
        raise RefusedScan(path, f"3D encoding (kz = {array.shape[axes.index('kz')]})")
    order = ("repetition", "contrast", "slice", "coil", "kx", "ky")
    full = array
    for name in order:
        if name not in axes:
            full = full[..., None]
            axes = [*axes, name]
    keep = [axes.index(n) for n in order]
    drop = [i for i in range(len(axes)) if i not in keep]
    full = np.transpose(full, keep + drop).reshape(tuple(full.shape[i] for i in keep))
    reps, cons, slices, coils, h, w = full.shape  # (R, E, S, C, H, W)
    readouts = [
        Readout(
            data=np.ascontiguousarray(full[r, e, s, :, :, y], dtype=np.complex64),  # (C, H)
            line=y,
            center_sample=h // 2,
            slice=s,
            volume=(r, e, 0, 0),
        )
        for r in range(reps)
        for e in range(cons)
        for s in range(slices)
        for y in range(w)
        if np.any(full[r, e, s, :, :, y])
    ]
    if not readouts:
        raise DataError(path, "k-space is all zeros")
    header = build_ismrmrd_header((h, w, 1), (h, w, 1), coils, field_of_view_mm)
    return RawScan(
        path=path,
        format=fmt,
        header_xml=header,
        encoded_size=(h, w, 1),
        recon_size=(h, w, 1),
        center_line=w // 2,
        max_line=w - 1,
        readouts=readouts,
        description="",
    )
