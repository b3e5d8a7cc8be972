"""The ``ismrmrd_header`` XML of fastMRI files: build it and parse it.

fastMRI stores the ISMRMRD header as an XML string in the dataset
``ismrmrd_header``. ``fastmri.data.SliceDataset`` reads the encoded and
reconstructed matrix sizes and the phase-encoding limits from it; we write a
minimal header with exactly those fields (plus the receiver channel count) so
that our files and the released files load the same way.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

NAMESPACE = "http://www.ismrm.org/ISMRMRD"


@dataclass(frozen=True)
class HeaderInfo:
    """The parts of an ISMRMRD header that reconstruction needs.

    Attributes:
        encoding_size: encoded matrix (x, y, z); k-space is (x, y) = (H, W).
        recon_size: reconstructed matrix (x, y, z); targets are cropped to (x, y).
        padding_left: first sampled phase-encoding column (zero-padded k-space).
        padding_right: one past the last sampled phase-encoding column.
        num_coils: receiver channels, or ``None`` where the header does not say.
    """

    encoding_size: tuple[int, int, int]
    recon_size: tuple[int, int, int]
    padding_left: int
    padding_right: int
    num_coils: int | None = None


def build_ismrmrd_header(
    encoding_size: tuple[int, int, int],
    recon_size: tuple[int, int, int],
    num_coils: int,
    field_of_view_mm: tuple[float, float, float] = (220.0, 220.0, 5.0),
) -> bytes:
    """A minimal, valid ISMRMRD header for a fully sampled Cartesian scan.

    The phase-encoding limits span the whole encoded width, centred at
    ``encoding_size[1] // 2``, so fastMRI computes ``padding_left = 0`` and
    ``padding_right = encoding_size[1]``.
    """
    ex, ey, ez = encoding_size
    rx, ry, rz = recon_size
    fx, fy, fz = field_of_view_mm
    return f"""<?xml version="1.0" encoding="utf-8"?>
<ismrmrdHeader xmlns="{NAMESPACE}">
  <acquisitionSystemInformation>
    <systemVendor>unrolled-synth</systemVendor>
    <receiverChannels>{num_coils}</receiverChannels>
  </acquisitionSystemInformation>
  <experimentalConditions><H1resonanceFrequency_Hz>127700000</H1resonanceFrequency_Hz></experimentalConditions>
  <encoding>
    <encodedSpace>
      <matrixSize><x>{ex}</x><y>{ey}</y><z>{ez}</z></matrixSize>
      <fieldOfView_mm><x>{fx}</x><y>{fy}</y><z>{fz}</z></fieldOfView_mm>
    </encodedSpace>
    <reconSpace>
      <matrixSize><x>{rx}</x><y>{ry}</y><z>{rz}</z></matrixSize>
      <fieldOfView_mm><x>{fx * rx / ex}</x><y>{fy * ry / ey}</y><z>{fz}</z></fieldOfView_mm>
    </reconSpace>
    <trajectory>cartesian</trajectory>
    <encodingLimits>
      <kspace_encoding_step_1>
        <minimum>0</minimum><maximum>{ey - 1}</maximum><center>{ey // 2}</center>
      </kspace_encoding_step_1>
      <kspace_encoding_step_2>
        <minimum>0</minimum><maximum>0</maximum><center>0</center>
      </kspace_encoding_step_2>
      <slice><minimum>0</minimum><maximum>0</maximum><center>0</center></slice>
    </encodingLimits>
  </encoding>
</ismrmrdHeader>
""".encode()


def parse_ismrmrd_header(xml: bytes | str) -> HeaderInfo:
    """Parse the fields of :class:`HeaderInfo` exactly as fastMRI does.

    Raises:
        ValueError: the XML is malformed or a required field is missing.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        raise ValueError(f"ismrmrd_header is not valid XML ({e})") from None

    def query(*path: str) -> str:
        node = root.find("/".join(f"{{{NAMESPACE}}}{p}" for p in path))
        if node is None or node.text is None:
            raise ValueError(f"ismrmrd_header lacks {'/'.join(path)}")
        return node.text

    enc = tuple(int(query("encoding", "encodedSpace", "matrixSize", a)) for a in "xyz")
    rec = tuple(int(query("encoding", "reconSpace", "matrixSize", a)) for a in "xyz")
    limits = ("encoding", "encodingLimits", "kspace_encoding_step_1")
    center = int(query(*limits, "center"))
    maximum = int(query(*limits, "maximum")) + 1
    padding_left = enc[1] // 2 - center
    try:
        num_coils: int | None = int(query("acquisitionSystemInformation", "receiverChannels"))
    except ValueError:
        num_coils = None
    return HeaderInfo(enc, rec, padding_left, padding_left + maximum, num_coils)  # type: ignore[arg-type]
