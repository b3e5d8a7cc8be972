"""Export a folder of reconstructions as NIfTI and DICOM beside (or instead of) the HDF5 files.

``unrolled-reconstruct output_format=[h5,nifti,dicom]`` reconstructs into a hidden
staging folder inside ``output_dir`` (:func:`staging_dir`), then
:func:`write_exports` turns each volume ``file1000.h5`` into

- ``file1000.nii.gz`` (:mod:`~unrolled.data.export.nifti`),
- ``file1000_dicom/IM_0001.dcm ...`` (:mod:`~unrolled.data.export.dicom`),

with the geometry of the input file's header (:mod:`~unrolled.data.export.geometry`),
and moves everything requested into place only once all of it was written: a
failure leaves ``output_dir`` as it was. :func:`plan_exports` reads every input
header and checks every target before any reconstruction starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import h5py
import numpy as np

from unrolled.data.errors import DataError
from unrolled.data.export.dicom import write_dicom_series
from unrolled.data.export.geometry import POSITION_KEYS, VolumeGeometry, volume_geometry
from unrolled.data.export.nifti import write_nifti
from unrolled.data.fastmri_io import VolumeInfo
from unrolled.data.writer import RECONSTRUCTION_KEY

FORMATS = ("h5", "nifti", "dicom")
"""Output formats: fastMRI's HDF5 submission layout, NIfTI-1 (gzipped), a DICOM series."""


def parse_formats(value: str | Sequence[str]) -> tuple[str, ...]:
    """``"h5"``, ``"dicom"`` or a list such as ``["h5", "nifti"]`` -> formats, in order, unique.

    Raises:
        ValueError: an unknown format, or none.
    """
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        name = str(item).strip().lower()
        if name not in FORMATS:
            raise ValueError(
                f"output_format: expected {', '.join(FORMATS)} or a list of them, got {item!r}"
            )
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError("output_format: empty; pass h5, nifti, dicom or a list of them")
    return tuple(out)


def output_names(fname: str, formats: Sequence[str]) -> dict[str, str]:
    """Output name per format of input ``fname``: ``x.h5``, ``x.nii.gz``, ``x_dicom``."""
    stem = Path(fname).stem
    names = {"h5": fname, "nifti": f"{stem}.nii.gz", "dicom": f"{stem}_dicom"}
    return {f: names[f] for f in formats}


def pseudonym(patient_id: str) -> str:
    """A stable pseudonymous ``PatientID``: ``anon-`` and 16 hex digits of SHA-256."""
    return "anon-" + hashlib.sha256(patient_id.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class VolumeExport:
    """What :func:`write_exports` needs of one input volume.

    Attributes:
        fname: the input (and HDF5 output) file name.
        geometry: the reconstruction's geometry, from the input's header.
        header_xml: the input's ISMRMRD header (acquisition parameters for DICOM).
        patient: the pseudonym (:func:`pseudonym` of ``patient_id``, else of the file name).
        targets: output path per format.
    """

    fname: str
    geometry: VolumeGeometry
    header_xml: bytes
    patient: str
    targets: dict[str, Path]


def plan_exports(
    volumes: Sequence[VolumeInfo],
    output_dir: str | PathLike[str],
    formats: Sequence[str],
    overwrite: bool = False,
    slice_gap_mm: float = 0.0,
) -> list[VolumeExport]:
    """Read each input's geometry and check every target, before any work.

    Raises:
        DataError: an input's header lacks what the geometry needs.
        FileExistsError: an output exists and ``overwrite`` is false.
    """
    out = Path(output_dir)
    plans = []
    for vol in volumes:
        xml, positions = _read_geometry_source(vol.path)
        shape = (vol.num_slices, *vol.crop_size)
        try:
            geometry = volume_geometry(xml, shape, positions, slice_gap_mm)  # type: ignore[arg-type]
            if "nifti" in formats:
                geometry.affine_ras()
        except ValueError as e:
            raise DataError(vol.path, f"cannot export its geometry: {e}") from None
        pid = str(vol.attrs.get("patient_id", "")) or vol.fname
        targets = {f: out / n for f, n in output_names(vol.fname, formats).items()}
        plans.append(VolumeExport(vol.fname, geometry, xml, pseudonym(pid), targets))
    if not overwrite:
        existing = [p.name for v in plans for p in v.targets.values() if p.exists()]
        if existing:
            raise FileExistsError(
                f"{out}: {len(existing)} outputs exist already ({', '.join(existing)}); "
                "pass overwrite=true to replace them"
            )
    return plans


@contextlib.contextmanager
def staging_dir(output_dir: str | PathLike[str]) -> Iterator[Path]:
    """A hidden folder inside ``output_dir`` (created if missing), removed on exit.

    On an exception the folders this call created are removed too (if empty).
    """
    out = Path(output_dir)
    created = []
    p = out
    while not p.exists():
        created.append(p)
        p = p.parent
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=out, prefix=".unrolled-export-"))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        for d in created:
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
    shutil.rmtree(stage, ignore_errors=True)


