"""Tune the classical baselines' regularisation weights on the embedded validation split.

For each of CG-SENSE, L1-wavelet CS and TV CS (constructor arguments read
from ``conf/method/<name>.yaml``, only ``lam`` varied) this runs
:func:`unrolled.evaluation.tuning.tune_log_scale` -- a log-spaced coarse grid,
bracketing, then golden-section refinement, maximising fastMRI's volume SSIM
-- on the validation split with 4x random masks (centre fraction 0.08, masks
seeded by file name as in every evaluation). It prints every score and
writes ``bench/results/baseline_tuning.json``; copy the chosen weights into
the YAML files.

    .venv/bin/python bench/tune_baselines.py [--methods cs_wavelet cs_tv] [--threads 1]

All methods share one ESPIRiT estimator, so maps are computed once per slice.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path

import torch
import yaml

from unrolled.evaluation.tuning import tune_log_scale
from unrolled.inference.runner import evaluate_method, summarise
from unrolled.methods.classical import ZeroFilled
from unrolled.models.sensitivity import EspiritSensitivity
from unrolled.physics.masks import RandomMaskFunc
from unrolled.training.datamodule import ReconDataModule

REPO = Path(__file__).resolve().parents[1]
METHODS = ("cg_sense", "cs_wavelet", "cs_tv")


def method_factory(name: str, espirit: EspiritSensitivity):
    """``lam -> method`` built from ``conf/method/<name>.yaml`` with ``lam`` overridden."""
    cfg = yaml.safe_load((REPO / "conf" / "method" / f"{name}.yaml").read_text())
    module, cls = cfg.pop("_target_").rsplit(".", 1)
    cls = getattr(importlib.import_module(module), cls)
    cfg.pop("lam", None)

    def make(lam: float):
        return cls(lam=lam, espirit=espirit, **cfg)

    return make, cfg


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(REPO / "data" / "embedded"))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--refine-steps", type=int, default=6)
    parser.add_argument("--metric", default="ssim", choices=("ssim", "psnr", "nmse"))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "baseline_tuning.json"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    dm = ReconDataModule(
        args.root, RandomMaskFunc([0.08], [4]), batch_size=2, cache_file="/tmp/tune_cache.pkl"
    )
    batches = list(dm.val_dataloader())  # masks are seeded by file name: fixed across passes
    num_slices = sum(len(b.fname) for b in batches)
    volumes = sorted({f for b in batches for f in b.fname})
    print(f"validation split: {len(volumes)} volumes, {num_slices} slices, 4x random masks")

    espirit = EspiritSensitivity()
    t0 = time.perf_counter()
    for b in batches:  # fill the ESPIRiT cache once, outside the timings
        keys = [(f, int(s)) for f, s in zip(b.fname, b.slice_num, strict=True)]
        espirit(b.kspace, b.mask, b.num_low_frequencies, keys=keys)
    print(f"ESPIRiT maps: {time.perf_counter() - t0:.1f} s")

    root = Path(args.root).resolve()
    report = {
        "split": "val",
        "root": str(root.relative_to(REPO)) if root.is_relative_to(REPO) else str(root),
        "mask": "RandomMaskFunc([0.08], [4]), seeded by file name",
        "volumes": volumes,
        "slices": num_slices,
        "metric": args.metric,
        "zero_filled": summarise(evaluate_method(ZeroFilled(), batches)),
        "methods": {},
    }
    print(f"zero_filled: {report['zero_filled']}")
    for name in args.methods:
        make, fixed = method_factory(name, espirit)
        print(f"{name} ({fixed}):")
        t0 = time.perf_counter()
        result = tune_log_scale(
            make,
            lambda: batches,
            refine_steps=args.refine_steps,
            metric=args.metric,
            log=print,
        )
        seconds = time.perf_counter() - t0
        per_slice = seconds / (len(result.scores) * num_slices)
        edge = " (at the grid's edge!)" if result.at_edge else ""
        print(f"{name}: lam = {result.best:.4g}, {args.metric} {result.score:.4f}{edge}")
        print(f"  {len(result.scores)} evaluations, {seconds:.0f} s, {per_slice:.2f} s per slice")
        report["methods"][name] = {
            **result.to_dict(),
            "fixed_args": fixed,
            "seconds": round(seconds, 1),
            "seconds_per_slice": round(per_slice, 3),
        }

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():  # keep results of methods not re-run this time
        previous = json.loads(out.read_text()).get("methods", {})
        report["methods"] = {**previous, **report["methods"]}
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
