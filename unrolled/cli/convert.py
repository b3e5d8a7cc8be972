"""``unrolled-convert``: raw scanner files -> fastMRI-layout HDF5 files.

Examples::

    unrolled-convert inputs=[meas_gre.dat] output_dir=converted
    unrolled-convert inputs=[scan.h5,other.h5] output_dir=converted averages=separate
    unrolled-convert inputs=[kspace.npy] axes=[coil,ky,kx] output_dir=converted

Options live in ``conf/convert.yaml``; the logic in :mod:`unrolled.data.raw`.
A refused input (not 2D Cartesian), a broken one or an existing output
(without ``overwrite=true``) prints one line on stderr, exits with status 1
and writes nothing.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, ListConfig

from unrolled.cli.common import CONFIG_DIR, clean_errors, entry_point, fail
from unrolled.data.raw import convert


@entry_point("unrolled-convert", __doc__, "convert")
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="convert")
@clean_errors
def main(cfg: DictConfig) -> None:
    """Convert ``cfg.inputs`` into ``cfg.output_dir``; print one line per file written."""
    inputs = cfg.get("inputs")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not inputs or not isinstance(inputs, list | ListConfig):
        fail("inputs is not set: pass inputs=[scan.dat,...]")
    if not cfg.get("output_dir"):
        fail("output_dir is not set: pass output_dir=PATH")
    if cfg.averages not in ("mean", "separate"):
        fail(f"averages must be 'mean' or 'separate', got {cfg.averages!r}")
    axes = list(cfg.axes) if cfg.get("axes") is not None else None
    results = convert(
        [Path(to_absolute_path(str(p))) for p in inputs],
        Path(to_absolute_path(cfg.output_dir)),
        overwrite=bool(cfg.overwrite),
        prewhiten=bool(cfg.prewhiten),
        averages=str(cfg.averages),
        keep_identifiers=bool(cfg.keep_identifiers),
        axes=axes,
    )
    for plan, paths in results:
        asm = plan.assembly
        notes = [
            "prewhitened" if asm.prewhitened else "not prewhitened",
            f"readout oversampling x{asm.oversampling_removed:g} removed",
            "identifiers kept" if cfg.keep_identifiers else "de-identified",
        ]
        for f, path in zip(plan.files, paths, strict=True):
            kind = "undersampled" if f.undersampled else "fully sampled"
            print(
                f"{plan.scan.path.name} ({plan.scan.format}) -> {path}: kspace "
                f"{tuple(f.datasets['kspace'].shape)}, {kind}, {', '.join(notes)}"
            )


if __name__ == "__main__":
    main()
