"""Small files in the released fastMRI layout, written with h5py into tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from unrolled.data.header import build_ismrmrd_header


def rss_target(kspace: np.ndarray, recon: tuple[int, int]) -> np.ndarray:
    """fastMRI-style reference: RSS (or magnitude) of the centred IFFT, centre-cropped.

    Args:
        kspace: ``(slices, C, H, W)`` or ``(slices, H, W)`` complex.
        recon: crop size ``(h, w)``.

    Returns:
        ``(slices, h, w)`` float32.
    """
    axes = (-2, -1)
    image = np.fft.fftshift(
        np.fft.ifft2(np.fft.ifftshift(kspace, axes=axes), axes=axes, norm="ortho"), axes=axes
    )
    mag = np.sqrt((np.abs(image) ** 2).sum(axis=1)) if kspace.ndim == 4 else np.abs(image)
    h, w = mag.shape[-2:]
    top, left = (h - recon[0]) // 2, (w - recon[1]) // 2
    return mag[:, top : top + recon[0], left : left + recon[1]].astype(np.float32)


def header_with_padding(
    encoding: tuple[int, int, int],
    recon: tuple[int, int, int],
    coils: int,
    padding: tuple[int, int],
) -> bytes:
    """``build_ismrmrd_header`` with the phase-encoding limits of zero-padded k-space."""
    xml = build_ismrmrd_header(encoding, recon, coils).decode()
    width = encoding[1]
    left, right = padding
    full = f"<maximum>{width - 1}</maximum><center>{width // 2}</center>"
    assert full in xml
    return xml.replace(
        full, f"<maximum>{right - left - 1}</maximum><center>{width // 2 - left}</center>"
    ).encode()


def column_mask(width: int, num_low: int = 4, every: int = 3) -> np.ndarray:
    """A fastMRI-like test-set column mask, ``(W,)`` float32: centre run + every n-th."""
    mask = np.zeros(width, dtype=np.float32)
    mask[::every] = 1
    start = (width - num_low + 1) // 2
    mask[max(start - 1, 0) : start + num_low + 1] = 0  # the centre run stands alone
    mask[start : start + num_low] = 1
    return mask


@pytest.fixture
def make_fastmri_file(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing one fastMRI-layout file; returns its path.

    Keyword args of the factory:
        name: file name (``file1000.h5``); directory: defaults to
        ``tmp_path / "data"``; num_slices, height, width; num_coils (``None``
        for singlecoil); recon: ``(h, w)``; target: write the reference(s);
        test_set: write a ``mask`` and undersample, no reference;
        padding: ``(left, right)`` encoded in the header; attrs: extra or
        overriding attributes; header_coils: ``receiverChannels``;
        seed: of the random image.
    """

    def make(
        name: str = "file1000.h5",
        *,
        directory: Path | None = None,
        num_slices: int = 3,
        num_coils: int | None = 4,
        height: int = 16,
        width: int = 12,
        recon: tuple[int, int] = (8, 8),
        target: bool = True,
        test_set: bool = False,
        padding: tuple[int, int] | None = None,
        attrs: dict[str, Any] | None = None,
        header_coils: int | None = None,
        seed: int = 0,
    ) -> Path:
        directory = tmp_path / "data" if directory is None else directory
        directory.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        shape = (
            (num_slices, height, width)
            if num_coils is None
            else (num_slices, num_coils, height, width)
        )
        kspace = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
        if padding is not None:
            kspace[..., : padding[0]] = 0
            kspace[..., padding[1] :] = 0
        encoding, recon3 = (height, width, 1), (*recon, 1)
        coils = header_coils if header_coils is not None else (num_coils or 15)
        header = (
            build_ismrmrd_header(encoding, recon3, coils)
            if padding is None
            else header_with_padding(encoding, recon3, coils, padding)
        )
        ref = rss_target(kspace, recon)
        file_attrs: dict[str, Any] = {
            "acquisition": "CORPD_FBK",
            "patient_id": f"patient-{name}",
            "norm": float(np.linalg.norm(ref)),
        }
        path = directory / name
        with h5py.File(path, "w") as hf:
            hf.create_dataset("ismrmrd_header", data=header)
            if test_set:
                mask = column_mask(width)
                hf.create_dataset("kspace", data=kspace * mask)
                hf.create_dataset("mask", data=mask)
                file_attrs |= {"acceleration": 3, "num_low_frequency": 4}
                del file_attrs["norm"]
            else:
                hf.create_dataset("kspace", data=kspace)
                if target:
                    file_attrs["max"] = float(ref.max())
                    hf.create_dataset("reconstruction_rss", data=ref)
                    if num_coils is None:
                        hf.create_dataset("reconstruction_esc", data=0.5 * ref)
            for key, value in (file_attrs | (attrs or {})).items():
                hf.attrs[key] = value
        return path

    return make


@pytest.fixture
def write_h5(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing an arbitrary (possibly broken) HDF5 file from datasets.

    ``write_h5(name, attrs=None, **datasets)``; returns the path.
    """

    def write(
        name: str = "broken.h5", attrs: dict[str, Any] | None = None, **datasets: Any
    ) -> Path:
        path = tmp_path / name
        with h5py.File(path, "w") as hf:
            for key, value in datasets.items():
                hf.create_dataset(key, data=value)
            for key, value in (attrs or {}).items():
                hf.attrs[key] = value
        return path

    return write


@pytest.fixture
def mixed_root(make_fastmri_file: Callable[..., Path], tmp_path: Path) -> Path:
    """A directory with three multicoil volumes: widths 12, 12, 14 (2+3+2 slices)."""
    make_fastmri_file("file_a.h5", num_slices=2, width=12, seed=1)
    make_fastmri_file(
        "file_b.h5", num_slices=3, width=12, seed=2, attrs={"acquisition": "CORPDFS_FBK"}
    )
    make_fastmri_file("file_c.h5", num_slices=2, width=14, num_coils=3, seed=3)
    return tmp_path / "data"
