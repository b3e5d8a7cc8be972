"""``unrolled-sweep-report``: one table of the jobs of a multirun sweep, best first.

Examples::

    unrolled-sweep-report multirun/embedded/2026-01-31_12-00-00
    unrolled-sweep-report SWEEP_DIR --metric test/unrolled/psnr
    unrolled-sweep-report SWEEP_DIR --no-plot

Prints the table and writes ``sweep_report.md``, ``sweep_report.csv`` (every
column, including each job's best checkpoint) and ``sweep_report.png`` (the
metric per job and the validation SSIM curves) into the sweep directory. The
default metric is the best validation SSIM of each job (what the sweepers
optimise), or the test SSIM of the network where no job logged validation.
Works on a sweep that is still running: unfinished jobs are listed with what
they have. The logic lives in :mod:`unrolled.evaluation.sweeps`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from unrolled.cli.common import entry_point
from unrolled.evaluation.sweeps import (
    DEFAULT_METRIC,
    FALLBACK_METRIC,
    HEADERS,
    SweepRun,
    choose_metric,
    collect_runs,
    format_value,
    report_rows,
    table_columns,
    write_report,
)


def _parser() -> argparse.ArgumentParser:
    what, _, rest = (__doc__ or "").partition("\n\n")
    parser = argparse.ArgumentParser(
        prog="unrolled-sweep-report",
        description=what.replace("``", "`") + "\n\n" + rest.replace("``", "`").strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sweep_dir", metavar="SWEEP_DIR", help="a multirun (sweep) directory")
    parser.add_argument(
        "--metric",
        default=None,
        help=f"sort key: val/NAME (best over epochs) or test/METHOD/NAME "
        f"(default: {DEFAULT_METRIC}, else {FALLBACK_METRIC})",
    )
    parser.add_argument("--no-plot", action="store_true", help="do not write sweep_report.png")
    return parser


def print_report(rows: Sequence[dict[str, object]], metric: str, title: str) -> None:
    """Print the rows as a rich table."""
    from rich.console import Console
    from rich.table import Table

    columns = table_columns(metric)
    table = Table(title=title)
    for col in columns:
        if col == "overrides":
            table.add_column(HEADERS.get(col, col), overflow="fold", min_width=20)
        else:
            left = col in ("job", "status")
            table.add_column(HEADERS.get(col, col), justify="left" if left else "right")
    for row in rows:
        table.add_row(*(format_value(row.get(c), c) for c in columns))
    console = Console()
    if not console.is_terminal:  # a log file or a pipe: no need to fold into 80 columns
        console = Console(width=160)
    console.print(table)


def logged_metrics(runs: Sequence[SweepRun]) -> list[str]:
    """Every metric name some job logged: ``val/NAME`` and ``test/METHOD/NAME``."""
    names = {f"val/{name}" for r in runs for name, curve in r.val.items() if curve}
    names |= {f"test/{m}/{name}" for r in runs for m, values in r.test.items() for name in values}
    return sorted(names)


def check_sweep(sweep_dir: str, runs: Sequence[SweepRun], metric: str | None) -> None:
    """Refuse a single run's directory and a ``--metric`` that no job logged (ValueError)."""
    root = Path(sweep_dir)
    if len(runs) == 1 and runs[0].job_dir.resolve() == root.resolve():
        raise ValueError(
            f"{root}: is the directory of a single run, not a multirun sweep "
            "(pass the sweep directory, e.g. multirun/TASK/DATE; a run's own results are "
            "its metrics.json)"
        )
    if metric and all(r.metric(metric) is None for r in runs):
        known = ", ".join(logged_metrics(runs)) or "none yet"
        raise ValueError(f"{root}: no job logged the metric {metric!r} (logged: {known})")


@entry_point("unrolled-sweep-report", __doc__)
def main(argv: Sequence[str] | None = None) -> None:
    """Collect, print and write the report of ``SWEEP_DIR``; exit 1 with one line on bad input."""
    args = _parser().parse_args(argv)
    try:
        runs = collect_runs(args.sweep_dir)
        metric = choose_metric(runs, args.metric)
        check_sweep(args.sweep_dir, runs, args.metric)
        rows = report_rows(runs, metric)
        written = write_report(args.sweep_dir, runs, metric, plot=not args.no_plot)
    except (FileNotFoundError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    finished = sum(r.finished for r in runs)
    title = f"{args.sweep_dir}: {len(runs)} jobs ({finished} finished), sorted by {metric}"
    print_report(rows, metric, title)
    print("wrote " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
    main()
