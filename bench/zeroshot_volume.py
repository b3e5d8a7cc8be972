"""Zero-shot for whole volumes: per-slice fits from scratch against the volume fit.

Each arm runs the user-facing CLI, ``unrolled-reconstruct method=zeroshot``
(fastMRI's RandomMaskFunc, 4x, centre fraction 0.08, seeded per file name, as
``conf/reconstruct.yaml``), on the embedded test volumes (``unrolled-synth``
defaults: 8 slices, 8 coils, 256 x 128 k-space, 128 x 128 images), with one
torch thread:

- ``scratch``: today's method before this change: ``ZeroShot`` from
  ``conf/method/zeroshot.yaml`` with the volume options removed (every slice
  fitted from a fresh network on all rows, 600 steps or 480 s):
  ``method.warm_start=false method.classical=null method.classical_start=false
  method.readout_oversampling=1``, which is ``ZeroShot`` as it was;
- ``volume``: ``conf/method/zeroshot.yaml`` as it was until session 7 (each slice
  after the first starts from the previous slice's fitted network and is fine-tuned
  for ``warm_steps``; zero-filled start, no classical candidate);
- ``volume + CG-SENSE candidate``: the same with CG-SENSE
  (``conf/method/cg_sense.yaml``) as the candidate that replaces a slice's
  image where the network does not predict the held-out samples strictly better;
- ``volume, 8 cascades``: the default with ``method.net.num_cascades=8``
  (``bench/zeroshot_net_size.py`` measured 8 cascades on the real scans);
- ``volume, started from CG-SENSE``: ``conf/method/zeroshot.yaml`` since session 7
  (``method.classical_start=true``, CG-SENSE as ``method.classical``): every fit
  starts from CG-SENSE's image (``bench/zeroshot_classical_start.py`` measures it on
  the real scans).

Per arm: wall time and CPU seconds of the CLI per volume (one torch thread, so
CPU seconds do not grow with the load of a shared machine as wall time does),
optimisation steps, per-slice fit seconds (from the
``<stem>_curves.csv`` the CLI writes), the volume's PSNR / SSIM against
``reconstruction_rss`` (fastMRI's definitions, data range = the volume's
maximum) and PSNR / SSIM per slice position. The load average of the shared
machine is recorded before and after each arm.

    OMP_NUM_THREADS=1 .venv/bin/python bench/zeroshot_volume.py --data data/embedded/test \\
        --volumes 1
    OMP_NUM_THREADS=1 .venv/bin/python bench/zeroshot_volume.py --arms volume --merge

``--arms`` runs a subset and merges into an existing JSON (``--merge``).
Writes ``bench/results/zeroshot_volume.json`` and ``docs/zeroshot_volume.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from unrolled.metrics import psnr, ssim, volume_metrics

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ZERO_FILLED_START = ["method.classical=null", "method.classical_start=false"]
CG_SENSE = (
    "method.classical={_target_: unrolled.methods.classical.CGSense, lam: 0.0172, "
    "max_iter: 30, weight_selection: null}"
)
ARMS = {  # each arm spelt out in full, so that a later default does not change what it runs
    "scratch": [
        "method.warm_start=false",
        *ZERO_FILLED_START,
        "method.readout_oversampling=1",
    ],
    "volume": ZERO_FILLED_START,  # the default until session 7
    "volume, 8 cascades": [*ZERO_FILLED_START, "method.net.num_cascades=8"],
    "volume + CG-SENSE candidate": [CG_SENSE, "method.classical_start=false"],
    "volume, started from CG-SENSE": [CG_SENSE, "method.classical_start=true"],  # the default
}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def fit_seconds(curves: Path) -> list[dict]:
    """Per slice: fit seconds, steps, from the CLI's curves CSV (last row per slice)."""
    last: dict[str, dict] = {}
    with curves.open() as f:
        for row in csv.DictReader(f):
            last[row["key"]] = row
    out = []
    for key, row in last.items():
        out.append({"key": key, "steps": int(row["step"]), "fit_seconds": float(row["seconds"])})
    return sorted(out, key=lambda r: int(r["key"].rsplit("/", 1)[1]))


def score(target: Path, pred: Path) -> dict:
    with h5py.File(target) as t, h5py.File(pred) as p:
        gt = torch.from_numpy(t["reconstruction_rss"][()].astype(np.float64))
        rec = torch.from_numpy(p["reconstruction"][()].astype(np.float64))
    maxval = gt.max()
    per_slice = [
        {"psnr": float(psnr(gt[i], rec[i], maxval)), "ssim": float(ssim(gt[i], rec[i], maxval))}
        for i in range(gt.shape[0])
    ]
    return {"volume": volume_metrics(gt, rec, maxval), "per_slice": per_slice}


def run_arm(arm: str, files: list[Path], work: Path, extra: list[str] = ()) -> dict:
    out: dict = {"overrides": [*ARMS[arm], *extra], "volumes": {}}
    for f in files:
        src = work / "in" / f.stem
        src.mkdir(parents=True, exist_ok=True)
        if not (src / f.name).exists():
            os.symlink(f.resolve(), src / f.name)
        # Hydra reads commas and spaces in an override's value: the folder gets a plain name
        dest = work / re.sub(r"[^A-Za-z0-9_.-]+", "_", arm) / f.stem
        shutil.rmtree(dest, ignore_errors=True)
        cmd = [
            str(BIN / "unrolled-reconstruct"),
            "method=zeroshot",
            f"input_dir={src}",
            f"output_dir={dest}",
            "device=cpu",
            "progress=false",
            *out["overrides"],
        ]
        load = load_average()
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=REPO)
        wall = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        slices = fit_seconds(dest / f"{f.stem}_curves.csv")
        scores = score(f, dest / f.name)
        for s, q in zip(slices, scores["per_slice"], strict=True):
            s.update(q)
        out["volumes"][f.name] = {  # steps: optimisation steps of all slices
            "wall_seconds": round(wall, 1),
            "cpu_seconds": round(cpu, 1),  # one torch thread: the load-independent cost
            "steps": sum(s["steps"] for s in slices),
            "load_average_before_after": [load, load_average()],
            **scores["volume"],
            "slices": slices,
        }
        print(f"{arm} {f.name}: {wall:.0f} s, {scores['volume']}", flush=True)
    return out


