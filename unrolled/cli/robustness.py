"""``unrolled-robustness``: methods over a grid of acquisition conditions (Hydra entry point).

Examples::

    unrolled-robustness input_dir=data/embedded/test +checkpoints.unrolled=PATH/best.ckpt
    unrolled-robustness axes.acceleration=[2,4,8] '~axes.num_coils' max_slices_per_volume=2

Scores every method on one axis of conditions at a time (acceleration, mask type, added
noise, calibration width, coil count) around ``base``; writes ``robustness.csv``,
``robustness.md`` and ``robustness.png`` into the run directory.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate, to_absolute_path
from omegaconf import DictConfig, OmegaConf, open_dict

from unrolled.cli.common import (
    CONFIG_DIR,
    ConfigError,
    clean_errors,
    entry_point,
)
from unrolled.evaluation.robustness import (
    Condition,
    evaluate_condition,
    grid,
    load_slices,
    markdown_table,
    plot,
    rows_for,
    write_csv,
)
from unrolled.inference.checkpoint import load_checkpoint_network
from unrolled.inference.folder import resolve_device
from unrolled.physics.mask_tools import create_mask_func

log = logging.getLogger("unrolled.robustness")


def run(cfg: DictConfig, output_dir: Path) -> list[dict]:
    """Evaluate every cell; write CSV, markdown and PNG into ``output_dir``."""
    from rich.progress import Progress

    base, cells = check_cells(cfg)  # every cell's mask is met, before any file is read
    input_dir = Path(to_absolute_path(cfg.input_dir))
    if not input_dir.is_dir():
        raise FileNotFoundError(f"{input_dir}: input_dir does not exist")
    files = sorted(p for p in input_dir.glob("*.h5") if not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"{input_dir}: no .h5 files")
    methods = {name: instantiate(m) for name, m in (cfg.methods or {}).items()}
    for name, path in (cfg.checkpoints or {}).items():
        methods[name] = load_checkpoint_network(to_absolute_path(path))
    slices = load_slices(files, cfg.max_slices_per_volume)
    rows: list[dict] = []
    with Progress() as progress:
        task = progress.add_task(f"{len(cells)} cells x {len(methods)} methods", total=len(cells))
        done: dict[Condition, dict] = {}  # the base cell recurs once per axis: score it once
        for axis, cond in cells:
            if cond not in done:
                done[cond] = evaluate_condition(
                    methods, slices, cond, cfg.batch_size, cfg.device, seed=cfg.seed
                )
            rows += rows_for(axis, cond, done[cond])
            progress.advance(task)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_csv(rows, output_dir / "robustness.csv")
    (output_dir / "robustness.md").write_text(markdown_table(rows))
    plot(rows, output_dir / "robustness.png")
    log.info("wrote robustness.csv, robustness.md, robustness.png to %s", output_dir)
    return rows


def check_cells(cfg: DictConfig) -> tuple[Condition, list[tuple[str, Condition]]]:
    """The base condition and the grid's cells, each cell's mask built once to check it.

    Raises:
        ConfigError: ``"mask: axes.acceleration=0.5 (mask_type=random, center_fraction=0.08,
            acceleration=0.5): accelerations[0]=0.5 must be a number >= 1"``, or an unknown
            axis or base field.
    """
    try:
        base = Condition(**OmegaConf.to_container(cfg.base, resolve=True))
        cells = grid(base, OmegaConf.to_container(cfg.axes, resolve=True))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"base/axes: {e}") from None
    for axis, cond in cells:
        try:
            create_mask_func(cond.mask_type, [cond.center_fraction], [cond.acceleration])
        except ValueError as e:
            where = "base" if cond == base else f"axes.{axis}={getattr(cond, axis)}"
            raise ConfigError(
                f"mask: {where} (mask_type={cond.mask_type}, center_fraction="
                f"{cond.center_fraction}, acceleration={cond.acceleration}): {e}"
            ) from None
    return base, cells


@entry_point("unrolled-robustness", __doc__, "robustness")
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="robustness")
@clean_errors
def main(cfg: DictConfig) -> None:
    try:
        device = resolve_device(str(cfg.device))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    if cfg.get("num_threads") and device.type == "cpu":
        import torch

        torch.set_num_threads(int(cfg.num_threads))
    with open_dict(cfg):
        cfg.device = str(device)
    run(cfg, Path(HydraConfig.get().runtime.output_dir))


if __name__ == "__main__":
    main()
