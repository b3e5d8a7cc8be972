"""De-identification of ISMRMRD XML headers and a stable pseudonymous ``patient_id``.

The header is filtered by an *allow list*: only acquisition parameters are kept
(version, system vendor/model/field strength/channels/coil labels, experimental
conditions, the encoding section, sequence parameters, patient position and
protocol name). Everything else goes, in particular ``subjectInformation``
(name, ID, birth date, sex, weight), ``studyInformation`` (dates, IDs,
accession number, physicians), series dates/times, UIDs, institution and
station names, device serial numbers and all ``userParameters``. The
``patient_id`` attribute is a SHA-256 of the patient identifiers (fastMRI's
files carry such a hash), so files of one patient keep one pseudonym.
"""

from __future__ import annotations

import hashlib

from unrolled.data.raw import xmlhdr

_ALLOWED = {
    "version": None,
    "acquisitionSystemInformation": {
        "systemVendor",
        "systemModel",
        "systemFieldStrength_T",
        "relativeReceiverNoiseBandwidth",
        "receiverChannels",
        "coilLabel",
    },
    "experimentalConditions": None,
    "encoding": None,
    "sequenceParameters": None,
    "measurementInformation": {"patientPosition", "protocolName", "sequenceName"},
}
"""Top-level element -> allowed children (``None``: the whole element)."""


def deidentify_header(xml: bytes) -> bytes:
    """The header with only the allowed elements (see the module docstring).

    Raises:
        ValueError: malformed XML.
    """
    root = xmlhdr.parse(xml)
    for child in list(root):
        name = xmlhdr.tag(child)
        if name not in _ALLOWED:
            root.remove(child)
            continue
        allowed = _ALLOWED[name]
        if allowed is not None:
            for grandchild in list(child):
                if xmlhdr.tag(grandchild) not in allowed:
                    child.remove(grandchild)
    for element in root.iter():  # no comments or processing instructions survive either
        element.tail = element.tail if element.tail is None else element.tail.strip() or None
    return xmlhdr.serialize(root)


def pseudonym(identifiers: dict[str, str], fallback: bytes) -> str:
    """A stable 64-hex-digit SHA-256 pseudonym of the patient.

    Args:
        identifiers: patient name/ID/birth date as read from the header.
        fallback: hashed instead when there are no identifiers (e.g. the raw
            header, unique per measurement).
    """
    parts = [f"{k}={identifiers[k]}" for k in sorted(identifiers)]
    payload = "\n".join(parts).encode() if parts else fallback
    return hashlib.sha256(b"unrolled-patient\n" + payload).hexdigest()


def patient_label(identifiers: dict[str, str]) -> str:
    """The original patient ID (``keep_identifiers=true``), else the name, else ``""``."""
    return identifiers.get("patientID") or identifiers.get("patientName") or ""
