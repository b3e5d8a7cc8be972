"""Where each pixel of a reconstruction lies in the patient: spacing, orientation, positions.

A reconstruction is ``(slices, rows, columns)`` float32 as fastMRI writes it:
rows run along the readout (k-space ``H``, ISMRMRD ``x``), columns along the
phase encoding (``W``, ISMRMRD ``y``), cropped at the centre to the header's
``reconSpace`` matrix. Its geometry comes from the file's ISMRMRD header:

- pixel spacing: ``reconSpace`` field of view / ``reconSpace`` matrix, per axis
  (the crop keeps the pixel size; fastMRI's ``encodedSpace`` includes the 2x
  readout oversampling, e.g. 640 px over 280 mm, the same 0.4375 mm as 320 px
  over 140 mm of ``reconSpace``);
- slice thickness: ``reconSpace`` field of view ``z`` (else ``encodedSpace``'s);
- slice positions and orientation: from the optional datasets that
  ``unrolled-convert`` writes (:mod:`unrolled.data.raw.convert`): ``slice_position``
  (the centre of each slice), ``read_dir``, ``phase_dir`` and ``slice_dir`` (unit
  vectors), each ``(slices, 3)``, ISMRMRD acquisition-header convention, DICOM
  patient coordinates LPS, mm. Rows (k-space ``H``) run along ``read_dir``, columns
  (``W``) along ``phase_dir``: DICOM's ``ImageOrientationPatient`` is ``(phase_dir,
  read_dir)``, and ``ImagePositionPatient`` (the centre of the first pixel) lies
  ``rows // 2`` rows and ``columns // 2`` columns before the slice centre.
  Otherwise the documented default :data:`DEFAULT_ORIENTATION`:
  axial slices, columns towards the patient's left, rows towards posterior,
  slices stacked towards the head, ``slice thickness + gap`` apart, the volume
  centred at the origin.

Two coordinate conventions meet here: DICOM's patient system is LPS (x to the
patient's left, y posterior, z head), NIfTI's world is RAS (x right-to-left
negated, y anterior, z head): ``RAS = diag(-1, -1, 1) LPS``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np

from unrolled.data.header import NAMESPACE

POSITION_KEYS = ("slice_position", "read_dir", "phase_dir")
"""Optional datasets of an input file (all or none), ``(slices, 3)`` float, LPS mm / unit
vectors; ``slice_dir`` may come with them (checked: unit length, normal to both)."""

DEFAULT_ORIENTATION = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))
"""Default DICOM ``ImageOrientationPatient``: along a row towards the patient's left (+x
LPS), down a column towards posterior (+y LPS): axial, as radiologists view it."""

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class VolumeGeometry:
    """The patient-space geometry of a ``(slices, rows, columns)`` volume.

    Attributes:
        shape: ``(slices, rows, columns)``.
        pixel_spacing_mm: ``(between rows, between columns)``, DICOM ``PixelSpacing`` order.
        slice_thickness_mm: nominal slice thickness.
        row_cosine: LPS unit vector along a row (increasing column index), ``(3,)``.
        column_cosine: LPS unit vector down a column (increasing row index), ``(3,)``.
        positions_lps: centre of the first pixel (row 0, column 0) of each slice,
            ``(slices, 3)`` mm LPS: DICOM ``ImagePositionPatient``.
        from_header: whether positions and orientation came from the file
            (``False``: the documented default).
    """

    shape: tuple[int, int, int]
    pixel_spacing_mm: tuple[float, float]
    slice_thickness_mm: float
    row_cosine: np.ndarray
    column_cosine: np.ndarray
    positions_lps: np.ndarray
    from_header: bool = False

    @property
    def normal(self) -> np.ndarray:
        """Slice normal ``row_cosine x column_cosine``, LPS ``(3,)``."""
        return np.cross(self.row_cosine, self.column_cosine)

    @property
    def slice_locations_mm(self) -> np.ndarray:
        """Position of each slice along the normal, ``(slices,)`` (DICOM ``SliceLocation``)."""
        return self.positions_lps @ self.normal

    @property
    def slice_spacing_mm(self) -> float:
        """Distance between neighbouring slices (the thickness for a single slice)."""
        if self.shape[0] < 2:
            return self.slice_thickness_mm
        return float(np.abs(np.diff(self.slice_locations_mm)).mean())

    def affine_ras(self) -> np.ndarray:
        """The NIfTI affine of the array ``volume.transpose(2, 1, 0)`` (columns, rows, slices).

        Voxel ``(i, j, k)`` = (column, row, slice) maps to RAS mm.

        Raises:
            ValueError: the slices are not equally spaced along one line (NIfTI
                needs a regular grid).
        """
        dr, dc = self.pixel_spacing_mm
        step = self.positions_lps[1] - self.positions_lps[0] if self.shape[0] > 1 else None
        if step is None:
            step = self.normal * self.slice_thickness_mm
        expected = self.positions_lps[0] + np.arange(self.shape[0])[:, None] * step
        if not np.allclose(self.positions_lps, expected, atol=1e-3):
            raise ValueError("slices are not equally spaced along a line; NIfTI needs a grid")
        lps = np.eye(4)
        lps[:3, 0] = self.row_cosine * dc
        lps[:3, 1] = self.column_cosine * dr
        lps[:3, 2] = step
        lps[:3, 3] = self.positions_lps[0]
        ras = np.eye(4)
        ras[:3] = LPS_TO_RAS @ lps[:3]
        return ras


def _node(root: ET.Element, *path: str) -> float | None:
    node = root.find("/".join(f"{{{NAMESPACE}}}{p}" for p in path))
    if node is None or node.text is None:
        return None
    try:
        return float(node.text)
    except ValueError:
        return None


def header_spacing(xml: bytes | str) -> tuple[tuple[float, float], float]:
    """Pixel spacing ``(rows, columns)`` and slice thickness (mm) of an ISMRMRD header.

    Raises:
        ValueError: the XML is malformed or lacks a positive field of view and
            matrix size (``reconSpace``, or ``encodedSpace`` as a fallback).
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        raise ValueError(f"ismrmrd_header is not valid XML ({e})") from None
    for space in ("reconSpace", "encodedSpace"):
        fov = [_node(root, "encoding", space, "fieldOfView_mm", a) for a in "xyz"]
        mat = [_node(root, "encoding", space, "matrixSize", a) for a in "xy"]
        if all(v is not None and v > 0 for v in (*fov[:2], *mat)):
            spacing = (fov[0] / mat[0], fov[1] / mat[1])  # type: ignore[operator]
            thickness = fov[2] if fov[2] and fov[2] > 0 else None
            if thickness is None:
                thickness = _node(root, "encoding", "encodedSpace", "fieldOfView_mm", "z")
            if not thickness or thickness <= 0:
                raise ValueError("ismrmrd_header gives no slice thickness (fieldOfView_mm z)")
            return spacing, float(thickness)  # type: ignore[return-value]
    raise ValueError("ismrmrd_header lacks a field of view and matrix size (reconSpace)")