def write_exports(
    staging: Path, plans: Sequence[VolumeExport], method: str, overwrite: bool = False
) -> list[Path]:
    """Convert ``staging / fname`` (HDF5) of each plan, then publish all outputs at once.

    Args:
        staging: where the HDF5 reconstructions are (from :func:`staging_dir`).
        plans: from :func:`plan_exports`; their ``targets`` say which formats.
        method: the reconstruction method, named in the files.
        overwrite: replace existing outputs (otherwise they are refused).

    Returns:
        The outputs published.

    Raises:
        FileExistsError: an output appeared meanwhile and ``overwrite`` is false.
        DataError: a reconstruction cannot be exported (e.g. negative values);
            nothing is published then.
    """
    studies: dict[str, str] = {}
    staged: list[tuple[Path, Path]] = []
    for number, plan in enumerate(plans, start=1):
        h5_path = staging / plan.fname
        with h5py.File(h5_path, "r") as f:
            volume = np.asarray(f[RECONSTRUCTION_KEY][()], dtype=np.float32)  # (S, h, w)
        description = f"unrolled research reconstruction ({method}) of {plan.fname}"
        for fmt, target in plan.targets.items():
            src = staging / f".{fmt}" / target.name
            src.parent.mkdir(exist_ok=True)
            try:
                if fmt == "h5":
                    src = h5_path
                elif fmt == "nifti":
                    write_nifti(src, volume, plan.geometry, description)
                else:
                    from pydicom.uid import generate_uid

                    write_dicom_series(
                        src,
                        volume,
                        plan.geometry,
                        method=method,
                        patient_id=plan.patient,
                        series_description=f"unrolled {method} {Path(plan.fname).stem}",
                        series_number=number,
                        study_uid=studies.setdefault(plan.patient, generate_uid()),
                        header_xml=plan.header_xml,
                    )
            except ValueError as e:
                raise DataError(target, f"cannot write {fmt}: {e}") from None
            staged.append((src, target))
    return _publish(staged, overwrite)


def _read_geometry_source(path: Path) -> tuple[bytes, dict[str, np.ndarray] | None]:
    """The ISMRMRD header and, where all present, the datasets :data:`POSITION_KEYS`.

    ``slice_dir`` comes with them when the file has it (``unrolled-convert`` writes it).
    """
    try:
        with h5py.File(path, "r") as f:
            if "ismrmrd_header" not in f:
                raise DataError(path, "has no ismrmrd_header: the export needs its geometry")
            xml = f["ismrmrd_header"][()]
            present = [k for k in (*POSITION_KEYS, "slice_dir") if k in f]
            positions = {k: np.asarray(f[k][()]) for k in present} if present else None
    except OSError as e:
        raise DataError(path, f"unreadable HDF5 file ({e})") from None
    missing = sorted(set(POSITION_KEYS) - set(positions or {}))
    if positions is not None and missing:  # slice_dir alone, or a partial set
        raise DataError(path, f"has slice positions but lacks {', '.join(missing)}")
    xml = xml if isinstance(xml, bytes) else bytes(np.asarray(xml).tobytes())
    return xml, positions


def _publish(staged: Sequence[tuple[Path, Path]], overwrite: bool) -> list[Path]:
    """Move files and folders into place; never clobber without ``overwrite``; undo on failure."""
    done: list[tuple[Path, Path | None]] = []  # (target, its previous version moved aside)
    try:
        for src, dst in staged:
            old = None
            if dst.exists() or dst.is_symlink():
                if not overwrite:
                    raise FileExistsError(
                        f"{dst}: created by someone else meanwhile; pass overwrite=true to replace"
                    )
                old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
                os.replace(dst, old)
            try:
                os.replace(src, dst)
            except BaseException:
                if old is not None:
                    os.replace(old, dst)
                raise
            done.append((dst, old))
    except BaseException:
        for dst, old in reversed(done):
            _remove(dst)
            if old is not None:
                os.replace(old, dst)
        raise
    for _, old in done:
        if old is not None:
            _remove(old)
    return [dst for dst, _ in done]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
