"""Collect the jobs of a Hydra multirun directory into one table, sorted by a metric.

The logic behind ``unrolled-sweep-report``. A sweep directory (``hydra.sweep.dir``)
holds one directory per job (``hydra.sweep.subdir``, by default the job number),
each with what ``unrolled-train`` leaves there:

- ``.hydra/overrides.yaml``: the job's command-line overrides (what marks a job);
- ``csv/version_*/metrics.csv``: the CSV logger's rows, ``val/ssim`` once per
  validation (several versions after a resume; later ones win);
- ``metrics.json``: the test split's ``{method: {"psnr", "ssim", "nmse"}}``,
  written once training and testing finished;
- ``checkpoints/``: ``best-*.ckpt`` (the best validation SSIM) and ``last.ckpt``.

A job that is still running or failed has only some of these; it is listed
with the metrics it has. Metrics are named ``val/NAME`` (the best value over
the validations: highest PSNR or SSIM, lowest NMSE or loss) or
``test/METHOD/NAME`` (``metrics.json``), e.g. ``val/ssim``, ``test/unrolled/psnr``.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from unrolled.data.publish import write_atomic
from unrolled.evaluation.metrics_json import read_metrics_json

__all__ = [
    "DEFAULT_METRIC",
    "FALLBACK_METRIC",
    "SweepRun",
    "collect_runs",
    "format_markdown",
    "report_rows",
    "save_report_figure",
    "sort_runs",
    "table_columns",
    "metric_column",
    "HEADERS",
    "format_value",
    "check_metric",
    "choose_metric",
    "varying_overrides",
    "write_report",
]

DEFAULT_METRIC = "val/ssim"
FALLBACK_METRIC = "test/unrolled/ssim"
REPORT_NAME = "sweep_report"
LOWER_IS_BETTER = ("nmse", "loss")
SKIPPED_DIRS = (".submitit", "wandb", "checkpoints", "figures")


@dataclass(frozen=True)
class SweepRun:
    """One job of a sweep, as found on disk.

    Attributes:
        job: the job directory relative to the sweep directory (``"3"``).
        job_dir: the job directory.
        overrides: the job's command-line overrides, in order.
        val: ``{"ssim": ((epoch, value), ...), ...}`` per logged ``val/NAME``, in step order.
        test: ``metrics.json``: ``{method: {"psnr", "ssim", "nmse"}}``, ``{}`` if absent.
        checkpoint: the best checkpoint, else ``last.ckpt``, else None.
    """

    job: str
    job_dir: Path
    overrides: tuple[str, ...]
    val: dict[str, tuple[tuple[int, float], ...]] = field(default_factory=dict)
    test: dict[str, dict[str, float]] = field(default_factory=dict)
    checkpoint: Path | None = None

    @property
    def finished(self) -> bool:
        """Whether the job got as far as writing its test metrics."""
        return bool(self.test)

    def metric(self, name: str) -> float | None:
        """The value of ``val/NAME`` (best over validations) or ``test/METHOD/NAME``."""
        parts = check_metric(name).split("/")
        if parts[0] == "val":
            values = [v for _, v in self.val.get(parts[1], ()) if math.isfinite(v)]
            if not values:
                return None
            return min(values) if _lower_is_better(name) else max(values)
        value = self.test.get(parts[1], {}).get(parts[2])
        return None if value is None else float(value)

    def best_epoch(self, name: str = "ssim") -> int | None:
        """The epoch of the best ``val/NAME``."""
        curve = [(e, v) for e, v in self.val.get(name, ()) if math.isfinite(v)]
        if not curve:
            return None
        pick = min if _lower_is_better(name) else max
        return pick(curve, key=lambda ev: ev[1])[0]


def check_metric(name: str) -> str:
    """``name`` if it names a metric (``val/NAME``, ``test/METHOD/NAME``), else ValueError."""
    parts = name.split("/")
    valid = (len(parts), parts[0]) in ((2, "val"), (3, "test")) and all(parts)
    if not valid:
        raise ValueError(f"unknown metric {name!r}: use val/NAME or test/METHOD/NAME")
    return name


def _lower_is_better(metric: str) -> bool:
    return metric.rsplit("/", 1)[-1] in LOWER_IS_BETTER


def _natural_key(text: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def collect_runs(sweep_dir: str | os.PathLike[str]) -> list[SweepRun]:
    """Every job of the multirun directory ``sweep_dir``, in job order.

    Raises:
        FileNotFoundError: ``sweep_dir`` is not a directory, holds no job, or holds
            the jobs of several sweeps (e.g. ``multirun/TASK`` rather than one of
            its dated sweep directories). The message is one line.
    """
    root = Path(sweep_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory")
    job_dirs = sorted(
        (
            p.parent.parent
            for p in root.glob("**/.hydra/overrides.yaml")
            if not any(part in SKIPPED_DIRS for part in p.relative_to(root).parts)
        ),
        key=lambda d: _natural_key(d.relative_to(root).as_posix()),
    )
    if not job_dirs:
        raise FileNotFoundError(
            f"{root}: no runs here (a multirun directory holds job directories with "
            ".hydra/overrides.yaml)"
        )
    sweeps = {_sweep_root(d, root) for d in job_dirs}
    if len(sweeps) > 1:
        names = ", ".join(sorted(str(s) for s in sweeps)[:3])
        raise FileNotFoundError(
            f"{root}: holds {len(sweeps)} sweeps ({names}{', ...' if len(sweeps) > 3 else ''}); "
            "pass one of them"
        )
    return [_read_run(d, root) for d in job_dirs]


def _sweep_root(job_dir: Path, root: Path) -> Path:
    """The nearest directory above ``job_dir`` (up to ``root``) with a ``multirun.yaml``."""
    if job_dir == root:  # a single run's directory
        return root
    for parent in job_dir.parents:
        if (parent / "multirun.yaml").is_file() or parent == root:
            return parent
    return root


def _read_run(job_dir: Path, root: Path) -> SweepRun:
    overrides = yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text()) or []
    test_path = job_dir / "metrics.json"
    test = read_metrics_json(test_path) if test_path.is_file() else {}
    ckpts = sorted((job_dir / "checkpoints").glob("best*.ckpt"))
    last = job_dir / "checkpoints" / "last.ckpt"
    checkpoint = ckpts[-1] if ckpts else (last if last.is_file() else None)
    job = job_dir.relative_to(root).as_posix()
    return SweepRun(
        job=job if job != "." else job_dir.name,
        job_dir=job_dir,
        overrides=tuple(str(o) for o in overrides),
        val=_read_val_curves(job_dir),
        test=test,
        checkpoint=checkpoint,
    )


def _read_val_curves(job_dir: Path) -> dict[str, tuple[tuple[int, float], ...]]:
    """``val/NAME`` columns of the CSV logger's files, ``{NAME: ((epoch, value), ...)}``."""
    by_step: dict[str, dict[int, tuple[int, float]]] = {}
    files = sorted(
        job_dir.glob("*/version_*/metrics.csv"), key=lambda p: _natural_key(p.parent.name)
    )
    for path in files:  # later versions (resumed runs) overwrite earlier rows of a step
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                for key, value in row.items():
                    if not key or not key.startswith("val/") or value in ("", None):
                        continue
                    step = int(float(row.get("step") or 0))
                    epoch = int(float(row.get("epoch") or 0))
                    by_step.setdefault(key[4:], {})[step] = (epoch, float(value))
    return {
        name: tuple(points[s] for s in sorted(points)) for name, points in sorted(by_step.items())
    }


