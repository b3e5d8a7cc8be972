"""An ISMRMRD XML header built from a Siemens twix protocol (``MeasYaps``/``Meas``/``Dicom``).

Only acquisition parameters go in (no identifying field): encoded and recon
matrix and field of view (mm; readout oversampling in the encoded space),
slice thickness, encoding limits, trajectory, system, field strength, TR/TE/
flip angle, patient position and protocol name. Field names follow the ISMRMRD
schema (https://ismrmrd.readthedocs.io/en/latest/mrd_header.html); the twix
parameter names are those ``siemens_to_ismrmrd`` maps.
"""

from __future__ import annotations

from typing import Any

from unrolled.data.header import NAMESPACE
from unrolled.data.raw import xmlhdr


def protocol_value(hdr: dict, key: str, sub: str | None, default: Any) -> Any:
    """``MeasYaps[key][sub]`` (or ``MeasYaps[key]``), then ``Meas``/``Dicom``/``Config``."""
    for section in ("MeasYaps", "Meas", "Dicom", "Config"):
        node = hdr.get(section, {}).get(key)
        if node is None or node == "":
            continue
        if sub is None:
            return node
        if isinstance(node, dict) and sub in node:
            return node[sub]
    return default


def build_header(
    hdr: dict, readouts: list, num_coils: int, center_line: int | None
) -> tuple[bytes, dict]:
    """The XML and the numbers the converter needs.

    Args:
        hdr: ``twixtools`` header dict of the measurement.
        readouts: the imaging readouts (their line indices and centres set the
            encoding limits where the protocol is silent).
        num_coils: receiver channels.
        center_line: the MDH ``CenterLin`` (k-space centre line), ``None``: matrix centre.

    Returns:
        ``(xml bytes, {"encoded", "recon", "center_line", "max_line", "acceleration"})``.
    """
    yaps = hdr.get("MeasYaps", {})
    slice0 = (yaps.get("sSliceArray", {}).get("asSlice") or [{}])[0]
    base = int(protocol_value(hdr, "sKSpace", "lBaseResolution", 0))
    lines = int(protocol_value(hdr, "sKSpace", "lPhaseEncodingLines", 0))
    os_factor = float(protocol_value(hdr, "flReadoutOSFactor", None, 2.0))
    samples = max(r.data.shape[1] for r in readouts)
    max_line = max(r.line for r in readouts)
    enc_y = max(int(float(protocol_value(hdr, "iPEFTLength", None, lines))), lines, max_line + 1)
    enc_x = max(int(round(base * os_factor)), samples)
    center_line = enc_y // 2 if center_line is None else int(center_line)
    fov_read = float(slice0.get("dReadoutFOV", 0.0))
    fov_phase = float(slice0.get("dPhaseFOV", 0.0))
    thickness = float(slice0.get("dThickness", 0.0))
    num_slices = int(yaps.get("sSliceArray", {}).get("lSize", 1) or 1)
    accel = float(protocol_value(hdr, "sPat", "lAccelFactPE", 1) or 1)
    tr = protocol_value(hdr, "alTR", None, None)
    te = protocol_value(hdr, "alTE", None, None)
    flip = protocol_value(hdr, "adFlipAngleDegree", None, None)

    root = xmlhdr.parse(f'<ismrmrdHeader xmlns="{NAMESPACE}"/>')
    put = xmlhdr.set_text
    put(root, ("version",), 1)
    system = ("acquisitionSystemInformation",)
    put(root, (*system, "systemVendor"), "SIEMENS")
    model = protocol_value(hdr, "ManufacturersModelName", None, None)
    if model:
        put(root, (*system, "systemModel"), model)
    field = protocol_value(hdr, "flMagneticFieldStrength", None, None)
    if field:
        put(root, (*system, "systemFieldStrength_T"), float(field))
    put(root, (*system, "receiverChannels"), num_coils)
    freq = protocol_value(hdr, "lFrequency", None, 0)
    put(root, ("experimentalConditions", "H1resonanceFrequency_Hz"), int(freq or 0))
    enc = ("encoding",)
    for space, (mx, fx) in {
        "encodedSpace": (enc_x, fov_read * enc_x / max(base, 1)),
        "reconSpace": (base, fov_read),
    }.items():
        put(root, (*enc, space, "matrixSize", "x"), mx)
        put(root, (*enc, space, "matrixSize", "y"), enc_y if space == "encodedSpace" else lines)
        put(root, (*enc, space, "matrixSize", "z"), 1)
        put(root, (*enc, space, "fieldOfView_mm", "x"), fx)
        put(
            root,
            (*enc, space, "fieldOfView_mm", "y"),
            fov_phase * enc_y / max(lines, 1) if space == "encodedSpace" else fov_phase,
        )
        put(root, (*enc, space, "fieldOfView_mm", "z"), thickness)
    limits = (*enc, "encodingLimits")
    for name, (lo, hi, mid) in {
        "kspace_encoding_step_1": (0, max_line, center_line),
        "kspace_encoding_step_2": (0, 0, 0),
        "slice": (0, num_slices - 1, 0),
    }.items():
        put(root, (*limits, name, "minimum"), lo)
        put(root, (*limits, name, "maximum"), hi)
        put(root, (*limits, name, "center"), mid)
    put(root, (*enc, "trajectory"), "cartesian")
    if accel > 1:
        pi = (*enc, "parallelImaging", "accelerationFactor")
        put(root, (*pi, "kspace_encoding_step_1"), int(accel))
        put(root, (*pi, "kspace_encoding_step_2"), 1)
    seq = ("sequenceParameters",)
    if tr:
        put(root, (*seq, "TR"), float(tr[0]) / 1000)
    if te:
        put(root, (*seq, "TE"), float(te[0]) / 1000)
    if flip:
        put(root, (*seq, "flipAngle_deg"), float(flip[0]))
    position = protocol_value(hdr, "tPatientPosition", None, None)
    if position:
        put(root, ("measurementInformation", "patientPosition"), position)
    protocol = protocol_value(hdr, "tProtocolName", None, None)
    if protocol:
        put(root, ("measurementInformation", "protocolName"), protocol)
    _order(root)
    info = {
        "encoded": (enc_x, enc_y, 1),
        "recon": (base, lines, 1),
        "center_line": center_line,
        "max_line": max_line,
        "acceleration": accel if accel > 1 else None,
    }
    return xmlhdr.serialize(root), info


_SCHEMA_ORDER = (
    "version",
    "subjectInformation",
    "studyInformation",
    "measurementInformation",
    "acquisitionSystemInformation",
    "experimentalConditions",
    "encoding",
    "sequenceParameters",
)


def _order(root) -> None:
    """Put the top-level elements in the order the ISMRMRD schema requires."""
    children = sorted(root, key=lambda c: _SCHEMA_ORDER.index(xmlhdr.tag(c)))
    for child in list(root):
        root.remove(child)
    root.extend(children)