def _steps(volume: dict) -> int:
    return sum(s["steps"] for s in volume["slices"])


def _mean_or_none(values: list) -> float | None:
    return None if any(v is None for v in values) else float(np.mean(values))


def summarise(result: dict) -> dict:
    summary = {}
    for arm, r in result["arms"].items():
        vols = list(r["volumes"].values())
        first = [v["slices"][0]["fit_seconds"] for v in vols]
        rest = [s["fit_seconds"] for v in vols for s in v["slices"][1:]]
        summary[arm] = {
            "wall_seconds_per_volume": float(np.mean([v["wall_seconds"] for v in vols])),
            "cpu_seconds_per_volume": _mean_or_none([v.get("cpu_seconds") for v in vols]),
            "steps_per_volume": float(np.mean([_steps(v) for v in vols])),
            "psnr": float(np.mean([v["psnr"] for v in vols])),
            "ssim": float(np.mean([v["ssim"] for v in vols])),
            "first_slice_fit_seconds": float(np.mean(first)),
            "following_slices_fit_seconds": float(np.mean(rest)) if rest else None,
            "psnr_per_position": np.mean(
                [[s["psnr"] for s in v["slices"]] for v in vols], axis=0
            ).tolist(),
            "ssim_per_position": np.mean(
                [[s["ssim"] for s in v["slices"]] for v in vols], axis=0
            ).tolist(),
        }
    if {"scratch", "volume"} <= summary.keys():
        a, b = summary["scratch"], summary["volume"]
        summary["volume_vs_scratch"] = {
            "time_ratio": b["wall_seconds_per_volume"] / a["wall_seconds_per_volume"],
            "steps_ratio": b["steps_per_volume"] / a["steps_per_volume"],
            "psnr_change_db": b["psnr"] - a["psnr"],
            "ssim_change": b["ssim"] - a["ssim"],
        }
    return summary


def figure(result: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.6), layout="constrained")
    ax_t, ax_p, ax_s = fig.subplots(1, 3)
    for arm, s in result["summary"].items():
        if arm not in result["arms"]:
            continue
        vols = list(result["arms"][arm]["volumes"].values())
        secs = np.mean([[x["fit_seconds"] for x in v["slices"]] for v in vols], axis=0)
        pos = np.arange(len(secs))
        label = (
            f"{arm}: {s['wall_seconds_per_volume']:.0f} s / volume, "
            f"{s['psnr']:.2f} dB, SSIM {s['ssim']:.3f}"
        )
        ax_t.plot(pos, secs, "o-", label=label)
        ax_p.plot(pos, s["psnr_per_position"], "o-")
        ax_s.plot(pos, s["ssim_per_position"], "o-")
    for ax, name in ((ax_t, "fit seconds"), (ax_p, "PSNR (dB)"), (ax_s, "SSIM")):
        ax.set_xlabel("slice position")
        ax.set_ylabel(name)
    fig.legend(loc="outside lower center", ncol=2, fontsize=8)
    fig.suptitle("Zero-shot on an embedded test volume (4x): per-slice fits vs volume fits")
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "data" / "embedded" / "test")
    parser.add_argument("--volumes", type=int, default=1)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--work", type=Path, default=REPO / "outputs" / "zeroshot_volume")
    parser.add_argument("--merge", action="store_true", help="add to an existing JSON")
    parser.add_argument(
        "--overrides", nargs="*", default=[], help="more Hydra overrides for the arms run"
    )
    parser.add_argument("--report", action="store_true", help="only summarise an existing JSON")
    parser.add_argument("--json", type=Path, default=REPO / "bench/results/zeroshot_volume.json")
    parser.add_argument("--png", type=Path, default=REPO / "docs" / "zeroshot_volume.png")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.report:
        result = json.loads(args.json.read_text())
        result["summary"] = summarise(result)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        figure(result, args.png)
        print(json.dumps(result["summary"], indent=1))
        return result
    files = sorted(args.data.glob("*.h5"))[: args.volumes]
    if not files:
        parser.error(f"{args.data}: no .h5 volumes (run unrolled-synth first)")
    result = json.loads(args.json.read_text()) if args.merge and args.json.exists() else {}
    result.setdefault("arms", {})
    result["setup"] = {
        "data": str(args.data),
        "files": [f.name for f in files],
        "mask": "fastMRI RandomMaskFunc, 4x, centre fraction 0.08, seeded per file (CLI)",
        "omp_num_threads": os.environ["OMP_NUM_THREADS"],
        "cpu_count": os.cpu_count(),
        "note": "shared 2-core machine under load from other jobs (see load averages)",
    }
    for arm in args.arms:
        result["arms"][arm] = run_arm(arm, files, args.work, args.overrides)
        result["summary"] = summarise(result)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    figure(result, args.png)
    print(json.dumps(result["summary"], indent=1))
    return result


if __name__ == "__main__":
    main()
