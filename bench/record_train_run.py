"""Record one ``unrolled-train`` run (e.g. ``make train``) as a result file in ``bench/results/``.

The README's ``make train`` table is generated from this file by ``bench/readme_tables.py``
(one source for every number). Recorded: the run's ``metrics.json`` (test split), the epochs
it trained and why it stopped, its wall time (from ``.hydra/config.yaml``, written at the
start, to ``metrics.json``, written at the end), the CG-SENSE weight it scored, its
command-line overrides, the machine, the load average (given at the start, read at the end)
and the commit.

    .venv/bin/python bench/record_train_run.py outputs/embedded/DATE_TIME \\
        --load-start 11.3 [--command "make train"] [--out bench/results/make_train.json]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _epochs(run: Path) -> int:
    """Epochs with a validation score in the run's CSV log."""
    epochs = set()
    for path in sorted(run.glob("csv/version_*/metrics.csv")):
        with path.open() as f:
            for row in csv.DictReader(f):
                if row.get("val/ssim"):
                    epochs.add(int(row["epoch"]))
    return len(epochs)


def record(run: Path, command: str, load_start: float | None) -> dict:
    metrics_path = run / "metrics.json"
    config_path = run / ".hydra" / "config.yaml"
    for path in (metrics_path, config_path):
        if not path.is_file():
            raise SystemExit(f"{path}: missing (is {run} a finished unrolled-train run?)")
    cfg = yaml.safe_load(config_path.read_text())
    overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text()) or []
    started = dt.datetime.fromtimestamp(config_path.stat().st_mtime, dt.timezone.utc)
    finished = dt.datetime.fromtimestamp(metrics_path.stat().st_mtime, dt.timezone.utc)
    epochs = _epochs(run)
    max_epochs = cfg["trainer"]["max_epochs"]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    load_end = os.getloadavg()[0]
    loads = [v for v in (load_start, load_end) if v is not None]
    baselines = cfg.get("baselines") or {}
    return {
        "command": command,
        "overrides": [o for o in overrides if not o.startswith("hydra.run.dir")],
        "run_dir": str(run),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        "shared with other jobs",
        "load_average_start": [load_start] if load_start is not None else None,
        "load_average_end": [load_end],
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "minutes": round((finished - started).total_seconds() / 60, 1),
        "epochs": epochs,
        "max_epochs": max_epochs,
        "max_time": cfg["trainer"].get("max_time"),
        "stopped_by": "max_epochs" if epochs >= max_epochs else "max_time",
        "test": "embedded test split: 3 volumes, 24 slices, 4x random masks, centre 8%",
        "cg_sense_lam": (baselines.get("cg_sense") or {}).get("lam"),
        "cg_sense_lambda_grid": cfg.get("cg_sense_lambda_grid"),
        "load_average_note": f"1-minute load average at start and end ({loads})",
        "metrics": json.loads(metrics_path.read_text()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="the run directory (hydra.run.dir)")
    parser.add_argument("--command", default="make train")
    parser.add_argument("--load-start", type=float, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "make_train.json")
    args = parser.parse_args(argv)
    data = record(args.run, args.command, args.load_start)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