def sort_runs(runs: Sequence[SweepRun], metric: str) -> list[SweepRun]:
    """Best first by ``metric``; jobs without it last, in job order."""
    lower = _lower_is_better(metric)

    def key(run: SweepRun):
        value = run.metric(metric)
        if value is None:
            return (1, 0.0)
        return (0, value if lower else -value)

    return sorted(runs, key=key)


def choose_metric(runs: Sequence[SweepRun], metric: str | None = None) -> str:
    """``metric``, or :data:`DEFAULT_METRIC` if a job has it, else :data:`FALLBACK_METRIC`."""
    if metric:
        return check_metric(metric)
    if any(r.metric(DEFAULT_METRIC) is not None for r in runs):
        return DEFAULT_METRIC
    return FALLBACK_METRIC


def varying_overrides(runs: Sequence[SweepRun]) -> list[str]:
    """Per job, the overrides that differ between the jobs (what the sweep swept).

    A job's label keeps its own order of overrides; with a single job, or jobs
    that share all overrides, the label is all its overrides.
    """

    def parse(run: SweepRun) -> dict[str, str]:
        return dict(o.split("=", 1) if "=" in o else (o, "") for o in run.overrides)

    parsed = [parse(r) for r in runs]
    keys = {k for p in parsed for k in p}
    varying = {k for k in keys if len({p.get(k) for p in parsed}) > 1}
    labels = []
    for run in runs:
        shown = [o for o in run.overrides if not varying or o.split("=", 1)[0] in varying]
        labels.append(",".join(shown) or f"job {run.job}")
    return labels


