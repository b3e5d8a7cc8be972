"""Write a reconstruction as one NIfTI-1 file (``nibabel``), float32 magnitude.

The array is stored as ``(columns, rows, slices)`` = ``volume.transpose(2, 1, 0)``,
so that NIfTI's first axis runs along an image row, as DICOM's and every
viewer's does; the affine (RAS, mm) comes from
:meth:`~unrolled.data.export.geometry.VolumeGeometry.affine_ras`. Both the
qform and the sform hold it, with code 1 (``scanner``: coordinates in the
scanner's patient frame, as dcm2niix writes them; with the default geometry,
where the file has no slice positions, that frame is the documented default
of :mod:`~unrolled.data.export.geometry`).
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import nibabel as nib
import numpy as np

from unrolled.data.export.geometry import VolumeGeometry

XFORM_CODE = 1
"""NIfTI ``qform_code`` / ``sform_code``: 1, scanner-based anatomical coordinates."""


def nifti_image(
    volume: np.ndarray, geometry: VolumeGeometry, description: str = ""
) -> nib.Nifti1Image:
    """The NIfTI-1 image of a ``(slices, rows, columns)`` magnitude volume.

    Args:
        volume: ``(slices, rows, columns)`` real; stored as float32.
        geometry: where its pixels lie; ``geometry.shape`` must equal ``volume.shape``.
        description: NIfTI ``descrip`` (cut to 79 characters).

    Raises:
        ValueError: the shapes differ, the volume is complex, or the slices are
            not on a regular grid.
    """
    volume = np.asarray(volume)
    if np.iscomplexobj(volume) or volume.ndim != 3:
        raise ValueError(f"volume must be real (slices, rows, columns), got {volume.shape}")
    if tuple(volume.shape) != tuple(geometry.shape):
        raise ValueError(f"volume shape {volume.shape} != geometry shape {geometry.shape}")
    affine = geometry.affine_ras()
    data = np.ascontiguousarray(volume.transpose(2, 1, 0), dtype=np.float32)  # (cols, rows, S)
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=XFORM_CODE)
    image.set_sform(affine, code=XFORM_CODE)
    header = image.header
    header.set_xyzt_units(xyz="mm")
    header.set_data_dtype(np.float32)
    header["descrip"] = description.encode("ascii", "replace")[:79]
    header["cal_min"], header["cal_max"] = 0.0, float(data.max()) if data.size else 0.0
    return image


def write_nifti(
    path: str | PathLike[str], volume: np.ndarray, geometry: VolumeGeometry, description: str = ""
) -> Path:
    """Write :func:`nifti_image` to ``path`` (``.nii`` or ``.nii.gz``); returns the path.

    Raises:
        ValueError: as :func:`nifti_image`.
    """
    path = Path(path)
    nib.save(nifti_image(volume, geometry, description), path)
    return path
