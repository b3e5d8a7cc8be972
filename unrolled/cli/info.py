"""``unrolled-info FILE...``: what a raw file holds and what ``unrolled-convert`` would do.

Prints, per file: format, matrix sizes, coils, slices, acquired columns,
acceleration, calibration width, noise scans, and the files convert would
write, or the one line saying why convert would refuse the file. Exit status
1 when any file is refused or unreadable.

Examples::

    unrolled-info meas_gre.dat scan.h5
    unrolled-info kspace.npy --axes coil,ky,kx
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import h5py

from unrolled.cli.common import entry_point
from unrolled.data.errors import DataError
from unrolled.data.fastmri_io import read_volume_info
from unrolled.data.raw import describe, plan_conversion
from unrolled.data.raw.scan import RefusedScan


@entry_point("unrolled-info", __doc__)
def main(argv: list[str] | None = None) -> None:
    """Describe every file given on the command line."""
    parser = argparse.ArgumentParser(prog="unrolled-info", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="raw files (.dat, .h5/.mrd, .cfl/.hdr, .npy)")
    parser.add_argument("--axes", default=None, help="axis order of .npy/.cfl, e.g. coil,ky,kx")
    parser.add_argument("--no-prewhiten", action="store_true", help="as convert prewhiten=false")
    parser.add_argument("--averages", choices=("mean", "separate"), default="mean")
    args = parser.parse_args(argv)
    axes = args.axes.split(",") if args.axes else None
    status = 0
    for path in args.files:
        print(path)
        if _is_fastmri(path):
            try:
                lines = _describe_fastmri(path)
            except DataError as e:
                print(f"  error: {e}")
                status = 1
                continue
            for line in lines:
                print(f"  {line}")
            continue
        try:
            plan = plan_conversion(
                path, prewhiten=not args.no_prewhiten, averages=args.averages, axes=axes
            )
        except RefusedScan as e:
            print(f"  convert would refuse it: {e}")
            status = 1
            continue
        except (DataError, FileNotFoundError, ValueError) as e:
            print(f"  error: {e}")
            status = 1
            continue
        for line in describe(plan):
            print(f"  {line}")
    sys.exit(status)


def _is_fastmri(path: str) -> bool:
    if Path(path).suffix.lower() not in (".h5", ".hdf5"):
        return False
    try:
        with h5py.File(path, "r") as f:
            return "kspace" in f
    except OSError:
        return False


def _describe_fastmri(path: str) -> list[str]:
    """What an already converted (fastMRI-layout) file holds."""
    info = read_volume_info(path)
    width = info.kspace_shape[-1]
    lines = [
        "format: fastMRI HDF5 (already converted; convert has nothing to do)",
        f"kspace {info.kspace_shape}, coils {info.num_coils}, slices {info.num_slices}",
        f"encoded matrix {info.encoding_size[0]} x {info.encoding_size[1]}, recon matrix "
        f"{info.recon_size[0]} x {info.recon_size[1]}, padding [{info.padding_left}, "
        f"{info.padding_right})",
    ]
    if info.has_mask:
        with h5py.File(path, "r") as f:
            acquired = int((f["mask"][()] != 0).sum())
        lines.append(
            f"acquired columns {acquired} of {width}, acceleration "
            f"{info.attrs.get('acceleration', '?')}, calibration width "
            f"{info.attrs.get('num_low_frequency', '?')}"
        )
    else:
        lines.append(f"fully sampled ({', '.join(info.recon_keys) or 'no reference'})")
    return lines


if __name__ == "__main__":
    main()
