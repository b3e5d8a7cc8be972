"""``unrolled-info FILE...``: what a raw file holds and what ``unrolled-convert`` would do.

Prints, per file: format, matrix sizes, coils, slices, acquired columns,
acceleration, calibration width, noise scans, and the files convert would
write, or the one line saying why convert would refuse the file. A file already
in the fastMRI layout (e.g. written by ``unrolled-convert``) is described as
``unrolled-reconstruct`` will read it: k-space shape, matrices, acquired columns,
calibration width, references, slice geometry. Exit status 1 when any file is
refused or unreadable.

Examples::

    unrolled-info meas_gre.dat scan.h5
    unrolled-info kspace.npy --axes coil,ky,kx
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import h5py
import numpy as np

from unrolled.cli.common import entry_point
from unrolled.data.errors import DataError
from unrolled.data.fastmri_io import read_volume_info
from unrolled.data.raw import describe, plan_conversion
from unrolled.data.raw.scan import RefusedScan


@entry_point("unrolled-info", __doc__)
def main(argv: list[str] | None = None) -> None:
    """Describe every file given on the command line."""
    parser = argparse.ArgumentParser(prog="unrolled-info", description=__doc__.splitlines()[0])
    parser.add_argument(
        "files",
        nargs="+",
        help="raw files (.dat, .h5/.mrd, .cfl/.hdr, .npy) or fastMRI-layout .h5 files",
    )
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
                lines = describe_fastmri(path)
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


def describe_fastmri(path: str) -> list[str]:
    """Lines describing a fastMRI-layout file as ``unrolled-reconstruct`` reads it.

    Raises:
        DataError: the file is not a valid fastMRI-layout file.
    """
    from unrolled.physics.calibration import center_run_length

    info = read_volume_info(path)
    with h5py.File(path, "r") as f:
        if "mask" in f:
            cols = np.asarray(f["mask"][()], dtype=bool).reshape(-1)
        else:  # acquired columns: non-zero anywhere in the first slice
            cols = np.abs(f["kspace"][0]).reshape(-1, info.kspace_shape[-1]).max(0) > 0
        geometry = {
            k: np.asarray(f[k][()]) for k in ("slice_position", "read_dir", "phase_dir") if k in f
        }
    import torch

    attrs = info.attrs
    hdr = info.header
    source = attrs.get("source_format")
    lines = [
        "format: fastMRI HDF5" + (f" (converted from {source})" if source else ""),
        f"kspace {tuple(info.kspace_shape)}, coils {info.num_coils}, slices {info.num_slices}",
        f"encoded matrix {hdr.encoding_size[0]} x {hdr.encoding_size[1]}, recon matrix "
        f"{hdr.recon_size[0]} x {hdr.recon_size[1]}, padding {hdr.padding_left}-"
        f"{hdr.padding_right}",
        f"acquired columns {int(cols.sum())} of {cols.size}, acceleration "
        f"{cols.size / max(int(cols.sum()), 1):.2f}"
        + (
            f" (nominal {float(attrs['acceleration']):g})"
            if attrs.get("acceleration") is not None
            else ""
        )
        + ", calibration width "
        f"{center_run_length(torch.from_numpy(cols.astype(np.float32)))}",
        "references: "
        + (", ".join(info.recon_keys) or "none")
        + ("; stored mask (test-set layout)" if info.has_mask else ""),
    ]
    if len(geometry) == 3:
        pos = (np.round(geometry["slice_position"][0], 2) + 0.0).tolist()
        lines.append(
            f"geometry: slice 0 centre {pos} mm (LPS), read_dir "
            f"{(np.round(geometry['read_dir'][0], 4) + 0.0).tolist()}, phase_dir "
            f"{(np.round(geometry['phase_dir'][0], 4) + 0.0).tolist()}"
        )
    else:
        lines.append("geometry: none stored (DICOM/NIfTI export uses its default axial stack)")
    return lines


if __name__ == "__main__":
    main()
