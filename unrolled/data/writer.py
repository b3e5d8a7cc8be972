"""Write reconstructions in fastMRI's submission layout, atomically.

The layout is that of ``fastmri.save_reconstructions``: one HDF5 file per
volume, named like the input file (``file1000.h5``), holding the dataset
``reconstruction`` of shape ``(slices, h, w)`` float32. Each file is first
written to a hidden temporary file in the same directory and then renamed into
place, so a crash never leaves a partial file under the final name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from unrolled.data.publish import atomic_path

RECONSTRUCTION_KEY = "reconstruction"


def write_reconstruction(
    output_dir: str | PathLike[str],
    fname: str,
    volume: np.ndarray,
    overwrite: bool = False,
    attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Write one volume as ``output_dir / fname``.

    Args:
        output_dir: directory, created if missing.
        fname: file name without directory, e.g. ``"file1000.h5"``.
        volume: reconstruction, ``(slices, h, w)``; stored as float32.
        overwrite: replace an existing file; otherwise refuse.
        attrs: HDF5 attributes to store on the file (e.g. ``acquisition``).

    Returns:
        The path written.

    Raises:
        FileExistsError: the file exists and ``overwrite`` is false (the
            existing file is left untouched).
        ValueError: ``fname`` has a directory part or ``volume`` is not 3D.
    """
    if not fname or Path(fname).name != fname or fname in (".", ".."):
        raise ValueError(f"fname must be a plain file name, got {fname!r}")
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"{fname}: volume must be (slices, h, w), got shape {volume.shape}")
    if np.iscomplexobj(volume):
        raise ValueError(f"{fname}: volume must be real (magnitude), got {volume.dtype}")
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / fname
    with atomic_path(target, overwrite) as tmp:
        with h5py.File(tmp, "w") as hf:
            hf.create_dataset(RECONSTRUCTION_KEY, data=volume.astype(np.float32, copy=False))
            for key, value in (attrs or {}).items():
                hf.attrs[key] = value
        _fsync(tmp)
    return target


def save_reconstructions(
    reconstructions: Mapping[str, np.ndarray],
    out_dir: str | PathLike[str],
    overwrite: bool = False,
) -> list[Path]:
    """Write every volume, as ``fastmri.save_reconstructions`` does.

    Args:
        reconstructions: file name -> ``(slices, h, w)`` volume.
        out_dir: output directory, created if missing.
        overwrite: replace existing files; otherwise refuse before writing any.

    Returns:
        The paths written, in the order of ``reconstructions``.

    Raises:
        FileExistsError: some file exists and ``overwrite`` is false; nothing
            is written then.
    """
    out = Path(out_dir)
    if not overwrite:
        existing = [str(out / f) for f in reconstructions if (out / f).exists()]
        if existing:
            raise FileExistsError(
                f"{existing[0]}: exists ({len(existing)} of {len(reconstructions)} files); "
                "pass overwrite=True to replace"
            )
    return [
        write_reconstruction(out, f, v, overwrite=overwrite) for f, v in reconstructions.items()
    ]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
