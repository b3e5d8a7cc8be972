"""Speed and peak memory: our UnrolledNet against fastMRI's E2E-VarNet, same inputs.

Every measurement (model x size x mode) runs in a fresh subprocess, so peak
memory is that of one job only:

- ``train``: one training step (forward, SSIM+L1 loss on the cropped image,
  backward, Adam step), batch 1; median over the timed steps.
- ``infer``: one slice under ``torch.no_grad()``; median over the timed calls.
- peak memory: on CUDA ``torch.cuda.max_memory_allocated`` minus what was
  allocated once the model, inputs and optimizer existed; on CPU the process's
  peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs``) minus
  its resident set at that same point (a psutil sampling thread where /proc is
  missing). Warm-up iterations count towards the peak: the first step allocates
  Adam's state.

Run standalone (``python bench/speed_memory.py --help``) or through
``bench/run_all.py``. The worker mode (``--worker SPEC``) is internal.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import networks

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"

# k-space size (coils, H, W) and recon crop of the two benchmark slices.
SIZES = {
    "knee": {"coils": 15, "height": 640, "width": 368, "crop": (320, 320)},
    "embedded": {"coils": 8, "height": 256, "width": 128, "crop": (128, 128)},
}

# (label, ours, theirs); "matched quality" is the network of bench/quality_per_budget.py.
COMPARISONS = [
    ("matched cascades", "ours_12x64x8", "varnet"),
    ("matched quality", "ours_5x24x3", "varnet"),
    ("matched quality", "ours_8x32x3", "varnet"),
]

# (warm-up, timed) repetitions and a wall-clock cap (seconds) after which no further timed
# repetition starts. CPU time of one thread varies by a few percent between repetitions.
REPS = {
    ("embedded", "infer"): (1, 5, 60),
    ("embedded", "train"): (1, 3, 90),
    ("knee", "infer"): (1, 2, 90),
    ("knee", "train"): (1, 1, 0),
}
# The 12 x 64 x 8 network is ~10x VarNet's convolution work: one repetition each, no
# warm-up, and its knee-size training step (10+ CPU-minutes) only with `full=True`.
HEAVY = {"ours_12x64x8"}
REPS_HEAVY = {
    ("embedded", "infer"): (1, 1, 0),
    ("embedded", "train"): (0, 1, 0),
    ("knee", "infer"): (0, 1, 0),
    ("knee", "train"): (0, 1, 0),
}


def synthetic_inputs(coils: int, height: int, width: int, crop, seed: int = 0):
    """One slice: masked k-space ``(1, C, H, W)``, mask ``(1, 1, H, W)``, calibration width,
    target ``(1, h, w)`` and its maximum (4x random mask, 8% centre, as the knee setup)."""
    import torch

    from unrolled.physics.masks import RandomMaskFunc

    g = torch.Generator().manual_seed(seed)
    kspace = torch.randn(1, coils, height, width, dtype=torch.complex64, generator=g)
    cols, nlf = RandomMaskFunc([0.08], [4], seed=seed)((coils, height, width))  # (1, W)
    mask = cols.reshape(1, 1, 1, width).expand(1, 1, height, width).contiguous()
    target = torch.rand(1, *crop, generator=g)
    return kspace * mask, mask, torch.tensor([nlf]), target, target.amax(dim=(1, 2))


class _Memory:
    """Peak memory above a baseline: CUDA allocator stats, /proc VmHWM, or psutil sampling."""

    def __init__(self, device) -> None:
        self.device = device
        self.method = ""
        self._stop = threading.Event()
        self._peak = 0

    @staticmethod
    def _status(field: str) -> int | None:
        try:
            text = Path("/proc/self/status").read_text()
        except OSError:
            return None
        m = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
        return int(m.group(1)) * 1024 if m else None

    def start(self) -> None:
        import torch

        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.baseline = torch.cuda.memory_allocated()
            self.method = "torch.cuda.max_memory_allocated"
            return
        self.baseline = self._status("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.method = "VmHWM (/proc/self/status) after clear_refs"
            return
        except OSError:
            pass
        import psutil

        proc = psutil.Process()
        self.baseline = proc.memory_info().rss
        self.method = "psutil rss sampled every 2 ms"

        def sample():
            while not self._stop.is_set():
                self._peak = max(self._peak, proc.memory_info().rss)
                time.sleep(0.002)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()

    def peak_increase(self) -> int:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() - self.baseline
        if self.method.startswith("VmHWM"):
            return self._status("VmHWM") - self.baseline
        self._stop.set()
        self._thread.join()
        return self._peak - self.baseline


def worker(spec: dict) -> dict:
    """One measurement in this (fresh) process; returns a JSON-able record."""
    import torch

    from unrolled.losses import SSIML1Loss
    from unrolled.physics.coils import center_crop

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    size = SIZES[spec["size"]]
    net = networks.build(spec["model"]).to(device)
    kspace, mask, nlf, target, max_value = (
        t.to(device) for t in synthetic_inputs(**size, seed=spec.get("seed", 0))
    )
    train = spec["mode"] == "train"
    net.train(train)
    loss_fn = SSIML1Loss()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4) if train else None

    def step() -> None:
        if train:
            opt.zero_grad(set_to_none=True)
            image = net(kspace, mask, nlf).image  # (1, H, W)
            loss = loss_fn(center_crop(image, size["crop"]), target, max_value)
            loss.backward()
            opt.step()
        else:
            with torch.no_grad():
                net(kspace, mask, nlf)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    warmup, reps, cap = spec["warmup"], spec["reps"], spec["max_seconds"]
    memory = _Memory(device)
    memory.start()
    start = time.perf_counter()
    warm_times, times, cpu_times = [], [], []
    for i in range(warmup + reps):
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        sync()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if i < warmup:
            warm_times.append(wall)
        else:
            times.append(wall)
            cpu_times.append(cpu)
        if times and time.perf_counter() - start > cap:
            break
    # On a shared CPU the process's own CPU time (one thread) is robust to other jobs'
    # load; wall time is what a GPU user sees. Ratios use `median_s`.
    cpu_timing = device.type == "cpu" and spec["threads"] == 1
    return {
        **{k: spec[k] for k in ("model", "size", "mode", "threads")},
        "device": str(device),
        "params": sum(p.numel() for p in net.parameters()),
        "median_s": statistics.median(cpu_times if cpu_timing else times),
        "timing": "process CPU time (1 thread)" if cpu_timing else "wall time",
        "median_wall_s": statistics.median(times),
        "median_cpu_s": statistics.median(cpu_times),
        "times_s": times,
        "cpu_times_s": cpu_times,
        "warmup_times_s": warm_times,
        "peak_mb": memory.peak_increase() / 2**20,
        "memory_method": memory.method,
    }


def loadavg() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def measure(
    model: str, size: str, mode: str, threads: int = 1, reps=None, timeout: float = 3600
) -> dict:
    """Run one measurement in a fresh subprocess; adds the load averages around it."""
    warmup, n, cap = reps or REPS[(size, mode)]
    spec = {
        "model": model,
        "size": size,
        "mode": mode,
        "threads": threads,
        "warmup": warmup,
        "reps": n,
        "max_seconds": cap,
    }
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    before = loadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=REPO,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{model}/{size}/{mode} failed:\n{proc.stderr[-3000:]}")
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    record.update(load_before=before, load_after=loadavg(), wall_s=time.perf_counter() - t0)
    return record


def run(
    sizes=("embedded", "knee"),
    comparisons=COMPARISONS,
    threads: int = 1,
    full: bool = False,
    out: Path | None = RESULTS / "speed_memory.json",
) -> dict:
    """Measure every model of ``comparisons`` at every size and mode; ratios ours/theirs."""
    networks.check_experiment_models()
    models = list(dict.fromkeys(m for _, ours, theirs in comparisons for m in (ours, theirs)))
    records, skipped = [], []
    for size in sizes:
        for mode in ("infer", "train"):
            for model in models:
                heavy = model in HEAVY
                if heavy and size == "knee" and mode == "train" and not full:
                    skipped.append({"model": model, "size": size, "mode": mode})
                    print(f"  {size:9s} {mode:5s} {model:12s} skipped (full=False)", flush=True)
                    continue
                reps = (REPS_HEAVY if heavy else REPS)[(size, mode)]
                r = measure(model, size, mode, threads=threads, reps=reps)
                records.append(r)
                print(
                    f"  {size:9s} {mode:5s} {model:12s} {1e3 * r['median_s']:9.0f} ms  "
                    f"peak +{r['peak_mb']:7.0f} MiB  (load {r['load_before']})",
                    flush=True,
                )
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "threads": threads,
        "comparisons": [list(c) for c in comparisons],
        "models": {m: networks.MODELS[m] for m in models},
        "sizes": {s: SIZES[s] for s in sizes},
        "records": records,
        "skipped": skipped,
        "ratios": ratios(records, comparisons, sizes),
    }
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
    return result


def ratios(records: list[dict], comparisons, sizes) -> list[dict]:
    """Per comparison and size: ours/theirs time and peak-memory ratios of what was measured."""
    by = {(r["model"], r["size"], r["mode"]): r for r in records}
    rows = []
    for label, ours, theirs in comparisons:
        for size in sizes:
            row = {"comparison": label, "ours": ours, "theirs": theirs, "size": size}
            for mode in ("infer", "train"):
                a, b = by.get((ours, size, mode)), by.get((theirs, size, mode))
                if a is None or b is None:
                    continue
                row[f"{mode}_time_ratio"] = a["median_s"] / b["median_s"]
                row[f"{mode}_ms_ours"] = 1e3 * a["median_s"]
                row[f"{mode}_ms_theirs"] = 1e3 * b["median_s"]
                row[f"{mode}_peak_mb_ours"] = a["peak_mb"]
                row[f"{mode}_peak_mb_theirs"] = b["peak_mb"]
                row[f"{mode}_peak_ratio"] = a["peak_mb"] / max(b["peak_mb"], 1e-9)
            rows.append(row)
    return rows


def merge(path: Path, new: list[dict]) -> dict:
    """Add (or replace) records in a results file written by :func:`run`; recompute ratios."""
    result = json.loads(path.read_text())
    keys = {(r["model"], r["size"], r["mode"]) for r in new}
    kept = [r for r in result["records"] if (r["model"], r["size"], r["mode"]) not in keys]
    result["records"] = kept + new
    result["skipped"] = [
        r for r in result.get("skipped", []) if (r["model"], r["size"], r["mode"]) not in keys
    ]
    result["ratios"] = ratios(result["records"], result["comparisons"], list(result["sizes"]))
    path.write_text(json.dumps(result, indent=2))
    return result


def machine() -> dict:
    """What ran the benchmark."""
    import platform

    import torch

    cpu = platform.processor()
    try:
        cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text()).group(1)
    except (OSError, AttributeError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def print_ratios(result: dict) -> None:
    print("\nours / theirs (median time; peak memory above the model's own footprint)")
    for r in result["ratios"]:
        parts = [
            f"{key.replace('_', ' ')} x{r[key]:.2f}"
            for key in ("infer_time_ratio", "train_time_ratio", "train_peak_ratio")
            if key in r
        ]
        print(f"  {r['comparison']:17s} {r['ours']:14s} {r['size']:9s} " + "  ".join(parts))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", nargs="+", default=["embedded", "knee"], choices=list(SIZES))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument(
        "--full", action="store_true", help="also ours_12x64x8's knee-size training step"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "speed_memory.json")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="MODEL:SIZE:MODE",
        help="measure just these (e.g. ours_12x64x8:knee:train) and merge them into --out",
    )
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    if args.only:
        new = []
        for item in args.only:
            model, size, mode = item.split(":")
            reps = (REPS_HEAVY if model in HEAVY else REPS)[(size, mode)]
            new.append(measure(model, size, mode, threads=args.threads, reps=reps))
            print(json.dumps(new[-1]), flush=True)
        print_ratios(merge(args.out, new))
        return
    print_ratios(run(sizes=args.sizes, threads=args.threads, full=args.full, out=args.out))


if __name__ == "__main__":
    main()
