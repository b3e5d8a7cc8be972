"""Read a Siemens twix ``.dat`` file (VB or VD/VE, via ``twixtools``) into a :class:`RawScan`.

The measurement data headers (MDH) say what each readout is: noise-adjust
scans (``NOISEADJSCAN``) give the coil noise covariance, ``PATREFSCAN`` lines
are calibration-only (``PATREFANDIMASCAN`` are both), synchronisation,
feedback and phase-stabilisation scans are skipped. Reflected lines or
phase-correction scans (EPI), a non-Cartesian trajectory and 3D encoding are
refused. The ISMRMRD XML header is built from the protocol
(:mod:`~unrolled.data.raw.twix_header`). Slice position and orientation come
from each MDH's slice data, converted as ``siemens_to_ismrmrd`` does.
"""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

import numpy as np

from unrolled.data.errors import DataError
from unrolled.data.raw.scan import RawScan, Readout, RefusedScan
from unrolled.data.raw.twix_header import build_header, protocol_value

_SKIPPED = (
    "SYNCDATA",
    "ACQEND",
    "RTFEEDBACK",
    "HPFEEDBACK",
    "REFPHASESTABSCAN",
    "PHASESTABSCAN",
    "VOP",
    "RETRO_DUMMYSCAN",
)
_TRAJECTORIES = {1: "cartesian", 2: "radial", 4: "spiral", 8: "propeller (BLADE)"}


def read_twix(path: str | Path) -> RawScan:
    """Read the last measurement of a twix file (earlier ones: noise adjustment).

    Args:
        path: the ``.dat`` file.

    Returns:
        The :class:`RawScan`; ``header_xml`` is an ISMRMRD header built from the protocol.

    Raises:
        RefusedScan: EPI (reflected lines, phase-correction scans), a non-Cartesian
            trajectory, or 3D encoding.
        DataError: unreadable, or no imaging readouts.
    """
    import twixtools

    path = Path(path)
    problem = None
    with warnings.catch_warnings():  # twixtools leaves its file open on errors: let the
        warnings.simplefilter("ignore", ResourceWarning)  # traceback go and close it quietly
        try:
            twix = twixtools.read_twix(str(path), verbose=False)
        except Exception as e:  # noqa: BLE001 - twixtools raises many kinds on bad files
            problem = f"cannot read as Siemens twix ({type(e).__name__}: {e})"
        gc.collect()
    if problem is not None:
        raise DataError(path, problem)
    if not twix or "hdr" not in twix[-1]:
        raise DataError(path, "no measurement found in this twix file")
    meas = twix[-1]
    hdr = meas["hdr"]
    _refuse_by_protocol(path, hdr)
    mdbs = meas["mdb"]
    noise = [m for scan in twix for m in scan["mdb"] if m.is_flag_set("NOISEADJSCAN")]
    readouts = []
    epi_flags = set()
    for mdb in mdbs:
        flags = set(mdb.get_active_flags())
        if flags & {"REFLECT", "PHASCOR"}:
            epi_flags |= flags & {"REFLECT", "PHASCOR"}
            continue
        if flags & set(_SKIPPED) or "NOISEADJSCAN" in flags or not _has_data(mdb):
            continue
        mdh = mdb.mdh
        counter = mdh.Counter
        if counter.Par != 0 and int(protocol_value(hdr, "sKSpace", "ucDimension", 2)) != 2:
            raise RefusedScan(path, "3D encoding (partition counter varies)")
        readouts.append(
            Readout(
                data=np.asarray(mdb.data, dtype=np.complex64),  # (coils, samples)
                line=int(counter.Lin),
                center_sample=int(mdh.CenterCol),
                slice=int(counter.Sli),
                average=int(counter.Ave),
                volume=(int(counter.Rep), int(counter.Eco), int(counter.Phs), int(counter.Set)),
                calibration_only="PATREFSCAN" in flags and "PATREFANDIMASCAN" not in flags,
                geometry=_geometry(mdh),
            )
        )
    if epi_flags:
        raise RefusedScan(
            path,
            "EPI (reflected readouts and phase-correction scans; ramp sampling needs regridding)",
        )
    if not readouts:
        raise DataError(path, "holds no imaging readouts")
    centres = {int(m.mdh.CenterLin) for m in mdbs if m.is_image_scan()}
    header, info = build_header(
        hdr, readouts, readouts[0].data.shape[0], centres.pop() if len(centres) == 1 else None
    )
    dwell = protocol_value(hdr, "sRXSPEC", "alDwellTime", None)
    return RawScan(
        path=path,
        format=f"Siemens twix {'VB' if _is_vb(meas) else 'VD/VE'}",
        header_xml=header,
        encoded_size=info["encoded"],
        recon_size=info["recon"],
        center_line=info["center_line"],
        max_line=info["max_line"],
        readouts=readouts,
        noise=[np.asarray(m.data, dtype=np.complex64) for m in noise],
        noise_dwell_us=_noise_dwell(twix),
        data_dwell_us=float(dwell[0]) / 1000 if dwell else None,
        acceleration=info["acceleration"],
        identifiers=_identifiers(hdr),
        description=str(protocol_value(hdr, "tProtocolName", None, "") or ""),
    )


