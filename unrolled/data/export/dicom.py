"""Write a reconstruction as one DICOM MR Image series (``pydicom``), one file per slice.

Each slice is an MR Image Storage instance (explicit VR little endian) with

- pixel spacing, slice thickness, spacing between slices, ``ImagePositionPatient``
  and ``ImageOrientationPatient`` from a :class:`~unrolled.data.export.geometry.VolumeGeometry`
  (the same geometry as the NIfTI export, in DICOM's LPS frame);
- unsigned 16-bit stored values with one ``RescaleSlope`` for the series and
  ``RescaleIntercept`` 0: ``value = stored * slope`` within ``slope / 2``, the
  slope chosen so that the volume maximum is stored as 65535;
- ``WindowCenter`` / ``WindowWidth`` spanning 0 to the 99.5th percentile;
- new UIDs (``pydicom.uid.generate_uid``), ``ImageType`` ``DERIVED\\SECONDARY``,
  and ``ImageComments`` / ``DerivationDescription`` saying that it is a research
  reconstruction by ``unrolled`` and which method made it;
- no identifying data: ``PatientName`` ``Anonymous``, ``PatientID`` the caller's
  pseudonym, no birth date, no study date.

Acquisition parameters that the ISMRMRD header carries (TR, TE, TI, flip
angle, field strength) are copied; nothing else from the input is.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from os import PathLike
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from pydicom.valuerep import format_number_as_ds

from unrolled.data.export.geometry import VolumeGeometry
from unrolled.data.header import NAMESPACE

STORED_MAX = 65535
"""Largest stored value (16 bits, unsigned)."""


def _ds(value: float) -> str:
    """A decimal string of at most 16 characters (DICOM ``DS``)."""
    return format_number_as_ds(float(value))


def rescale_slope(volume: np.ndarray) -> float:
    """The series' ``RescaleSlope``: the volume maximum maps to 65535 (1 for an empty volume).

    The value returned is the one stored (rounded to a 16-character decimal
    string), so that ``stored * slope`` is exactly what a reader computes.
    """
    peak = float(np.max(volume)) if volume.size else 0.0
    slope = peak / STORED_MAX if peak > 0 else 1.0
    slope = float(_ds(slope))
    if peak / slope > STORED_MAX + 0.5:  # rounding the string made it smaller: step up
        slope = float(_ds(slope * (1 + 1e-6)))
    return slope


def acquisition_parameters(xml: bytes | str | None) -> dict[str, float]:
    """TR, TE, TI (ms), flip angle (deg) and field strength (T) from an ISMRMRD header.

    Missing or unparsable fields are left out; never raises.
    """
    if not xml:
        return {}
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return {}
    fields = {
        "RepetitionTime": ("sequenceParameters", "TR"),
        "EchoTime": ("sequenceParameters", "TE"),
        "InversionTime": ("sequenceParameters", "TI"),
        "FlipAngle": ("sequenceParameters", "flipAngle_deg"),
        "MagneticFieldStrength": ("acquisitionSystemInformation", "systemFieldStrength_T"),
    }
    out = {}
    for keyword, path in fields.items():
        node = root.find("/".join(f"{{{NAMESPACE}}}{p}" for p in path))
        try:
            out[keyword] = float(node.text)  # type: ignore[union-attr, arg-type]
        except (AttributeError, TypeError, ValueError):
            continue
    return out


def write_dicom_series(
    directory: str | PathLike[str],
    volume: np.ndarray,
    geometry: VolumeGeometry,
    *,
    method: str,
    patient_id: str,
    series_description: str = "",
    series_number: int = 1,
    study_uid: str | None = None,
    header_xml: bytes | str | None = None,
) -> list[Path]:
    """Write ``volume`` as ``directory / IM_0001.dcm ...`` (one file per slice).

    Args:
        directory: created (it must not exist).
        volume: ``(slices, rows, columns)`` non-negative magnitude.
        geometry: where its pixels lie; ``geometry.shape == volume.shape``.
        method: the reconstruction method, named in the comments.
        patient_id: the pseudonym stored as ``PatientID`` (never a real identifier).
        series_description: ``SeriesDescription`` (e.g. the input file name).
        series_number: ``SeriesNumber``.
        study_uid: ``StudyInstanceUID`` shared with other series; new if ``None``.
        header_xml: the input's ISMRMRD header, for TR/TE/TI/flip angle/field.

    Returns:
        The files written, slice order.

    Raises:
        FileExistsError: ``directory`` exists.
        ValueError: the shapes differ, the volume is complex or has negative or
            non-finite values.
    """
    volume = np.asarray(volume)
    if np.iscomplexobj(volume) or volume.ndim != 3:
        raise ValueError(f"volume must be real (slices, rows, columns), got {volume.shape}")
    if tuple(volume.shape) != tuple(geometry.shape):
        raise ValueError(f"volume shape {volume.shape} != geometry shape {geometry.shape}")
    if not np.isfinite(volume).all() or (volume < 0).any():
        raise ValueError("volume must be finite and non-negative (a magnitude image)")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=False)
    slope = rescale_slope(volume)
    stored = np.rint(volume.astype(np.float64) / slope)  # (S, rows, cols)
    stored = np.clip(stored, 0, STORED_MAX).astype(np.uint16)
    top = float(np.percentile(volume, 99.5)) if volume.size else 1.0
    top = top if top > 0 else max(float(volume.max()), 1.0)
    series = _series_dataset(
        geometry,
        method=method,
        patient_id=patient_id,
        series_description=series_description or f"unrolled {method}",
        series_number=series_number,
        study_uid=study_uid or generate_uid(),
        parameters=acquisition_parameters(header_xml),
    )
    series.RescaleSlope = _ds(slope)
    series.WindowCenter = _ds(top / 2)
    series.WindowWidth = _ds(top)
    if top < 1:  # a linear VOI LUT needs width >= 1; LINEAR_EXACT maps any width exactly
        series.VOILUTFunction = "LINEAR_EXACT"
    paths = []
    for k in range(volume.shape[0]):
        ds = _slice_dataset(series, geometry, k, stored[k])
        path = directory / f"IM_{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _series_dataset(
    geometry: VolumeGeometry,
    *,
    method: str,
    patient_id: str,
    series_description: str,
    series_number: int,
    study_uid: str,
    parameters: dict[str, float],
) -> Dataset:
    """The attributes shared by every slice of the series."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["DERIVED", "SECONDARY", "OTHER"]
    ds.SOPClassUID = MRImageStorage
    ds.Modality = "MR"
    ds.Manufacturer = "unrolled (research software)"
    ds.StudyDate = ds.StudyTime = ds.AccessionNumber = ds.ReferringPhysicianName = ""
    ds.StudyDescription = "unrolled research reconstruction"
    ds.SeriesDescription = series_description[:64]
    ds.DerivationDescription = (
        f"Research reconstruction from k-space by unrolled, method {method}; not for diagnostic use"
    )[:1024]
    ds.ImageComments = f"Research reconstruction by unrolled ({method}); not for diagnostic use"
    # patient: anonymous; the pseudonym groups the series of one subject
    ds.PatientName = "Anonymous^"
    ds.PatientID = patient_id[:64]
    ds.PatientBirthDate = ds.PatientSex = ""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "unrolled export: no identifying data, pseudonymous PatientID"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.PositionReferenceIndicator = ""
    ds.StudyID = "unrolled"
    ds.Laterality = ds.PatientPosition = ""  # type 2C: unknown to a reconstruction
    ds.SeriesNumber = int(series_number)
    # MR image: acquisition parameters from the header where known
    ds.ScanningSequence = "RM"  # research mode
    ds.SequenceVariant = "NONE"
    ds.ScanOptions = ""
    ds.MRAcquisitionType = "2D"
    for keyword in ("RepetitionTime", "EchoTime", "InversionTime", "FlipAngle"):
        if keyword in parameters:
            setattr(ds, keyword, _ds(parameters[keyword]))
    for keyword in ("RepetitionTime", "EchoTime"):
        if keyword not in ds:
            setattr(ds, keyword, None)  # type 2: present, may be empty
    ds.EchoTrainLength = None
    if "MagneticFieldStrength" in parameters:
        ds.MagneticFieldStrength = _ds(parameters["MagneticFieldStrength"])
    # plane
    ds.PixelSpacing = [_ds(v) for v in geometry.pixel_spacing_mm]
    ds.SliceThickness = _ds(geometry.slice_thickness_mm)
    ds.SpacingBetweenSlices = _ds(geometry.slice_spacing_mm)
    ds.ImageOrientationPatient = [_ds(v) for v in (*geometry.row_cosine, *geometry.column_cosine)]
    # pixels: unsigned 16 bit, rescaled to the reconstruction's values
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(geometry.shape[1]), int(geometry.shape[2])
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = "0"
    ds.BurnedInAnnotation = "NO"
    return ds


def _slice_dataset(
    series: Dataset, geometry: VolumeGeometry, k: int, pixels: np.ndarray
) -> Dataset:
    """One slice's file: the series attributes, its position, UID and pixel data."""
    ds = Dataset()
    ds.update(series)
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [_ds(v) for v in geometry.positions_lps[k]]
    ds.SliceLocation = _ds(geometry.slice_locations_mm[k])
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds
