"""How cost grows with coils and matrix size: our knee network against fastMRI's E2E-VarNet.

Two sweeps, each point in a fresh subprocess (so peak memory is that job's alone):

- coils 4, 8, 16, 32 at a 256 x 256 matrix;
- matrix 256 x 256, 320 x 320, 640 x 320, 640 x 368 at 16 coils.

Networks: ``ours_8x32x3`` (the model of ``experiment=knee_multicoil_4x8x``: 8 cascades,
ResNet 32 x 3, learned maps, gradient checkpointing) and ``varnet`` (fastMRI's published
E2E-VarNet), both from ``bench/networks.py``. Per point:

- inference time per slice (``no_grad``) and one training step (forward, SSIM+L1 on the
  central <=320 x 320 crop, backward, Adam), batch 1, on the synthetic slice of
  ``speed_memory.synthetic_inputs`` (4x random mask, 8 % centre);
- time is the process's CPU time with one torch thread (``OMP_NUM_THREADS=1``), robust to
  the other jobs of this shared machine (see bench/README.md); wall time is recorded too;
- peak training memory: the process's peak resident set (``VmHWM`` after
  ``/proc/self/clear_refs``) minus its resident set once network, inputs and optimizer
  exist (``speed_memory._Memory``); not tracemalloc, which misses torch's allocator;
- FLOPs of one inference call, counted by ``torch.utils.flop_counter.FlopCounterMode``
  during the (untimed) warm-up call: convolutions and matrix products only, not FFTs or
  element-wise work; the fraction of the peak is those FLOPs / inference CPU time /
  this machine's measured one-thread float32 matmul rate (``matmul_peak``).

    .venv/bin/python bench/scaling.py            # ~15 CPU-min of one thread (longer under load)
    .venv/bin/python bench/scaling.py --quick    # tiny grid, a minute: checks the pipeline

Writes ``bench/results/scaling.json`` and ``bench/results/scaling.png`` (``--quick``:
``outputs/bench/scaling_quick.*``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import networks
import speed_memory

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
MODELS = ("ours_8x32x3", "varnet")
FULL = {
    "coils": [(c, 256, 256) for c in (4, 8, 16, 32)],
    "matrix": [(16, h, w) for h, w in ((256, 256), (320, 320), (640, 320), (640, 368))],
}
QUICK = {
    "coils": [(c, 64, 64) for c in (4, 8)],
    "matrix": [(4, h, w) for h, w in ((64, 64), (96, 80))],
}


def crop_of(height: int, width: int) -> tuple[int, int]:
    return (min(320, height), min(320, width))


def matmul_peak(n: int = 1024, reps: int = 5) -> dict:
    """Best one-thread float32 matmul rate of this machine, GFLOP/s (CPU time)."""
    import torch

    torch.set_num_threads(1)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        c0 = time.process_time()
        a @ b
        best = min(best, time.process_time() - c0)
    return {"gflops": 2 * n**3 / best / 1e9, "n": n, "timing": "process CPU time, 1 thread"}


def worker(spec: dict) -> dict:
    """One (model, shape, mode) measurement in this fresh process."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from unrolled.losses import SSIML1Loss
    from unrolled.physics.coils import center_crop

    torch.set_num_threads(1)
    torch.manual_seed(0)
    coils, height, width = spec["shape"]
    crop = crop_of(height, width)
    net = networks.build(spec["model"])
    kspace, mask, nlf, target, max_value = speed_memory.synthetic_inputs(coils, height, width, crop)
    train = spec["mode"] == "train"
    net.train(train)
    loss_fn = SSIML1Loss()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4) if train else None

    def step() -> None:
        if train:
            opt.zero_grad(set_to_none=True)
            image = net(kspace, mask, nlf).image
            loss_fn(center_crop(image, crop), target, max_value).backward()
            opt.step()
        else:
            with torch.no_grad():
                net(kspace, mask, nlf)

    memory = speed_memory._Memory(torch.device("cpu"))
    memory.start()
    flops = None
    for _ in range(spec["warmup"]):
        if train:
            step()
        else:  # the warm-up call counts the FLOPs (its time is discarded)
            with FlopCounterMode(display=False) as counter:
                step()
            flops = counter.get_total_flops()
    cpu, wall = [], []
    for _ in range(spec["reps"]):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {
        "model": spec["model"],
        "shape": spec["shape"],
        "mode": spec["mode"],
        "params": sum(p.numel() for p in net.parameters()),
        "cpu_s": statistics.median(cpu),
        "wall_s": statistics.median(wall),
        "cpu_times_s": cpu,
        "peak_mb": memory.peak_increase() / 2**20,
        "memory_method": memory.method,
        "flops": flops,
    }


def measure(model: str, shape, mode: str, quick: bool) -> dict:
    # Inference: one warm-up (counts FLOPs) + timed calls; training: the first step is timed
    # (on CPU it costs what later ones do, and its peak includes Adam's state).
    warmup, reps = (1, 1 if not quick else 2) if mode == "infer" else (0, 1)
    spec = {"model": model, "shape": list(shape), "mode": mode, "warmup": warmup, "reps": reps}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    before = speed_memory.loadavg()
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        timeout=7200,
        cwd=REPO,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{model} {shape} {mode} failed:\n{proc.stderr[-3000:]}")
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    record.update(load_before=before, load_after=speed_memory.loadavg())
    return record