def _refuse_by_protocol(path: Path, hdr: dict) -> None:
    dimension = int(protocol_value(hdr, "sKSpace", "ucDimension", 2))
    if dimension != 2:
        raise RefusedScan(path, "3D encoding (sKSpace.ucDimension = 3D)")
    trajectory = int(protocol_value(hdr, "sKSpace", "ucTrajectory", 1))
    if trajectory != 1:
        name = _TRAJECTORIES.get(trajectory, f"code {trajectory}")
        raise RefusedScan(path, f"{name} trajectory")


def _has_data(mdb) -> bool:
    try:
        return mdb.data.size > 0
    except Exception:  # noqa: BLE001 - an MDB without samples
        return False


def _is_vb(meas: dict) -> bool:
    return "raidfile_hdr" not in meas


def _noise_dwell(twix: list) -> float | None:
    for scan in twix:
        if any(m.is_flag_set("NOISEADJSCAN") for m in scan["mdb"]):
            dwell = protocol_value(scan["hdr"], "sRXSPEC", "alDwellTime", None)
            return float(dwell[0]) / 1000 if dwell else None
    return None


def _geometry(mdh) -> tuple[tuple[float, ...], ...]:
    """``(position, read_dir, phase_dir, slice_dir)`` in the patient coordinate system.

    The rotation is ``twixtools.geometry``'s (scalar-first quaternion of the
    MDH slice data, readout and phase columns negated: columns are the phase,
    read and slice directions in (Sag, Cor, Tra)); the position is the MDH
    slice position in mm.
    """
    from twixtools.geometry import quat_to_rotmat

    rot = quat_to_rotmat(*(float(q) for q in mdh.SliceData.Quaternion))
    rot[:, :2] *= -1
    pos = mdh.SliceData.SlicePos
    return (
        (float(pos.Sag), float(pos.Cor), float(pos.Tra)),
        tuple(float(v) for v in rot[:, 1]),
        tuple(float(v) for v in rot[:, 0]),
        tuple(float(v) for v in rot[:, 2]),
    )


def _identifiers(hdr: dict) -> dict[str, str]:
    out = {}
    for key, names in {
        "patientName": ("tPatientName", "PatientName"),
        "patientID": ("PatientID",),
        "patientBirthdate": ("PatientBirthDay",),
    }.items():
        for section in ("Config", "Meas", "Dicom"):
            value = hdr.get(section, {}).get(names[0]) or next(
                (hdr.get(section, {}).get(n) for n in names[1:] if hdr.get(section, {}).get(n)),
                None,
            )
            if value:
                out[key] = str(value)
                break
    return out