def report_rows(runs: Sequence[SweepRun], metric: str) -> list[dict[str, object]]:
    """One row per job, best first: rank, job, label, the metric, val/test metrics, files."""
    labels = dict(zip((r.job for r in runs), varying_overrides(runs), strict=True))
    methods = sorted({m for r in runs for m in r.test}, key=lambda m: (m != "unrolled", m))
    rows = []
    for rank, run in enumerate(sort_runs(runs, metric), start=1):
        row: dict[str, object] = {
            "rank": rank,
            "job": run.job,
            "overrides": labels[run.job],
            metric_column(metric): run.metric(metric),
            "best val/ssim": run.metric("val/ssim"),
            "best epoch": run.best_epoch("ssim"),
            "epochs": len(run.val.get("ssim", ())),
        }
        for method in methods:
            for name in ("psnr", "ssim", "nmse"):
                row[f"test/{method}/{name}"] = run.test.get(method, {}).get(name)
        row["status"] = "finished" if run.finished else "incomplete"
        row["checkpoint"] = str(run.checkpoint) if run.checkpoint else None
        row["all overrides"] = " ".join(run.overrides)
        rows.append(row)
    return rows


def format_value(value: object, column: str = "") -> str:
    """A table cell: PSNR with 2 decimals, other floats with 4, None empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}" if column.endswith("psnr") else f"{value:.4f}"
    return str(value)


def metric_column(metric: str) -> str:
    """The report column of ``metric``: ``best val/NAME`` or ``test/METHOD/NAME``."""
    return f"best {metric}" if metric.startswith("val/") else metric


def table_columns(metric: str) -> list[str]:
    """The columns of the printed and markdown tables (the CSV file has every column)."""
    columns = ["rank", "job", "overrides", metric_column(metric), "best val/ssim", "best epoch"]
    columns += ["test/unrolled/psnr", "test/unrolled/ssim", "test/unrolled/nmse", "status"]
    return list(dict.fromkeys(columns))  # the metric may be one of the others


HEADERS = {
    "best val/ssim": "val SSIM (best)",
    "best epoch": "epoch",
    "test/unrolled/psnr": "test PSNR",
    "test/unrolled/ssim": "test SSIM",
    "test/unrolled/nmse": "test NMSE",
}
"""Short headers of the printed and markdown tables (the CSV file keeps the column names)."""


def format_markdown(rows: Sequence[dict[str, object]], metric: str, title: str) -> str:
    """A markdown table of the rows (metric, validation and the network's test metrics)."""
    columns = table_columns(metric)
    lines = [f"# {title}", "", f"Sorted by `{metric}` (best first).", ""]
    lines.append("| " + " | ".join(HEADERS.get(c, c) for c in columns) + " |")
    align = ["---" if c in ("job", "overrides", "status") else "---:" for c in columns]
    lines.append("|" + "|".join(align) + "|")
    for row in rows:
        cells = [format_value(row.get(c), c).replace("|", "\\|") for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    baselines = [
        (m, rows[0].get(f"test/{m}/ssim"))
        for m in sorted({k.split("/")[1] for r in rows for k in r if k.startswith("test/")})
        if m != "unrolled"
    ]
    if any(v is not None for _, v in baselines):
        lines += [
            "",
            "Baselines on the test split (SSIM): "
            + ", ".join(f"{m} {format_value(v)}" for m, v in baselines if v is not None),
        ]
    best = rows[0] if rows and rows[0].get(metric_column(metric)) is not None else None
    if best is not None:
        lines += ["", f"Best: job {best['job']} ({best['overrides']}), checkpoint "]
        lines[-1] += f"`{best['checkpoint']}`" if best["checkpoint"] else "none"
    return "\n".join(lines) + "\n"


def save_report_figure(runs: Sequence[SweepRun], metric: str, path: Path, title: str = "") -> Path:
    """The metric per job (bars, best on top) and the validation SSIM curves, as a PNG."""
    from matplotlib.figure import Figure  # no pyplot: leaves the user's backend alone
    from matplotlib.ticker import MaxNLocator

    ranked = sort_runs(runs, metric)
    labels = dict(zip((r.job for r in runs), varying_overrides(runs), strict=True))
    curves = [r for r in ranked if r.val.get("ssim")]
    height = max(3.0, 0.35 * len(ranked) + 1.5)
    fig = Figure(figsize=(12 if curves else 7, height))
    axes = fig.subplots(1, 2 if curves else 1, squeeze=False)[0]
    ax = axes[0]
    values = [r.metric(metric) for r in ranked]
    names = [_short(f"{r.job}: {labels[r.job]}") for r in ranked]
    ypos = list(range(len(ranked)))[::-1]  # best at the top
    ax.barh(ypos, [math.nan if v is None else v for v in values], color="tab:blue")
    finite = [v for v in values if v is not None]
    left = 0.0
    if finite:  # zoom on the spread of the values (SSIMs of a sweep differ in the 3rd digit)
        lo, hi = min(finite), max(finite)
        pad = (hi - lo) * 0.5 or abs(hi) * 0.05 or 1.0
        left = lo - pad
        ax.set_xlim(left, hi + pad)
    for y, v in zip(ypos, values, strict=True):
        text = f" {format_value(v, metric)}" if v is not None else " n/a"
        ax.text(left if v is None else v, y, text, va="center", fontsize=8)
    ax.set_yticks(ypos, names, fontsize=8)
    ax.set_xlabel(metric_column(metric))
    ax.set_title(f"{metric_column(metric)} per job (best on top)", fontsize=10)
    if curves:
        ax = axes[1]
        for run in curves:
            epochs, vals = zip(*run.val["ssim"], strict=True)
            label = _short(f"{run.job}: {labels[run.job]}", 45)
            ax.plot(epochs, vals, marker="o", markersize=3, label=label)
        epochs = [e for run in curves for e, _ in run.val["ssim"]]
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("val/ssim")
        ax.set_title("validation SSIM", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    write_atomic(path, buf.getvalue())
    return path


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def write_report(
    sweep_dir: str | os.PathLike[str],
    runs: Sequence[SweepRun],
    metric: str,
    plot: bool = True,
) -> list[Path]:
    """Write ``sweep_report.md``, ``.csv`` (every column) and ``.png`` into ``sweep_dir``.

    Each file is replaced atomically (a reader never sees half a report).

    Returns:
        The paths written.
    """
    root = Path(sweep_dir)
    rows = report_rows(runs, metric)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    md, csv_path = root / f"{REPORT_NAME}.md", root / f"{REPORT_NAME}.csv"
    write_atomic(csv_path, buf.getvalue())
    write_atomic(md, format_markdown(rows, metric, f"Sweep {root.resolve().name}"))
    written = [md, csv_path]
    if plot:
        png = root / f"{REPORT_NAME}.png"
        save_report_figure(runs, metric, png, title=f"sweep {root.resolve().name}")
        written.append(png)
    return written
