"""Raw scanner data in: ISMRMRD, Siemens twix, BART and NumPy k-space -> fastMRI layout."""

from unrolled.data.raw.convert import convert, describe, plan_conversion, read_raw
from unrolled.data.raw.scan import RawScan, Readout, RefusedScan

__all__ = [
    "RawScan",
    "Readout",
    "RefusedScan",
    "convert",
    "describe",
    "plan_conversion",
    "read_raw",
]