def volume_geometry(
    xml: bytes | str,
    shape: tuple[int, int, int],
    slice_positions: dict[str, np.ndarray] | None = None,
    slice_gap_mm: float = 0.0,
) -> VolumeGeometry:
    """The geometry of a reconstruction of ``shape`` from its input file's header.

    Args:
        xml: the input's ``ismrmrd_header``.
        shape: ``(slices, rows, columns)`` written.
        slice_positions: the datasets :data:`POSITION_KEYS` of the input file (and
            ``slice_dir`` when present), or ``None``.
        slice_gap_mm: gap between slices of the default stack (ignored with positions).

    Returns:
        The :class:`VolumeGeometry`. Positions from the file are slice centres;
        the first pixel lies ``rows // 2`` rows and ``columns // 2`` columns before
        it (the centre pixel of a centred FFT).

    Raises:
        ValueError: the header lacks the fields, or the position datasets have
            the wrong shape or non-orthonormal directions.
    """
    spacing, thickness = header_spacing(xml)
    s, rows, cols = shape
    dr, dc = spacing
    if slice_positions is None:
        row_cos, col_cos = (np.asarray(v, dtype=float) for v in DEFAULT_ORIENTATION)
        step = thickness + float(slice_gap_mm)
        z = (np.arange(s) - (s - 1) / 2) * step
        centres = np.stack([np.zeros(s), np.zeros(s), z], axis=1)
        row_cos_s = np.broadcast_to(row_cos, (s, 3))
        col_cos_s = np.broadcast_to(col_cos, (s, 3))
    else:
        keys = (*POSITION_KEYS, *(["slice_dir"] if "slice_dir" in slice_positions else []))
        arrays = {k: np.asarray(slice_positions[k], dtype=float) for k in keys}
        for k, a in arrays.items():
            if a.shape != (s, 3):
                raise ValueError(f"dataset {k!r} must have shape ({s}, 3), got {a.shape}")
        centres = arrays["slice_position"]
        col_cos_s, row_cos_s = arrays["read_dir"], arrays["phase_dir"]  # rows = readout
        for name, a in (("read_dir", col_cos_s), ("phase_dir", row_cos_s)):
            if not np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-4):
                raise ValueError(f"dataset {name!r} holds vectors that are not unit length")
        if not np.allclose((col_cos_s * row_cos_s).sum(1), 0.0, atol=1e-4):
            raise ValueError("datasets 'read_dir' and 'phase_dir' are not orthogonal")
        if "slice_dir" in arrays:
            slice_dir = arrays["slice_dir"]
            if not np.allclose(np.linalg.norm(slice_dir, axis=1), 1.0, atol=1e-4):
                raise ValueError("dataset 'slice_dir' holds vectors that are not unit length")
            if not np.allclose(np.abs((slice_dir * np.cross(col_cos_s, row_cos_s)).sum(1)), 1):
                raise ValueError("dataset 'slice_dir' is not normal to 'read_dir' and 'phase_dir'")
        if not (np.allclose(row_cos_s, row_cos_s[0]) and np.allclose(col_cos_s, col_cos_s[0])):
            raise ValueError("slices of one volume must share read_dir and phase_dir")
        row_cos, col_cos = row_cos_s[0], col_cos_s[0]
    first = centres - (rows // 2) * dr * col_cos_s - (cols // 2) * dc * row_cos_s  # (S, 3)
    return VolumeGeometry(
        shape=(s, rows, cols),
        pixel_spacing_mm=(float(dr), float(dc)),
        slice_thickness_mm=float(thickness),
        row_cosine=np.array(row_cos, dtype=float),
        column_cosine=np.array(col_cos, dtype=float),
        positions_lps=np.ascontiguousarray(first, dtype=float),
        from_header=slice_positions is not None,
    )
