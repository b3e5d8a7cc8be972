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

from unrolled.evaluation.sweeps import (
    DEFAULT_METRIC,
    FALLBACK_METRIC,
    HEADERS,
    choose_metric,
    collect_runs,
    format_value,
    report_rows,
    table_columns,
    write_report,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unrolled-sweep-report",
        description="Tabulate the jobs of a Hydra multirun directory, best first.",
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


def main(argv: Sequence[str] | None = None) -> None:
    """Collect, print and write the report of ``SWEEP_DIR``; exit 1 with one line on bad input."""
    args = _parser().parse_args(argv)
    try:
        runs = collect_runs(args.sweep_dir)
        metric = choose_metric(runs, args.metric)
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
