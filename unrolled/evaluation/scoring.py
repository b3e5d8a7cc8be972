"""Score a folder of reconstructions against fastMRI references, as fastMRI's ``evaluate.py``.

The logic behind ``unrolled-evaluate``. Semantics replicated from
``fastmri/evaluate.py`` (fastMRI 0.3.0), per volume:

- the target is the reference file's ``reconstruction_rss`` (multicoil) or
  ``reconstruction_esc`` (singlecoil), the prediction the file of the same
  name's ``reconstruction``, each read whole, ``(slices, h, w)``;
- both are centre-cropped to ``(w_t, w_t)``, ``w_t`` the target's width
  (fastMRI's ``center_crop``: start at ``(H - h) // 2``, ``(W - w) // 2``), so
  a prediction may be larger than the target but not smaller, and a target
  must be at least as tall as it is wide;
- NMSE ``||gt - pred||^2 / ||gt||^2``, PSNR ``10 log10(max(gt)^2 / mse)`` and
  SSIM (mean over slices of the 7x7 scikit-image SSIM) over the cropped
  volume, with data range ``max(gt)``, the maximum of the cropped target
  volume (not the file's ``max`` attribute);
- filters: ``acquisition`` compares the target's ``acquisition`` attribute,
  ``acceleration`` the target's ``acceleration`` attribute (fastMRI reads the
  target only; here the prediction's attribute, which ``unrolled-reconstruct``
  writes, is used where the target has none);
- aggregates: mean and sample standard deviation (``ddof=1``, as
  ``runstats.Statistics.stddev``, which fastMRI prints as ``mean +/- 2 std``).

Differences, all where fastMRI crashes or silently averages NaN: missing or
extra predictions, shapes that cannot be paired, unreadable files, non-finite
predictions and filter attributes that are absent are collected over the
whole folder and reported together in one :class:`DataError` naming each
file; no metrics are written then. With ``allow_missing`` the volumes present
in both folders are scored and the others counted as skipped. Only ``*.h5``
files (not hidden ones) are considered, where fastMRI iterates over every
file of the target folder.

Metrics are computed in float64 with :mod:`unrolled.metrics`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unrolled.data.errors import DataError
from unrolled.data.fastmri_io import recon_key_for
from unrolled.data.publish import write_atomic
from unrolled.data.writer import RECONSTRUCTION_KEY
from unrolled.evaluation.metrics_json import dumps_strict
from unrolled.evaluation.score_files import (
    h5_files,
    int_or_none,
    probe,
    raise_problems,
    read_volume,
    shape_problem,
    str_or_none,
)
from unrolled.metrics import nmse, psnr, ssim
from unrolled.physics.coils import center_crop

METRICS = ("nmse", "psnr", "ssim")
METRICS_JSON = "metrics.json"
METRICS_CSV = "metrics_per_volume.csv"


@dataclass(frozen=True)
class VolumeScore:
    """The metrics of one volume and what identifies it."""

    fname: str
    acquisition: str | None
    acceleration: int | None
    num_slices: int
    height: int
    width: int
    nmse: float
    psnr: float
    ssim: float


@dataclass(frozen=True)
class Evaluation:
    """The scores of a folder of predictions.

    Attributes:
        volumes: per-volume scores, sorted by file name.
        missing: targets without a prediction (skipped under ``allow_missing``).
        extra: predictions without a target (skipped under ``allow_missing``).
        filtered_out: targets excluded by the filters.
        filters: ``{"acquisition", "acceleration"}`` as requested.
        challenge: ``"multicoil"`` or ``"singlecoil"``.
    """

    volumes: tuple[VolumeScore, ...]
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    filtered_out: int = 0
    filters: dict[str, Any] = field(default_factory=dict)
    challenge: str = "multicoil"

    def aggregate(self) -> dict[str, dict[str, float | None]]:
        """``{metric: {"mean", "std"}}``; ``std`` is the sample one, ``None`` for one volume."""
        out: dict[str, dict[str, float | None]] = {}
        for m in METRICS:
            values = np.array([getattr(v, m) for v in self.volumes], dtype=np.float64)
            out[m] = {
                "mean": float(values.mean()),
                "std": float(values.std(ddof=1)) if len(values) > 1 else None,
            }
        return out

    def summary(self) -> dict[str, Any]:
        """The content of ``metrics.json``."""
        return {
            "count": len(self.volumes),
            "metrics": self.aggregate(),
            "filters": dict(self.filters),
            "challenge": self.challenge,
            "filtered_out": self.filtered_out,
            "skipped": {"missing_predictions": list(self.missing), "extra": list(self.extra)},
        }


def fastmri_crop(target: torch.Tensor, pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop both volumes to ``(w, w)``, ``w`` the target width, as fastMRI's ``evaluate.py``.

    Args:
        target: ``(slices, h_t, w_t)`` with ``h_t >= w_t``.
        pred: ``(slices, h_p, w_p)`` with ``h_p, w_p >= w_t``.

    Raises:
        ValueError: a volume is too small for the crop.
    """
    size = (target.shape[-1], target.shape[-1])
    return center_crop(target, size), center_crop(pred, size)


