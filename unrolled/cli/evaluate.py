"""``unrolled-evaluate``: score reconstructions the way fastMRI's ``evaluate.py`` does.

Examples::

    unrolled-evaluate target_dir=data/embedded/test predictions_dir=recon
    unrolled-evaluate target_dir=data/val predictions_dir=recon acquisition=AXT2 acceleration=4
    unrolled-evaluate target_dir=data/val predictions_dir=recon allow_missing=true

Options live in ``conf/evaluate.yaml``; the semantics (cropping, data range,
filters) are documented in :mod:`unrolled.evaluation.scoring`. Prints a table
and writes ``metrics.json`` and ``metrics_per_volume.csv`` into
``predictions_dir``; existing ones are not replaced without ``overwrite=true``.
Missing, extra, unreadable or mismatched files print one line naming each of
them, exit with status 1 and write no metrics.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from unrolled.cli.common import CONFIG_DIR, clean_errors, entry_point, fail
from unrolled.evaluation.scoring import evaluate_folder, print_results, write_results

# What a run writes into predictions_dir (unrolled.evaluation.scoring.write_results).
RESULT_FILES = ("metrics.json", "metrics_per_volume.csv")


@entry_point("unrolled-evaluate", __doc__, "evaluate")
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="evaluate")
@clean_errors
def main(cfg: DictConfig) -> None:
    """Score ``predictions_dir`` against ``target_dir``; print and write the metrics."""
    for key in ("target_dir", "predictions_dir"):
        if not cfg.get(key):
            fail(f"{key} is not set: pass {key}=PATH")
    if cfg.challenge not in ("multicoil", "singlecoil"):
        fail(f"challenge must be multicoil or singlecoil, got {cfg.challenge}")
    acceleration = cfg.acceleration
    if acceleration is not None and not str(acceleration).isdigit():
        fail(f"acceleration must be a positive integer, got {acceleration}")
    target_dir = Path(to_absolute_path(cfg.target_dir))
    predictions_dir = Path(to_absolute_path(cfg.predictions_dir))
    acquisition = None if cfg.acquisition is None else str(cfg.acquisition)
    acceleration = None if acceleration is None else int(acceleration)
    existing = [p for p in RESULT_FILES if (predictions_dir / p).exists()]
    if existing and not cfg.get("overwrite", False):  # before any scoring
        raise FileExistsError(
            f"{predictions_dir}: {' and '.join(existing)} exist; pass overwrite=true to replace"
        )

    evaluation = evaluate_folder(
        target_dir,
        predictions_dir,
        challenge=cfg.challenge,
        acquisition=acquisition,
        acceleration=acceleration,
        allow_missing=bool(cfg.allow_missing),
    )
    json_path, csv_path = write_results(evaluation, predictions_dir)
    filters = ", ".join(f"{k}={v}" for k, v in evaluation.filters.items() if v is not None)
    title = f"{len(evaluation.volumes)} volumes in {predictions_dir}" + (
        f" ({filters})" if filters else ""
    )
    print_results(evaluation, title)
    skipped = len(evaluation.missing) + len(evaluation.extra)
    if skipped:
        print(
            f"skipped {skipped} volumes (allow_missing=true): "
            f"{len(evaluation.missing)} without a prediction"
            + (f" ({', '.join(evaluation.missing)})" if evaluation.missing else "")
            + f", {len(evaluation.extra)} without a target"
            + (f" ({', '.join(evaluation.extra)})" if evaluation.extra else "")
        )
    if evaluation.filtered_out:
        print(f"{evaluation.filtered_out} volumes excluded by the filters")
    print(f"wrote {json_path} and {csv_path}")


if __name__ == "__main__":
    main()
