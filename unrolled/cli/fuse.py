"""``unrolled-fuse``: one reconstruction from N acquisitions of the same slices, with motion.

Examples::

    unrolled-fuse inputs=[scan1.h5,scan2.h5,scan3.h5] output=fused.h5
    unrolled-fuse inputs=[stacked.h5] output=fused.h5 overwrite=true
    unrolled-fuse inputs=[a.h5,b.h5] output=nomotion.h5 fusion.estimate_motion=false

Options live in ``conf/fuse.yaml``; the input layouts in
:mod:`unrolled.data.acquisitions`, the method in :mod:`unrolled.methods.fusion`.
The output is fastMRI's submission layout (``reconstruction`` ``(slices, h, w)``
float32) with the estimated motion as the attribute ``motion``
``(slices, acquisitions, 3)`` = ``(dy, dx, angle)`` in pixels, pixels and
degrees; the run prints each acquisition's median motion over slices. Bad
input prints one line on stderr, exits with status 1 and writes nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, ListConfig

from unrolled.cli.common import (
    CONFIG_DIR,
    build_mask,
    clean_errors,
    entry_point,
    fail,
    instantiate_or_fail,
    progress_bar,
)
from unrolled.data.acquisitions import open_acquisitions
from unrolled.data.writer import write_reconstruction
from unrolled.inference.folder import resolve_device
from unrolled.methods.fusion import fuse_volume
from unrolled.physics.motion import PARAM_NAMES


@entry_point("unrolled-fuse", __doc__, "fuse")
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="fuse")
@clean_errors
def main(cfg: DictConfig) -> None:
    """Fuse ``inputs`` into ``output``; print the estimated motion."""
    inputs = cfg.get("inputs")
    if not inputs:
        fail(
            "inputs is not set: pass inputs=[a.h5,b.h5,...] (or one file with an acquisition axis)"
        )
    if not cfg.get("output"):
        fail("output is not set: pass output=PATH.h5")
    if not isinstance(inputs, ListConfig | list):
        inputs = [inputs]
    mask_func = build_mask(cfg.get("mask"))  # an unmeetable mask fails before any file is read
    paths = [Path(to_absolute_path(str(p))) for p in inputs]
    output = Path(to_absolute_path(str(cfg.output)))
    if output.resolve() in {p.resolve() for p in paths}:
        fail(f"output {output} is one of the inputs")
    if output.is_dir():
        fail(f"output {output} is a directory: name the fused file, e.g. output={output}/fused.h5")
    if output.exists() and not cfg.overwrite:
        raise FileExistsError(f"{output}: exists; pass overwrite=true to replace it")
    try:
        device = resolve_device(str(cfg.device))
    except ValueError as e:
        fail(str(e))
    if cfg.get("num_threads") and device.type == "cpu":
        torch.set_num_threads(int(cfg.num_threads))

    aset = open_acquisitions(paths)  # checks every input before any work
    fusion = instantiate_or_fail(cfg.fusion, "fusion")

    start = time.perf_counter()
    with progress_bar(cfg.get("progress", True), "slices") as progress:
        task = progress.add_task("fuse", total=aset.num_slices)
        fused = fuse_volume(fusion, aset, mask_func, device, lambda i: progress.advance(task))
    attrs = {
        "motion": fused.motion,
        "motion_columns": "dy_px,dx_px,angle_deg",
        "motion_estimated": bool(fusion.estimate_motion),
        "acquisitions": np.array(aset.names, dtype=object),
    }
    if "acquisition" in aset.attrs:
        attrs["acquisition"] = aset.attrs["acquisition"]
    write_reconstruction(
        output.parent, output.name, fused.reconstruction, overwrite=bool(cfg.overwrite), attrs=attrs
    )
    seconds = time.perf_counter() - start
    print(
        f"fused {aset.num_acquisitions} acquisitions x {aset.num_slices} slices on {device} "
        f"in {seconds:.1f} s -> {output}"
    )
    median = np.median(fused.motion, axis=0)  # (N, 3)
    print("motion, median over slices: " + ", ".join(PARAM_NAMES) + " (px, px, deg)")
    for name, (dy, dx, angle) in zip(aset.names, median, strict=True):
        print(f"  {name}: {dy:+.2f} {dx:+.2f} {angle:+.2f}")


if __name__ == "__main__":
    main()
