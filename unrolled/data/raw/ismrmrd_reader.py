"""Read an ISMRMRD / MRD HDF5 raw file (the ``ismrmrd`` package) into a :class:`RawScan`.

The acquisition flags decide what each readout is: noise measurements give the
coil noise covariance, parallel-calibration-only lines are kept apart (and
merged later), navigator, feedback, dummy and phase-stabilisation scans are
skipped. Reversed lines or phase-correction scans (EPI), a non-Cartesian
trajectory and 3D encoding are refused. Source: the ISMRMRD specification,
https://ismrmrd.readthedocs.io (flags and XML schema).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import ismrmrd
import numpy as np

from unrolled.data.errors import DataError
from unrolled.data.raw import xmlhdr
from unrolled.data.raw.scan import RawScan, Readout, RefusedScan

_SKIPPED = (
    ismrmrd.ACQ_IS_NAVIGATION_DATA,
    ismrmrd.ACQ_IS_RTFEEDBACK_DATA,
    ismrmrd.ACQ_IS_HPFEEDBACK_DATA,
    ismrmrd.ACQ_IS_DUMMYSCAN_DATA,
    ismrmrd.ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA,
    ismrmrd.ACQ_IS_PHASE_STABILIZATION_REFERENCE,
    ismrmrd.ACQ_IS_PHASE_STABILIZATION,
)


def is_ismrmrd(path: Path) -> bool:
    """Whether ``path`` is HDF5 with an ISMRMRD dataset (a group with ``xml`` and ``data``)."""
    try:
        with h5py.File(path, "r") as f:
            return _group(f) is not None
    except OSError:
        return False


def read_ismrmrd(path: str | Path) -> RawScan:
    """Read all acquisitions of an ISMRMRD file.

    Args:
        path: the ``.h5``/``.mrd`` file; the ISMRMRD group is ``dataset`` or the
            first group holding ``xml`` and ``data``.

    Returns:
        The :class:`RawScan` (readouts as complex64 ``(coils, samples)``).

    Raises:
        RefusedScan: not 2D Cartesian (trajectory, 3D encoding, EPI lines).
        DataError: unreadable, no acquisitions, or an inconsistent header.
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            group = _group(f)
    except OSError as e:
        raise DataError(path, f"cannot open as HDF5 ({' '.join(str(e).split())[:120]})") from None
    if group is None:
        raise DataError(path, "no ISMRMRD dataset (a group with 'xml' and 'data') in this HDF5")
    dset = ismrmrd.Dataset(str(path), group, create_if_needed=False)
    try:
        xml = dset.read_xml_header()
        xml = xml if isinstance(xml, bytes) else str(xml).encode()
        root = xmlhdr.parse(xml)
        scan = _scan_from_header(path, root, xml)
        _read_acquisitions(path, dset, scan)
    finally:
        dset.close()
    if not scan.readouts:
        raise DataError(path, "holds no imaging acquisitions")
    return scan


def _group(f: h5py.File) -> str | None:
    if "dataset" in f and "xml" in f["dataset"] and "data" in f["dataset"]:
        return "dataset"
    for name, obj in f.items():
        if isinstance(obj, h5py.Group) and "xml" in obj and "data" in obj:
            return name
    return None


def _scan_from_header(path: Path, root, xml: bytes) -> RawScan:
    encodings = root.findall(f"{{{xmlhdr.NAMESPACE}}}encoding")
    if len(encodings) != 1:
        raise RefusedScan(path, f"{len(encodings)} encoding spaces (one is supported)")
    enc = encodings[0]
    trajectory = xmlhdr.text(enc, "trajectory", default="cartesian")
    if trajectory.lower() != "cartesian":
        raise RefusedScan(path, f"trajectory '{trajectory}'")
    try:
        encoded = tuple(int(xmlhdr.number(enc, "encodedSpace", "matrixSize", a)) for a in "xyz")
        recon = tuple(int(xmlhdr.number(enc, "reconSpace", "matrixSize", a)) for a in "xyz")
    except TypeError:
        raise DataError(path, "ISMRMRD header lacks encodedSpace/reconSpace matrixSize") from None
    if encoded[2] > 1:
        raise RefusedScan(path, f"3D encoding (encoded matrix z = {encoded[2]})")
    limits = ("encodingLimits", "kspace_encoding_step_1")
    center = xmlhdr.number(enc, *limits, "center", default=encoded[1] // 2)
    maximum = xmlhdr.number(enc, *limits, "maximum", default=encoded[1] - 1)
    accel = xmlhdr.number(enc, "parallelImaging", "accelerationFactor", "kspace_encoding_step_1")
    subject = {
        key: xmlhdr.text(root, "subjectInformation", key)
        for key in ("patientName", "patientID", "patientBirthdate")
    }
    return RawScan(
        path=path,
        format="ISMRMRD HDF5",
        header_xml=xml,
        encoded_size=encoded,  # type: ignore[arg-type]
        recon_size=recon,  # type: ignore[arg-type]
        center_line=int(center),
        max_line=int(maximum),
        readouts=[],
        acceleration=accel,
        identifiers={k: v for k, v in subject.items() if v},
        description=xmlhdr.text(root, "measurementInformation", "protocolName", default="") or "",
    )


def _read_acquisitions(path: Path, dset, scan: RawScan) -> None:
    n = dset.number_of_acquisitions()
    if n == 0:
        raise DataError(path, "holds no acquisitions")
    for i in range(n):
        acq = dset.read_acquisition(i)
        flag = acq.is_flag_set
        if flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT):
            scan.noise.append(np.asarray(acq.data, dtype=np.complex64))
            scan.noise_dwell_us = float(acq.sample_time_us) or None
            continue
        if flag(ismrmrd.ACQ_IS_REVERSE) or flag(ismrmrd.ACQ_IS_PHASECORR_DATA):
            raise RefusedScan(path, "EPI-style readouts (reversed lines / phase-correction scans)")
        if any(flag(f) for f in _SKIPPED):
            continue
        if acq.idx.kspace_encode_step_2 != 0:
            raise RefusedScan(path, "3D encoding (kspace_encode_step_2 varies)")
        idx = acq.idx
        geometry = (
            tuple(acq.position),
            tuple(acq.read_dir),
            tuple(acq.phase_dir),
            tuple(acq.slice_dir),
        )
        scan.readouts.append(
            Readout(
                data=np.asarray(acq.data, dtype=np.complex64),  # (coils, samples)
                line=int(idx.kspace_encode_step_1),
                center_sample=int(acq.center_sample),
                slice=int(idx.slice),
                average=int(idx.average),
                volume=(int(idx.repetition), int(idx.contrast), int(idx.phase), int(idx.set)),
                calibration_only=flag(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION),
                geometry=None if not any(map(any, geometry[1:])) else geometry,
            )
        )
        scan.data_dwell_us = float(acq.sample_time_us) or scan.data_dwell_us