def score_volume(target: torch.Tensor, pred: torch.Tensor) -> dict[str, float]:
    """fastMRI's ``{"nmse", "psnr", "ssim"}`` of one volume (crop, then data range ``max(gt)``)."""
    gt, rec = fastmri_crop(target, pred)
    return {
        "nmse": float(nmse(gt, rec)),
        "psnr": float(psnr(gt, rec)),
        "ssim": float(ssim(gt, rec)),
    }


@dataclass
class _Pair:
    fname: str
    target: Path
    pred: Path | None
    acquisition: str | None = None
    acceleration: int | None = None
    shape: tuple[int, ...] = ()


def evaluate_folder(
    target_dir: str | PathLike[str],
    predictions_dir: str | PathLike[str],
    challenge: str = "multicoil",
    acquisition: str | None = None,
    acceleration: int | None = None,
    allow_missing: bool = False,
    on_volume: Callable[[str], None] | None = None,
) -> Evaluation:
    """Score every prediction of ``predictions_dir`` against ``target_dir``.

    Files are paired by name; volumes are read one at a time.

    Args:
        target_dir: fastMRI files holding the reference (``reconstruction_rss``
            or ``reconstruction_esc``).
        predictions_dir: files in the submission layout (``reconstruction``).
        challenge: ``"multicoil"`` or ``"singlecoil"``: which reference.
        acquisition: keep only targets with this ``acquisition`` attribute.
        acceleration: keep only volumes with this ``acceleration`` attribute
            (the target's, else the prediction's).
        allow_missing: score the volumes present in both folders instead of
            failing on missing or extra files.
        on_volume: called with each file name once scored.

    Returns:
        The :class:`Evaluation`.

    Raises:
        DataError: a folder is missing or empty; or, naming every file
            concerned in one line: predictions missing or extra (unless
            ``allow_missing``), unreadable files, shapes that cannot be
            paired, non-finite predictions, filter attributes absent; or
            nothing is left to score.
    """
    recon_key = recon_key_for(challenge)
    target_dir, predictions_dir = Path(target_dir), Path(predictions_dir)
    targets = h5_files(target_dir, "target directory")
    preds = h5_files(predictions_dir, "predictions directory", allow_empty=True)
    problems: dict[str, list[str]] = {}

    def problem(kind: str, item: str) -> None:
        problems.setdefault(kind, []).append(item)

    pairs, filtered_out = [], 0
    for fname, tpath in targets.items():
        pair = _Pair(fname, tpath, preds.get(fname))
        try:
            t_shape, t_attrs = probe(tpath, recon_key)
        except DataError as e:
            problem("unreadable", f"{tpath} ({e.problem})")
            continue
        pair.acquisition = str_or_none(t_attrs.get("acquisition"))
        if acquisition is not None:
            if pair.acquisition is None:
                problem("without an 'acquisition' attribute", str(tpath))
                continue
            if pair.acquisition != acquisition:
                filtered_out += 1
                continue
        p_shape, p_attrs = None, {}
        if pair.pred is not None:
            try:
                p_shape, p_attrs = probe(pair.pred, RECONSTRUCTION_KEY)
            except DataError as e:
                problem("unreadable", f"{pair.pred} ({e.problem})")
                continue
        pair.acceleration = int_or_none(t_attrs.get("acceleration", p_attrs.get("acceleration")))
        if acceleration is not None:
            if pair.acceleration is None and pair.pred is None:
                pass  # reported as missing below
            elif pair.acceleration is None:
                problem("without an 'acceleration' attribute (target or prediction)", fname)
                continue
            elif pair.acceleration != int(acceleration):
                filtered_out += 1
                continue
        if pair.pred is None:
            problem("missing", fname)
            continue
        mismatch = shape_problem(t_shape, p_shape)
        if mismatch:
            problem("shape mismatch", f"{fname} ({mismatch})")
            continue
        pair.shape = t_shape
        pairs.append(pair)
    extra = sorted(set(preds) - set(targets))
    for fname in extra:
        problem("extra", fname)

    missing = tuple(problems.get("missing", []))
    if allow_missing:  # score the intersection; report what was skipped
        problems.pop("missing", None)
        problems.pop("extra", None)
    raise_problems(problems, target_dir, predictions_dir)

    scores = []
    for pair in pairs:
        assert pair.pred is not None
        try:
            scores.append(_score_pair(pair, recon_key))
        except DataError as e:
            problem("unreadable", f"{e.path} ({e.problem})")
        if on_volume is not None:
            on_volume(pair.fname)
    raise_problems(problems, target_dir, predictions_dir)
    if not scores:
        raise DataError(
            predictions_dir,
            f"no volumes to score ({filtered_out} of {len(targets)} targets filtered out by "
            f"acquisition={acquisition}, acceleration={acceleration}; "
            f"{len(missing)} without a prediction)",
        )
    return Evaluation(
        volumes=tuple(scores),
        missing=missing,
        extra=tuple(extra) if allow_missing else (),
        filtered_out=filtered_out,
        filters={"acquisition": acquisition, "acceleration": acceleration},
        challenge=challenge,
    )


