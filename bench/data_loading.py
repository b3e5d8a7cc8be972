"""Data loading: our SliceDataset + UnrolledTransform against fastMRI's, on fastMRI-sized files.

Writes multicoil files of fastMRI's shapes into a temporary folder with our synthetic
writer (``unrolled.data.synth.write_volume``: h5py, fastMRI's layout; complex Gaussian
k-space, since only size matters here): brain-sized 16 coils x 640 x 320 and knee-sized
15 coils x 640 x 368, ``--volumes`` volumes of ``--slices`` slices each per shape. Then,
per shape, slices per second (wall time, after the first batch, which includes starting
the workers) of

- ``ours``: ``unrolled.data.dataset.SliceDataset`` + ``UnrolledTransform`` (4x random mask);
- ``fastmri``: ``fastmri.data.SliceDataset`` + ``VarNetDataTransform`` (same mask);
- ``datamodule``: a training batch (batch size 1) from ``ReconDataModule.train_dataloader``
  (shape-bucketed sampler, collate, per-epoch seeded masks): what training really runs;

each through a ``torch.utils.data.DataLoader`` (batch 1, shuffled) with 0, 2 and 4 worker
processes. Imports and each loader's metadata scan (cached) happen before timing. The
files are read once before timing, so they sit in the page cache (as a
warm data set on a node with enough RAM: the benchmark measures decoding, masking and
batching, not the disk). This machine has 2 cores: 4 workers oversubscribe it.

    .venv/bin/python bench/data_loading.py            # bench/results/data_loading.json
    .venv/bin/python bench/data_loading.py --quick    # small files, fewer slices
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import speed_memory

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SHAPES = {"brain": (16, 640, 320), "knee": (15, 640, 368)}
QUICK_SHAPES = {"brain": (4, 64, 48), "knee": (3, 64, 56)}


def write_files(root: Path, shapes: dict, volumes: int, slices: int) -> dict:
    """``root/<name>/train/*.h5`` per shape; returns the bytes written per shape."""
    from unrolled.data.synth import write_volume
    from unrolled.data.synth_volume import VolumeMeta

    rng = np.random.default_rng(0)
    sizes = {}
    for name, (coils, h, w) in shapes.items():
        folder = root / name / "train"
        folder.mkdir(parents=True)
        for v in range(volumes):
            k = rng.standard_normal((slices, coils, h, w), dtype=np.float32)
            k = (k + 1j * rng.standard_normal(k.shape, dtype=np.float32)).astype(np.complex64)
            meta = VolumeMeta("CORPD_FBK", 0.0, 0.5, 3.0, tuple(range(slices)), "procedural")
            write_volume(folder / f"{name}_{v:02d}.h5", k, (min(320, h), min(320, w)), meta, "")
        sizes[name] = sum(f.stat().st_size for f in folder.iterdir())
    return sizes


def dataset(kind: str, folder: Path, cache: Path):
    if kind == "ours":
        from unrolled.data.dataset import SliceDataset
        from unrolled.data.transforms import UnrolledTransform
        from unrolled.physics.masks import RandomMaskFunc

        transform = UnrolledTransform(RandomMaskFunc([0.08], [4]), use_seed=False)
        return SliceDataset(folder, "multicoil", transform, dataset_cache_file=cache)
    from fastmri.data import SliceDataset
    from fastmri.data.subsample import RandomMaskFunc
    from fastmri.data.transforms import VarNetDataTransform

    transform = VarNetDataTransform(RandomMaskFunc([0.08], [4]), use_seed=False)
    return SliceDataset(folder, "multicoil", transform, dataset_cache_file=cache)


def loader(kind: str, folder: Path, cache: Path, workers: int):
    from torch.utils.data import DataLoader

    if kind == "datamodule":
        from unrolled.physics.masks import RandomMaskFunc
        from unrolled.training.datamodule import ReconDataModule

        dm = ReconDataModule(
            str(folder.parent),
            RandomMaskFunc([0.08], [4]),
            batch_size=1,
            num_workers=workers,
            cache_file=str(cache),
        )
        return dm.train_dataloader()
    ds = dataset(kind, folder, cache)
    if kind == "ours":
        from unrolled.data.sample import collate_samples

        return DataLoader(
            ds, batch_size=1, shuffle=True, num_workers=workers, collate_fn=collate_samples
        )
    return DataLoader(ds, batch_size=1, shuffle=True, num_workers=workers)


def rate(kind: str, folder: Path, cache: Path, workers: int, epochs: int) -> dict:
    """Slices per second over ``epochs`` passes, the first batch (worker start) excluded;
    CPU time per slice of this process and its workers (``getrusage``, workers included once
    they have exited), everything included."""
    cpu0 = _cpu()
    t0 = time.perf_counter()
    dl = loader(kind, folder, cache, workers)
    n, first, start = 0, None, None
    for _ in range(epochs):
        for _batch in dl:
            n += 1
            if first is None:
                first = time.perf_counter() - t0
                start = time.perf_counter()
    elapsed = time.perf_counter() - start
    del dl, _batch  # ends persistent workers
    gc.collect()
    cpu = _cpu() - cpu0
    return {
        "slices_per_s": (n - 1) / elapsed,
        "cpu_ms_per_slice": 1e3 * cpu / n,
        "slices": n,
        "seconds": elapsed,
        "first_batch_s": first,
    }


def _cpu() -> float:
    """User + system CPU seconds of this process and its reaped children."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(args) -> dict:
    import torch

    torch.set_num_threads(1)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    root = Path(tempfile.mkdtemp(prefix="data_loading_", dir=args.tmp))
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": speed_memory.machine(),
        "load_average_start": speed_memory.loadavg(),
        "shapes": {k: list(v) for k, v in shapes.items()},
        "volumes": args.volumes,
        "slices_per_volume": args.slices,
        "epochs": args.epochs,
        "timing": "slices_per_s: wall time after the first batch; cpu_ms_per_slice: CPU time "
        "of the process and its workers per slice, worker start included; files in the page "
        "cache",
        "results": {},
    }
    try:
        sizes = write_files(root, shapes, args.volumes, args.slices)
        result["bytes"] = sizes
        for f in root.rglob("*.h5"):  # into the page cache
            f.read_bytes()
        for name in shapes:
            folder = root / name / "train"
            for kind in ("ours", "fastmri", "datamodule"):  # imports and metadata caches
                loader(kind, folder, root / f"cache_{kind}.pkl", 0)
            for workers in args.workers:
                for kind in ("ours", "fastmri", "datamodule"):
                    cache = root / f"cache_{kind}.pkl"
                    r = rate(kind, folder, cache, workers, args.epochs)
                    r["load_average"] = speed_memory.loadavg()
                    result["results"].setdefault(name, {}).setdefault(kind, {})[workers] = r
                    print(
                        f"  {name:5s} {kind:10s} workers={workers} "
                        f"{r['slices_per_s']:6.1f} slices/s {r['cpu_ms_per_slice']:6.0f} CPU-ms "
                        f"(load {r['load_average'][0]})",
                        flush=True,
                    )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result["load_average_end"] = speed_memory.loadavg()
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small files (a pipeline check)")
    parser.add_argument("--volumes", type=int, default=2, help="volumes per shape")
    parser.add_argument("--slices", type=int, default=6, help="slices per volume")
    parser.add_argument("--epochs", type=int, default=2, help="passes over the slices")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
    parser.add_argument("--tmp", help="folder for the temporary files (default: system temp)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still removes the temp files
    out = args.out or (
        REPO / "outputs" / "bench" / "data_loading_quick.json"
        if args.quick
        else RESULTS / "data_loading.json"
    )
    result = run(args)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
