"""Raw scanner files -> fastMRI-layout HDF5 files that every ``unrolled`` command reads.

:func:`plan_conversion` reads and grids one input (nothing is written) and says
what the output files will hold; :func:`convert` plans every input first and
only then writes, each file atomically, so a refused or broken input leaves
no output at all. Output layout (one file per repetition/contrast/phase/set):

- ``kspace``: ``(slices, coils, H, W)`` complex64, readout oversampling removed
  (``(averages, slices, coils, H, W)`` with ``averages="separate"``, the layout
  of :mod:`unrolled.data.acquisitions`);
- ``ismrmrd_header``: the input's XML (built from the protocol for twix),
  de-identified unless ``keep_identifiers``; the encoded x matrix and field of
  view are those of the k-space written;
- fully sampled: ``reconstruction_rss`` ``(slices, h, w)`` float32 and the
  attributes ``max``, ``norm``; undersampled: ``mask`` ``(W,)`` bool and the
  attributes ``acceleration``, ``num_low_frequency`` (fastMRI's test-set layout);
- attributes ``padding_left``, ``padding_right`` (encoding limits),
  ``acquisition`` (protocol name), ``patient_id`` (a SHA-256 pseudonym unless
  ``keep_identifiers``), ``source_format``, ``prewhitened``,
  ``readout_oversampling_removed``;
- datasets ``slice_position``, ``read_dir``, ``phase_dir``, ``slice_dir`` (when
  the raw data carry them), each ``(slices, 3)`` float64: the ISMRMRD
  acquisition-header vectors of each slice (centre, unit vectors of the readout =
  k-space ``H`` = image rows, phase encoding = ``W`` = columns, and slice normal)
  in the patient coordinate system (LPS, mm), as :mod:`unrolled.data.export` reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from unrolled.data.errors import DataError
from unrolled.data.publish import atomic_path
from unrolled.data.raw import xmlhdr
from unrolled.data.raw.assemble import Assembly, Volume, assemble
from unrolled.data.raw.deidentify import deidentify_header, patient_label, pseudonym
from unrolled.data.raw.scan import RawScan, RefusedScan
from unrolled.data.synth_volume import rss_reconstruction
from unrolled.physics.calibration import center_run_length

_KEY_NAMES = ("rep", "contrast", "phase", "set")


@dataclass(eq=False)
class PlannedFile:
    """One output file, in memory until written."""

    name: str
    datasets: dict[str, np.ndarray]
    attrs: dict[str, Any]
    geometry: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def undersampled(self) -> bool:
        return "mask" in self.datasets


@dataclass(eq=False)
class Plan:
    """What converting one input gives.

    Attributes:
        scan: the raw scan read.
        assembly: its gridded volumes.
        files: the output files.
    """

    scan: RawScan
    assembly: Assembly
    files: list[PlannedFile]


def read_raw(path: str | Path, axes: list[str] | None = None) -> RawScan:
    """Read any supported raw file, chosen by suffix (and content for HDF5).

    Raises:
        DataError: unknown suffix, unreadable, or a fastMRI file (already converted).
        RefusedScan: not 2D Cartesian.
    """
    from unrolled.data.raw.array_reader import read_array
    from unrolled.data.raw.ismrmrd_reader import is_ismrmrd, read_ismrmrd
    from unrolled.data.raw.twix_reader import read_twix

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".cfl", ".hdr", ".npy"):
        return read_array(path, axes)
    if not path.is_file():
        raise DataError(path, "no such file")
    if suffix == ".dat":
        return read_twix(path)
    if suffix in (".h5", ".hdf5", ".mrd"):
        if is_ismrmrd(path):
            return read_ismrmrd(path)
        try:
            with h5py.File(path, "r") as f:
                if "kspace" in f:
                    raise DataError(path, "already a fastMRI-layout file (has 'kspace')")
        except OSError:
            raise DataError(path, "cannot open as HDF5 (corrupt or not HDF5)") from None
        raise DataError(path, "HDF5 file without an ISMRMRD dataset")
    raise DataError(path, f"unknown raw format '{suffix}' (.dat, .h5/.mrd, .cfl/.hdr, .npy)")


def plan_conversion(
    path: str | Path,
    prewhiten: bool = True,
    averages: str = "mean",
    keep_identifiers: bool = False,
    axes: list[str] | None = None,
) -> Plan:
    """Read, grid and lay out one input; nothing is written.

    Args:
        path: the raw file.
        prewhiten: prewhiten with the noise scans when the file has some.
        averages: ``"mean"`` or ``"separate"``.
        keep_identifiers: keep the header's subject/study fields and the real
            patient ID; by default they are removed and the ID is hashed.
        axes: axis order of ``.npy``/``.cfl`` arrays.

    Raises:
        RefusedScan: not 2D Cartesian. DataError: unreadable or inconsistent.
    """
    scan = read_raw(path, axes)
    asm = assemble(scan, prewhiten=prewhiten, averages=averages)
    header = _output_header(scan, asm, keep_identifiers)
    patient = (
        patient_label(scan.identifiers)
        if keep_identifiers
        else pseudonym(scan.identifiers, scan.header_xml)
    )
    stem = Path(scan.path).stem
    varying = [i for i in range(4) if len({v.key[i] for v in asm.volumes}) > 1]
    files = []
    for vol in asm.volumes:
        suffix = "".join(f"_{_KEY_NAMES[i]}{vol.key[i]}" for i in varying)
        files.append(_layout(f"{stem}{suffix}.h5", scan, asm, vol, header, patient))
    return Plan(scan, asm, files)


def convert(
    inputs: list[str | Path],
    output_dir: str | Path,
    overwrite: bool = False,
    **options: Any,
) -> list[tuple[Plan, list[Path]]]:
    """Convert every input, all or nothing.

    Every input is read and gridded first; a refused or broken one raises
    before any file is written. Files are written atomically (temporary file,
    then rename).

    Args:
        inputs: raw files.
        output_dir: created if missing.
        overwrite: replace existing outputs (refused otherwise, before writing).
        **options: :func:`plan_conversion` options.

    Returns:
        Per input, its plan and the paths written.

    Raises:
        RefusedScan, DataError: the first bad input. FileExistsError: an output
        exists without ``overwrite``, or two inputs would write the same name.
    """
    if not inputs:
        raise FileNotFoundError("no inputs given: pass inputs=[scan.dat,...]")
    plans = [plan_conversion(p, **options) for p in inputs]
    out = Path(output_dir)
    names = [f.name for plan in plans for f in plan.files]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise FileExistsError(f"{out / dupes[0]}: two inputs would write this file; rename one")
    existing = [out / n for n in names if (out / n).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]}: exists; pass overwrite=true to replace it")
    out.mkdir(parents=True, exist_ok=True)
    return [(plan, [_write(out, f, overwrite) for f in plan.files]) for plan in plans]


def _output_header(scan: RawScan, asm: Assembly, keep_identifiers: bool) -> bytes:
    root = xmlhdr.parse(scan.header_xml)
    enc = xmlhdr.find(root, "encoding")
    h, _ = asm.encoded_size
    if asm.oversampling_removed != 1.0:
        fov = xmlhdr.number(enc, "reconSpace", "fieldOfView_mm", "x")
        xmlhdr.set_text(enc, ("encodedSpace", "matrixSize", "x"), h)
        if fov is not None:
            xmlhdr.set_text(enc, ("encodedSpace", "fieldOfView_mm", "x"), fov)
    if xmlhdr.text(root, "acquisitionSystemInformation", "systemVendor") == "unrolled-synth":
        xmlhdr.set_text(root, ("acquisitionSystemInformation", "systemVendor"), "unknown")
    xmlhdr.set_text(root, ("acquisitionSystemInformation", "receiverChannels"), scan.num_coils)
    xml = xmlhdr.serialize(root)
    return xml if keep_identifiers else deidentify_header(xml)


def _layout(
    name: str, scan: RawScan, asm: Assembly, vol: Volume, header: bytes, patient: str
) -> PlannedFile:
    kspace = vol.kspace  # (S, C, H, W) or (A, S, C, H, W)
    width = kspace.shape[-1]
    left = width // 2 - scan.center_line
    right = left + scan.max_line + 1
    mask = np.atleast_2d(vol.mask)  # (A, W)
    inside = mask[:, max(left, 0) : min(right, width)]
    fully = bool(inside.all())
    datasets: dict[str, np.ndarray] = {"kspace": kspace.astype(np.complex64)}
    attrs: dict[str, Any] = {
        "padding_left": int(left),
        "padding_right": int(right),
        "acquisition": scan.description or "unknown",
        "patient_id": patient,
        "source_format": scan.format,
        "prewhitened": asm.prewhitened,
        "readout_oversampling_removed": float(asm.oversampling_removed),
    }
    recon = (min(scan.recon_size[0], kspace.shape[-2]), min(scan.recon_size[1], width))
    if fully:
        first = kspace if kspace.ndim == 4 else kspace[0]  # (S, C, H, W)
        target = rss_reconstruction(first, recon)
        datasets["reconstruction_rss"] = target
        attrs["max"] = float(target.max())
        attrs["norm"] = float(np.linalg.norm(target))
    else:
        datasets["mask"] = vol.mask
        acquired = int(mask[0].sum())
        attrs["num_low_frequency"] = int(center_run_length(_as_tensor(mask[0])))
        attrs["acceleration"] = (
            float(scan.acceleration) if scan.acceleration else round(width / acquired, 2)
        )
    datasets["ismrmrd_header"] = np.bytes_(header)
    return PlannedFile(name, datasets, attrs, vol.geometry)


def _as_tensor(mask: np.ndarray):
    import torch

    return torch.from_numpy(mask.astype(np.float32))


def _write(out: Path, planned: PlannedFile, overwrite: bool) -> Path:
    target = out / planned.name
    with atomic_path(target, overwrite, hint="pass overwrite=true to replace it") as tmp:
        with h5py.File(tmp, "w") as f:
            for key, value in planned.datasets.items():
                f.create_dataset(key, data=value)
            for key, value in planned.attrs.items():
                f.attrs[key] = value
            for key, value in planned.geometry.items():
                f.create_dataset(key, data=value)
    return target


def describe(plan: Plan) -> list[str]:
    """Lines for ``unrolled-info``: what the file holds and what convert would write."""
    scan, asm = plan.scan, plan.assembly
    vol = asm.volumes[0]
    mask = np.atleast_2d(vol.mask)[0]
    lines = [
        f"format: {scan.format}" + (f", protocol '{scan.description}'" if scan.description else ""),
        f"encoded matrix {scan.encoded_size[0]} x {scan.encoded_size[1]}, recon matrix "
        f"{scan.recon_size[0]} x {scan.recon_size[1]}, centre line {scan.center_line}",
        f"coils {scan.num_coils}, slices {vol.kspace.shape[-4]}, volumes {len(asm.volumes)}, "
        f"averages {asm.num_averages}, readouts {len(scan.readouts)}",
        f"acquired columns {int(mask.sum())} of {mask.size}, acceleration "
        f"{mask.size / max(int(mask.sum()), 1):.2f}"
        + (f" (nominal {scan.acceleration:g})" if scan.acceleration else "")
        + f", calibration width {center_run_length(_as_tensor(mask))}"
        + (f" ({asm.calibration_lines} calibration-only lines)" if asm.calibration_lines else ""),
        f"noise scans {len(scan.noise)}: "
        + ("prewhitening" if asm.prewhitened else "no prewhitening")
        + f"; readout oversampling x{asm.oversampling_removed:g} removed"
        if asm.oversampling_removed != 1.0
        else f"noise scans {len(scan.noise)}: "
        + ("prewhitening" if asm.prewhitened else "no prewhitening"),
    ]
    for f in plan.files:
        kind = (
            f"challenge-style (mask, acceleration {f.attrs['acceleration']:g}, "
            f"num_low_frequency {f.attrs['num_low_frequency']})"
            if f.undersampled
            else "fully sampled (reconstruction_rss "
            + " x ".join(map(str, f.datasets["reconstruction_rss"].shape[1:]))
            + ")"
        )
        lines.append(
            f"convert would write {f.name}: kspace {tuple(f.datasets['kspace'].shape)}, {kind}"
        )
    return lines


__all__ = ["Plan", "RefusedScan", "convert", "describe", "plan_conversion", "read_raw"]
