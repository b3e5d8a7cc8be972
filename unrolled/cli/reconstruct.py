"""``unrolled-reconstruct``: reconstruct fastMRI files into fastMRI's submission layout.

Examples::

    unrolled-reconstruct checkpoint=outputs/train/RUN/checkpoints/best.ckpt \\
        input_dir=data/embedded/test output_dir=recon
    unrolled-reconstruct method=cg_sense input_dir=data/val output_dir=recon_cg \\
        mask.accelerations=[8] mask.center_fractions=[0.04]
    unrolled-reconstruct method=zero_filled input_dir=data/test output_dir=recon overwrite=true
    unrolled-reconstruct method=zeroshot input_dir=data/val output_dir=recon_zs
    unrolled-reconstruct method=cg_sense input_dir=data/val output_dir=recon \\
        output_format=[h5,nifti,dicom]
    unrolled-reconstruct method=varnet_fastmri weights=knee_state_dict.pt \\
        input_dir=data/val output_dir=recon_varnet

Options live in ``conf/reconstruct.yaml``; the logic in
:mod:`unrolled.inference.folder`. Bad input (a missing folder or
checkpoint, a corrupt file, outputs that exist without ``overwrite=true``)
prints one line on stderr, exits with status 1 and writes nothing.

A method that fits itself to each slice (``method=zeroshot``) keeps a
training history per slice (its ``histories`` attribute); for each volume,
``<stem>_curves.csv`` and ``<stem>_curves.png`` (training and held-out loss
per slice) are written beside the reconstruction. They obey the same rules:
existing ones are refused before any work without ``overwrite=true``, they are
rendered while the volumes are reconstructed (a failure leaves nothing), and
written once every reconstruction is in place.

``output_format`` (``h5``, ``nifti``, ``dicom`` or a list) adds NIfTI files and
DICOM series (:mod:`unrolled.data.export`), all or nothing as well: the volumes
are reconstructed into a hidden staging folder and published together.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from unrolled.cli.common import (
    CONFIG_DIR,
    build_mask,
    check_mask_shapes,
    clean_errors,
    entry_point,
    fail,
    instantiate_or_fail,
    progress_bar,
)
from unrolled.data.export.folder import parse_formats, plan_exports, staging_dir, write_exports
from unrolled.data.publish import atomic_path
from unrolled.inference.folder import (
    autocast_dtype,
    check_outputs,
    list_volumes,
    reconstruct_volumes,
    resolve_device,
)
from unrolled.models.reconstructor import RecordsHistories


@entry_point("unrolled-reconstruct", __doc__, "reconstruct")
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="reconstruct")
@clean_errors
def main(cfg: DictConfig) -> None:
    """Reconstruct every file of ``input_dir`` into ``output_dir``; print a summary."""
    for key in ("input_dir", "output_dir"):
        if not cfg.get(key):
            fail(f"{key} is not set: pass {key}=PATH")
    if int(cfg.batch_size) < 1:
        fail(f"batch_size must be positive, got {cfg.batch_size}")
    shard, num_shards = int(cfg.get("shard", 0)), int(cfg.get("num_shards", 1))
    if num_shards < 1 or not 0 <= shard < num_shards:
        fail(f"shard must be in [0, num_shards), got shard={shard} num_shards={num_shards}")
    try:
        device = resolve_device(str(cfg.device))
        dtype = autocast_dtype(cfg.precision)
    except ValueError as e:
        fail(str(e))
    input_dir = Path(to_absolute_path(cfg.input_dir))
    output_dir = Path(to_absolute_path(cfg.output_dir))
    mask_func = build_mask(cfg.get("mask"))  # an unmeetable mask fails before any file is read

    try:
        formats = parse_formats(cfg.get("output_format", "h5"))
    except ValueError as e:
        fail(str(e))

    volumes = list_volumes(input_dir, cfg.challenge, shard, num_shards)  # a job array's share
    check_mask_shapes(mask_func, volumes)
    if formats == ("h5",):
        check_outputs(volumes, output_dir, cfg.overwrite)  # before loading anything heavy
        exports = None
    else:  # checks every target and reads each input's geometry, before any heavy work
        exports = plan_exports(volumes, output_dir, formats, cfg.overwrite)
    method = instantiate_or_fail(cfg.method, "method")
    curves = _curve_paths(method, volumes, output_dir, bool(cfg.overwrite))
    name = HydraConfig.get().runtime.choices.get("method", "method")
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")

    total = sum(v.num_slices for v in volumes)
    rendered: dict[Path, bytes] = {}

    def on_volume(vol) -> None:
        progress.advance(task)
        if curves:
            rendered.update(_render_curves(method, vol, curves[vol.fname]))

    with (
        progress_bar(cfg.get("progress", True), "volumes", remaining=True) as progress,
        _exporting(exports, output_dir, name, bool(cfg.overwrite)) as recon_dir,
    ):
        task = progress.add_task(f"{name}", total=len(volumes))
        summary = reconstruct_volumes(
            method,
            volumes,
            recon_dir,
            mask_func,
            batch_size=int(cfg.batch_size),
            device=device,
            dtype=dtype,
            overwrite=bool(cfg.overwrite),
            on_volume=on_volume,
        )
    for path, data in rendered.items():
        _write_file(path, data, bool(cfg.overwrite))
    print(
        f"reconstructed {len(volumes)} volumes ({total} slices) with {name} on {device} "
        f"in {summary.seconds:.1f} s ({summary.slices_per_second:.2f} slices/s) -> {output_dir}"
        + (f" as {', '.join(formats)}" if exports else "")
    )


@contextlib.contextmanager
def _exporting(exports, output_dir: Path, method: str, overwrite: bool):
    """Where to reconstruct: ``output_dir`` for HDF5 alone; else a staging folder whose
    volumes are exported (NIfTI, DICOM) and published with the HDF5 files, all or nothing."""
    if exports is None:
        yield output_dir
        return
    with staging_dir(output_dir) as stage:
        yield stage
        write_exports(stage, exports, method, overwrite)


def _curve_paths(method, volumes, output_dir: Path, overwrite: bool) -> dict[str, list[Path]]:
    """Per volume, the curve files of a method with training histories (else nothing).

    Raises:
        FileExistsError: some exist already and ``overwrite`` is false.
    """
    if not isinstance(method, RecordsHistories):
        return {}
    paths = {
        v.fname: [output_dir / f"{Path(v.fname).stem}_curves.{ext}" for ext in ("csv", "png")]
        for v in volumes
    }
    existing = [p.name for ps in paths.values() for p in ps if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{output_dir}: {len(existing)} training-curve files exist already "
            f"({', '.join(existing)}); pass overwrite=true to replace them"
        )
    return paths


def _render_curves(method, vol, paths: list[Path]) -> dict[Path, bytes]:
    """The CSV and PNG of the slices fitted for ``vol`` (their histories are then dropped)."""
    from unrolled.methods.zeroshot_history import history_csv, plot_histories

    mine = [h.key[:1] == (vol.fname,) for h in method.histories]
    histories = [h for h, m in zip(method.histories, mine, strict=True) if m]
    method.histories[:] = [h for h, m in zip(method.histories, mine, strict=True) if not m]
    png = io.BytesIO()
    plot_histories(histories, png, title=vol.fname)
    csv_path, png_path = paths
    return {csv_path: history_csv(histories).encode(), png_path: png.getvalue()}


def _write_file(path: Path, data: bytes, overwrite: bool) -> None:
    """Write atomically; without ``overwrite`` never replace a file that appeared meanwhile."""
    hint = "created by someone else meanwhile; pass overwrite=true to replace"
    with atomic_path(path, overwrite, hint=hint) as tmp:
        tmp.write_bytes(data)


if __name__ == "__main__":
    main()