def write_results(evaluation: Evaluation, output_dir: str | PathLike[str]) -> tuple[Path, Path]:
    """Write ``metrics.json`` (aggregate) and ``metrics_per_volume.csv`` atomically.

    Returns:
        ``(json path, csv path)``.
    """
    out = Path(output_dir)
    summary = dumps_strict(evaluation.summary())  # non-finite metrics: null + flag
    buf = io.StringIO()
    columns = [f.name for f in VolumeScore.__dataclass_fields__.values()]
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for v in evaluation.volumes:
        writer.writerow({k: ("" if x is None else x) for k, x in asdict(v).items()})
    json_path, csv_path = out / METRICS_JSON, out / METRICS_CSV
    write_atomic(csv_path, buf.getvalue())
    write_atomic(json_path, summary)
    return json_path, csv_path


def print_results(evaluation: Evaluation, title: str = "") -> None:
    """Print the aggregate metrics as a rich table (fastMRI's ``mean +/- 2 std`` too)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or None)
    for col in ("metric", "mean", "std", "fastMRI: mean +/- 2 std"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    labels = {"nmse": "NMSE", "psnr": "PSNR (dB)", "ssim": "SSIM"}
    for m, agg in evaluation.aggregate().items():
        mean, std = agg["mean"], agg["std"]
        fmt = "{:.4f}" if m != "psnr" else "{:.2f}"
        std_s = fmt.format(std) if std is not None else "-"
        both = f"{mean:.4g} +/- {2 * std:.4g}" if std is not None else f"{mean:.4g}"
        table.add_row(labels[m], fmt.format(mean), std_s, both)
    Console().print(table)


# --- internals -------------------------------------------------------------


def _score_pair(pair: _Pair, recon_key: str) -> VolumeScore:
    assert pair.pred is not None
    target = read_volume(pair.target, recon_key)  # (slices, h, w)
    pred = read_volume(pair.pred, RECONSTRUCTION_KEY)  # (slices, h', w')
    if not torch.isfinite(target).all():
        raise DataError(pair.target, f"dataset '{recon_key}' holds NaN or Inf values")
    if not torch.isfinite(pred.double()).all():
        raise DataError(pair.pred, "dataset 'reconstruction' holds NaN or Inf values")
    metrics = score_volume(target, pred)
    s, _, w = pair.shape
    return VolumeScore(
        fname=pair.fname,
        acquisition=pair.acquisition,
        acceleration=pair.acceleration,
        num_slices=s,
        height=w,
        width=w,
        **metrics,
    )
