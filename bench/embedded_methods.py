"""Every method on the embedded test split, through the user-facing CLIs, and fastMRI agreement.

For each method: ``unrolled-reconstruct`` (fastMRI's RandomMaskFunc, 4x, centre
fraction 0.08, seeded per file name) into a folder, then ``unrolled-evaluate``
against the fully sampled references; the table is read from its
``metrics.json``. The same prediction files are then scored by the ``fastmri``
package's own ``evaluate.py`` functions (``nmse``, ``psnr``, ``ssim`` per
volume, centre crop to ``(w, w)`` as its script does) and the largest
per-volume difference is recorded: the measured agreement of our scoring with
fastMRI's.

    .venv/bin/python bench/embedded_methods.py \\
        --checkpoint unrolled=outputs/embedded/RUN/checkpoints/best.ckpt \\
        --checkpoint varnet_fastmri=outputs/varnet_embedded/checkpoints/best.ckpt

Writes ``bench/results/embedded_methods.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CLASSICAL = ("zero_filled", "cg_sense", "cs_wavelet", "cs_tv")


def run(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO)
    return time.perf_counter() - start


def fastmri_scores(target_dir: Path, pred_dir: Path) -> dict[str, dict[str, float]]:
    """Per-volume metrics by ``fastmri.evaluate`` on the files as written."""
    from fastmri.data.transforms import center_crop
    from fastmri.evaluate import nmse, psnr, ssim

    out = {}
    for pred_file in sorted(pred_dir.glob("*.h5")):
        with h5py.File(target_dir / pred_file.name) as t, h5py.File(pred_file) as p:
            gt = t["reconstruction_rss"][()]
            pred = p["reconstruction"][()]
        w = gt.shape[-1]
        gt, pred = center_crop(gt, (w, w)), center_crop(pred, (w, w))
        out[pred_file.name] = {
            "nmse": float(np.asarray(nmse(gt, pred)).item()),
            "psnr": float(np.asarray(psnr(gt, pred)).item()),
            "ssim": float(np.asarray(ssim(gt, pred)).item()),
        }
    return out


def ours_per_volume(pred_dir: Path) -> dict[str, dict[str, float]]:
    rows = (pred_dir / "metrics_per_volume.csv").read_text().splitlines()
    header = rows[0].split(",")
    out = {}
    for row in rows[1:]:
        cells = dict(zip(header, row.split(","), strict=True))
        out[cells["fname"]] = {k: float(cells[k]) for k in ("nmse", "psnr", "ssim")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "data" / "embedded" / "test")
    parser.add_argument("--work", type=Path, default=REPO / "outputs" / "embedded_methods")
    parser.add_argument("--checkpoint", action="append", default=[], help="NAME=PATH")
    parser.add_argument("--methods", nargs="*", default=list(CLASSICAL))
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/embedded_methods.json")
    args = parser.parse_args()

    # Fixed YAML weights: cs_tv's default per-scan weight selection (k-space cross-validation)
    # is measured in bench/real_scans.py.
    fixed = {"cs_tv": ["method.weight_selection=null"]}
    jobs = [(m, [f"method={m}", *fixed.get(m, [])]) for m in args.methods]
    for spec in args.checkpoint:
        name, path = spec.split("=", 1)
        jobs.append((name, ["method=unrolled", f"checkpoint={Path(path).resolve()}"]))
    results: dict = {
        "data": str(args.data.relative_to(REPO) if args.data.is_relative_to(REPO) else args.data),
        "mask": "fastMRI RandomMaskFunc, 4x, centre fraction 0.08, seeded per file",
        "load_average_start": os.getloadavg(),
        # bench/readme_tables.py puts these beside the README's table
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%d"),
        "methods": {},
    }
    for name, overrides in jobs:
        pred_dir = args.work / name
        seconds = run(
            [
                str(BIN / "unrolled-reconstruct"),
                *overrides,
                f"input_dir={args.data}",
                f"output_dir={pred_dir}",
                "mask.accelerations=[4]",
                "mask.center_fractions=[0.08]",
                "overwrite=true",
                "progress=false",
                f"hydra.run.dir={args.work / '.hydra' / name}",
            ]
        )
        run(
            [
                str(BIN / "unrolled-evaluate"),
                f"target_dir={args.data}",
                f"predictions_dir={pred_dir}",
                "overwrite=true",
                f"hydra.run.dir={args.work / '.hydra' / (name + '_eval')}",
            ]
        )
        summary = json.loads((pred_dir / "metrics.json").read_text())
        ours = ours_per_volume(pred_dir)
        theirs = fastmri_scores(args.data, pred_dir)
        diff = {
            k: max(abs(ours[v][k] - theirs[v][k]) for v in theirs) for k in ("nmse", "psnr", "ssim")
        }
        results["methods"][name] = {
            "metrics": summary["metrics"],
            "volumes": summary["count"],
            "reconstruct_seconds": round(seconds, 1),
            "max_abs_diff_vs_fastmri_evaluate": diff,
        }
        m = summary["metrics"]
        print(
            f"{name}: PSNR {m['psnr']['mean']:.2f} SSIM {m['ssim']['mean']:.4f} "
            f"NMSE {m['nmse']['mean']:.4f} ({seconds:.0f} s); max |ours - fastmri| {diff}",
            flush=True,
        )
    results["load_average_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, args.out)
    print("\n| method | PSNR (dB) | SSIM | NMSE | reconstruct s |\n|---|---:|---:|---:|---:|")
    for name, r in results["methods"].items():
        m = r["metrics"]
        print(
            f"| {name} | {m['psnr']['mean']:.2f} ± {m['psnr']['std']:.2f} | "
            f"{m['ssim']['mean']:.4f} ± {m['ssim']['std']:.4f} | {m['nmse']['mean']:.4f} | "
            f"{r['reconstruct_seconds']:.0f} |"
        )


if __name__ == "__main__":
    main()