def run(quick: bool, out: Path, jobs: int = 2) -> dict:
    networks.check_experiment_models()
    grid = QUICK if quick else FULL
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_start = speed_memory.loadavg()
    peak = matmul_peak()
    print(f"matmul peak (1 thread): {peak['gflops']:.1f} GFLOP/s", flush=True)
    shapes = list(dict.fromkeys(tuple(s) for sweep in grid.values() for s in sweep))

    def sweep(model: str) -> list[dict]:
        out = []
        for shape in shapes:
            for mode in ("infer", "train"):
                r = measure(model, shape, mode, quick)
                out.append(r)
                print(
                    f"  {model:12s} {str(shape):16s} {mode:5s} {1e3 * r['cpu_s']:9.0f} CPU-ms "
                    f"peak +{r['peak_mb']:7.0f} MiB (load {r['load_before']})",
                    flush=True,
                )
        return out

    # One process per network at a time, the two networks side by side (2 cores; CPU time
    # of one thread is what is compared, so they do not distort each other's figures much).
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        records = [r for recs in pool.map(sweep, MODELS) for r in recs]
    rows = table_rows(records, peak["gflops"])
    result = {
        "date": started,
        "jobs": jobs,
        "machine": speed_memory.machine(),
        "load_average_start": load_start,
        "load_average_end": speed_memory.loadavg(),
        "quick": quick,
        "models": {m: networks.MODELS[m] for m in MODELS},
        "sweeps": {k: [list(s) for s in v] for k, v in grid.items()},
        "timing": "process CPU time, 1 torch thread (OMP_NUM_THREADS=1)",
        "memory": "peak RSS (VmHWM after clear_refs) above the resident set before the step",
        "flops": "FlopCounterMode, one inference call: convolutions and matmuls, not FFTs",
        "matmul_peak": peak,
        "rows": rows,
        "records": records,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out.with_suffix(".png"))
    return result


def table_rows(records: list[dict], peak_gflops: float) -> list[dict]:
    """One row per (model, shape): inference / training time, memory, FLOPs, peak fraction."""
    by = {(r["model"], tuple(r["shape"]), r["mode"]): r for r in records}
    rows = []
    for model, shape in dict.fromkeys((r["model"], tuple(r["shape"])) for r in records):
        inf, tr = by.get((model, shape, "infer")), by.get((model, shape, "train"))
        row = {"model": model, "coils": shape[0], "height": shape[1], "width": shape[2]}
        if inf:
            row.update(infer_ms=1e3 * inf["cpu_s"], infer_gflops=inf["flops"] / 1e9)
            row["peak_fraction"] = inf["flops"] / inf["cpu_s"] / 1e9 / peak_gflops
        if tr:
            row.update(train_ms=1e3 * tr["cpu_s"], train_peak_mb=tr["peak_mb"])
        rows.append(row)
    return rows


def plot(result: dict, path: Path) -> None:
    """Three panels (inference, training step, peak training memory) per sweep."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    metrics = [
        ("infer_ms", "inference CPU-s/slice", 1e-3),
        ("train_ms", "training CPU-s/step", 1e-3),
        ("train_peak_mb", "peak training memory GiB", 1 / 1024),
    ]
    for i, (sweep, shapes) in enumerate(result["sweeps"].items()):
        shapes = [tuple(s) for s in shapes]
        for j, (key, label, scale) in enumerate(metrics):
            ax = axes[i, j]
            for model in result["models"]:
                mine = [r for r in rows if r["model"] == model]
                pts = {(r["coils"], r["height"], r["width"]): r for r in mine}
                xs = [s[0] if sweep == "coils" else s[1] * s[2] / 1e3 for s in shapes]
                ys = [pts.get(s, {}).get(key, float("nan")) * scale for s in shapes]
                ax.plot(xs, ys, "o-", label=model)
            c, h, w = shapes[0]
            ax.set_xlabel(f"coils ({h} x {w})" if sweep == "coils" else f"k-pixels ({c} coils)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if sweep == "coils":
                ax.set_xscale("log", base=2)
    axes[0, 0].legend()
    fig.suptitle(
        f"Cost vs coils and matrix size, 1 CPU thread ({result['machine']['cpu']}; "
        f"load {result['load_average_start'][0]} -> {result['load_average_end'][0]})",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def replot(path: Path) -> None:
    """Redraw the PNG beside a results JSON."""
    plot(json.loads(path.read_text()), path.with_suffix(".png"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="tiny grid: checks the pipeline")
    parser.add_argument("--out", type=Path, help="JSON path (the PNG goes beside it)")
    parser.add_argument("--jobs", type=int, default=2, help="networks measured side by side")
    parser.add_argument("--replot", type=Path, help="only redraw the PNG of this JSON")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    if args.replot:
        replot(args.replot)
        return
    default = REPO / "outputs" / "bench" / "scaling_quick.json" if args.quick else None
    result = run(args.quick, args.out or default or RESULTS / "scaling.json", args.jobs)
    for row in result["rows"]:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
