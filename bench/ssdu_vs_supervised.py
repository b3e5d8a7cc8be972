"""SSDU (self-supervised) against supervised training at the same budget, on the embedded set.

Both runs are the ``unrolled-train`` job (:func:`unrolled.cli.train.run`) of
``experiment=embedded`` -- the same network (5 cascades, ResNet 24 x 3, hard
DC, learned maps), 4x random masks with an 8% centre, Adam with warm-up +
cosine, seed 42 (same initial weights, same data order) and the same number of
epochs, hence optimisation steps -- and differ only in ``training=``:

- ``supervised``: SSIM + L1 against the fully sampled references;
- ``ssdu``: the acquired samples split 60/40 into Theta / Lambda (Gaussian
  selection, re-drawn every step), k-space L1-L2 on Lambda; no reference read.

Model selection uses what each setting may use: supervised keeps the checkpoint
of best ``val/ssim``; SSDU the one of lowest ``val/loss`` (its k-space loss on a
fixed split of the validation data, reference-free), so the SSDU figure needs
no fully sampled data anywhere. The final (last-epoch) weights are scored as
well. Test metrics are fastMRI's volume-level PSNR / SSIM / NMSE on the test
split, with zero-filled alongside. Runs are sequential, one torch thread each;
the machine is shared, so the load average is recorded around each run.

    .venv/bin/python bench/ssdu_vs_supervised.py                  # ~20 min here (4 epochs each)
    .venv/bin/python bench/ssdu_vs_supervised.py --epochs 1 --limit-train-batches 4 \\
        --out outputs/bench/ssdu_smoke.json                       # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"

# The two settings; everything else is experiment=embedded.
SETTINGS = {
    "supervised": ["training=supervised"],
    "ssdu": [
        "training=ssdu",
        "callbacks.model_checkpoint.monitor=val/loss",
        "callbacks.model_checkpoint.mode=min",
    ],
}

BASE = [
    "experiment=embedded",
    "synth=null",
    "logger=csv",
    "trainer.enable_progress_bar=false",
    "trainer.max_time=null",  # the budget is the number of epochs, not the clock
    "~callbacks.progress_bar",
    "~baselines.cg_sense",  # zero-filled is the reference here
    "cg_sense_lambda_grid=null",
    "resume=null",
]


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def train_and_test(name: str, overrides: list[str], out_dir: Path) -> dict:
    """One ``unrolled-train`` job; test metrics of the selected and of the last weights."""
    import lightning as L
    from hydra.utils import instantiate

    from unrolled.cli.compose import compose_config
    from unrolled.cli.train import run
    from unrolled.inference.checkpoint import load_network
    from unrolled.inference.runner import evaluate_method, summarise

    shutil.rmtree(out_dir, ignore_errors=True)  # a fresh run, never a resumed one
    cfg = compose_config("train", [*BASE, *SETTINGS[name], *overrides], output_dir=out_dir)
    load_before = loadavg()
    start = time.monotonic()
    cpu_start = time.process_time()
    results, best_val = run(cfg)
    wall = time.monotonic() - start
    cpu = time.process_time() - cpu_start
    ckpts = out_dir / "checkpoints"
    best = next(iter(sorted(ckpts.glob("best-*.ckpt"))), None)
    net, _ = load_network(ckpts / "last.ckpt")
    L.seed_everything(cfg.seed)
    datamodule = instantiate(cfg.data)
    last = summarise(evaluate_method(net, datamodule.test_dataloader()))
    return {
        "overrides": [*SETTINGS[name], *overrides],
        "test_selected": results["unrolled"],
        "test_last": last,
        "zero_filled": results["zero_filled"],
        "selected_checkpoint": best.name if best else None,
        "selected_by": str(cfg.callbacks.model_checkpoint.monitor),
        "best_monitor_value": best_val,
        "epochs": int(cfg.trainer.max_epochs),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "load_before": load_before,
        "load_after": loadavg(),
        "run_dir": str(out_dir),
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=4, help="training epochs of each run")
    p.add_argument("--limit-train-batches", type=int, default=None, help="smoke runs only")
    p.add_argument("--data-root", default=str(REPO / "data" / "embedded"))
    p.add_argument("--work", default=str(REPO / "outputs" / "bench" / "ssdu_vs_supervised"))
    p.add_argument("--out", default=str(RESULTS / "ssdu_vs_supervised.json"))
    p.add_argument("--only", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    overrides = [f"data.root={args.data_root}", f"trainer.max_epochs={args.epochs}"]
    if args.limit_train_batches:
        overrides.append(f"trainer.limit_train_batches={args.limit_train_batches}")
    report: dict = {
        "what": "test split of the embedded set (3 volumes x 8 slices), 4x random masks",
        "machine": f"{platform.node()} {os.cpu_count()} cores, shared; 1 torch thread",
        "torch": torch.__version__,
        "runs": {},
    }
    for name in args.only:  # sequentially, never in parallel
        print(f"== {name}", flush=True)
        report["runs"][name] = train_and_test(name, overrides, Path(args.work) / name)
        print(json.dumps(report["runs"][name], indent=1), flush=True)
    runs = report["runs"]
    if {"supervised", "ssdu"} <= set(runs):
        report["zero_filled"] = runs["supervised"]["zero_filled"]
        report["gap_ssdu_minus_supervised"] = {
            which: {
                k: runs["ssdu"][which][k] - runs["supervised"][which][k]
                for k in ("psnr", "ssim", "nmse")
            }
            for which in ("test_selected", "test_last")
        }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
