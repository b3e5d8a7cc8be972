"""The common form of a raw scan, whatever file it came from: readouts plus a header.

A reader (:mod:`~unrolled.data.raw.ismrmrd_reader`,
:mod:`~unrolled.data.raw.twix_reader`) turns a vendor file into a
:class:`RawScan`: one :class:`Readout` per acquired k-space line, the noise
measurements, and an ISMRMRD XML header (the file's own, or one built from the
vendor protocol). :mod:`~unrolled.data.raw.assemble` then grids the readouts
into fastMRI-layout k-space. A file that is not 2D Cartesian is refused by the
reader with a :class:`RefusedScan`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from unrolled.data.errors import DataError


class RefusedScan(DataError):
    """A raw file that is readable but not 2D Cartesian (EPI, radial, spiral, 3D).

    The message names the file and the reason, e.g.
    ``"epi.dat: not 2D Cartesian, refused: EPI (reflected readouts and phase-correction
    scans; ramp sampling needs regridding)"``.
    """

    def __init__(self, path, reason: str) -> None:
        super().__init__(path, f"not 2D Cartesian, refused: {reason}")
        self.reason = reason


@dataclass(frozen=True, eq=False)
class Readout:
    """One acquired k-space line.

    Attributes:
        data: ``(coils, samples)`` complex64, as acquired (readout oversampling
            included).
        line: phase-encoding index (ISMRMRD ``kspace_encode_step_1``, Siemens ``Lin``).
        center_sample: index of the k-space centre within ``data`` (asymmetric
            echo: smaller than ``samples // 2``).
        slice: slice index.
        average: average index (``Ave``).
        volume: ``(repetition, contrast, phase, set)``: each distinct value
            becomes its own output volume.
        calibration_only: a parallel-imaging calibration line that is not part
            of the imaging data (merged into the k-space where imaging left a gap).
        geometry: ``(position, read_dir, phase_dir, slice_dir)`` of the slice,
            each 3 floats, in the patient coordinate system (LPS, mm), or ``None``.
    """

    data: np.ndarray
    line: int
    center_sample: int
    slice: int = 0
    average: int = 0
    volume: tuple[int, int, int, int] = (0, 0, 0, 0)
    calibration_only: bool = False
    geometry: tuple[tuple[float, ...], ...] | None = None


@dataclass(eq=False)
class RawScan:
    """A whole raw file, ready for :func:`~unrolled.data.raw.assemble.assemble`.

    Attributes:
        path: the source file.
        format: human-readable format, e.g. ``"ISMRMRD HDF5"``.
        header_xml: the ISMRMRD XML header (not de-identified yet).
        encoded_size: encoded matrix ``(x, y, z)``; ``x`` with readout oversampling.
        recon_size: reconstructed matrix ``(x, y, z)``.
        center_line: phase-encoding index of the k-space centre (encoding limits).
        max_line: largest phase-encoding index the protocol can acquire.
        readouts: the imaging and calibration lines.
        noise: noise-measurement readouts, each ``(coils, samples)`` complex64.
        noise_dwell_us: dwell time of the noise samples (µs), ``None`` if unknown.
        data_dwell_us: dwell time of the imaging samples (µs), ``None`` if unknown.
        acceleration: nominal parallel-imaging factor of the protocol, or ``None``.
        identifiers: identifying values found in the header (patient name, ID,
            birth date, ...), used to derive the hashed ``patient_id``; they are
            never written unless the user keeps identifiers.
        description: protocol or sequence name, for messages.
    """

    path: Path
    format: str
    header_xml: bytes
    encoded_size: tuple[int, int, int]
    recon_size: tuple[int, int, int]
    center_line: int
    max_line: int
    readouts: list[Readout]
    noise: list[np.ndarray] = field(default_factory=list)
    noise_dwell_us: float | None = None
    data_dwell_us: float | None = None
    acceleration: float | None = None
    identifiers: dict[str, str] = field(default_factory=dict)
    description: str = ""

    @property
    def num_coils(self) -> int:
        """Receiver channels of the imaging readouts."""
        return int(self.readouts[0].data.shape[0]) if self.readouts else 0
