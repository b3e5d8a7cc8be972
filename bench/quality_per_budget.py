"""Quality per training budget: test SSIM / PSNR / NMSE after the same training time.

Each network is trained by our own loop (``build(cfg)`` of ``unrolled-train``:
``ReconModule``, the embedded data set, SSIM+L1 loss, Adam, gradient clipping)
for the same time budget, then its final weights are scored on the test split
with :func:`unrolled.inference.runner.evaluate_method`.

The budget is measured on one of two clocks:

- ``cpu`` (default): seconds of CPU time of the training process, one torch
  thread each, i.e. "the same wall time on one dedicated core". On a shared
  machine this is the only clock that gives every network the same compute
  whatever other jobs do; ``trainer.max_time`` is then a safety cap.
- ``wall``: ``trainer.max_time`` alone, as ``unrolled-train`` would use it.

Fairness choices, identical for every network:

- All networks train *at the same time*, one process each, so they meet the
  same machine load.
- The learning rate follows a warm-up + cosine schedule on the budget clock
  (minimum when the budget runs out): a step-based schedule would end early
  for fast networks and never leave warm-up for slow ones.
- Batch size 1 (E2E-VarNet's published setting), Adam with one learning rate.
- No validation and no checkpointing during training (they would spend the
  budget unequally); the final weights are tested.

Inference ms/slice is the network's forward time during the test pass (batch
1, no grad, one thread), without data loading or metrics; CPU time as well as
wall time is recorded.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import networks
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"

# Networks (names of bench/networks.py) trained by default: the reference and ours.
CANDIDATES = ["varnet", "ours_5x24x3", "ours_8x32x3"]

# Training settings shared by every network, on top of experiment=embedded.
BASE = [
    "synth=null",
    "logger=csv",
    "~callbacks",
    "data.batch_size=1",
    "optimizer.lr=1e-3",
    "trainer.enable_progress_bar=false",
    "++trainer.enable_checkpointing=false",
    "trainer.limit_val_batches=0",
    "trainer.num_sanity_val_steps=0",
    "trainer.max_epochs=10000",
    "trainer.log_every_n_steps=10",
]

CLOCKS = {"cpu": time.process_time, "wall": time.monotonic}


def budget_cosine(
    optimizer,
    total_steps: int,
    budget_s: float,
    clock=time.monotonic,
    warmup_fraction: float = 0.05,
    min_lr_ratio: float = 0.01,
):
    """Warm-up + cosine learning-rate factor as a function of elapsed budget.

    Args:
        optimizer: the optimizer.
        total_steps: ignored (the trainer's estimate; the budget is in seconds).
        budget_s: training budget; the factor reaches ``min_lr_ratio`` there.
        clock: ``time.process_time`` or ``time.monotonic``.
        warmup_fraction: share of the budget spent in linear warm-up.
        min_lr_ratio: final factor.
    """
    from torch.optim.lr_scheduler import LambdaLR

    start = clock()

    def factor(step: int) -> float:
        progress = min((clock() - start) / budget_s, 1.0)
        if progress < warmup_fraction:
            return max(progress / warmup_fraction, 0.01)
        progress = (progress - warmup_fraction) / (1 - warmup_fraction)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


class StopAtBudget(L.Callback):
    """Stops training once ``budget_s`` seconds of ``clock`` have passed since fit start."""

    def __init__(self, budget_s: float, clock=time.process_time) -> None:
        self.budget_s = budget_s
        self.clock = clock
        self.reached = False

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = self.clock()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.clock() - self.start >= self.budget_s:
            self.reached = True
            trainer.should_stop = True


def compose(name: str, extra: list[str], out: Path, data_root: Path):
    """The training config of network ``name``, as ``unrolled-train`` would build it."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    cfg = networks.compose(name, [*BASE, *extra], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.root_dir = str(REPO)
        cfg.paths.output_dir = str(out)
        cfg.data.root = str(data_root)
        del cfg.hydra
    return cfg


def worker(spec: dict) -> dict:
    """Train one candidate for the budget, test it; returns a JSON-able record."""
    import lightning as L
    from omegaconf import OmegaConf

    from unrolled.cli.train import build
    from unrolled.inference.runner import evaluate_method, summarise

    torch.set_num_threads(spec["threads"])
    budget, clock = float(spec["budget_s"]), CLOCKS[spec["clock"]]
    cap = budget * (1 if spec["clock"] == "wall" else spec["max_wall_factor"])
    hms = time.strftime("%H:%M:%S", time.gmtime(math.ceil(cap)))
    cfg = compose(
        spec["name"], [f"trainer.max_time=00:{hms}"], Path(spec["out"]), Path(spec["data_root"])
    )
    L.seed_everything(cfg.seed, workers=True)
    dm, module, trainer = build(cfg)
    module.scheduler_factory = functools.partial(budget_cosine, budget_s=budget, clock=clock)
    stop = StopAtBudget(budget, clock)
    trainer.callbacks.append(stop)
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.fit(module, datamodule=dm)
    train_s, train_cpu_s = time.perf_counter() - t0, time.process_time() - c0

    net = Timed(module.net)
    t0 = time.perf_counter()
    volumes = evaluate_method(net, dm.test_dataloader(), "cpu")
    eval_s = time.perf_counter() - t0
    return {
        "name": spec["name"],
        "overrides": networks.MODELS[spec["name"]],
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "params": sum(p.numel() for p in module.net.parameters()),
        "budget_s": budget,
        "clock": spec["clock"],
        "budget_reached": stop.reached,
        "train_s": train_s,
        "train_cpu_s": train_cpu_s,
        "steps": int(trainer.global_step),
        "epochs": int(trainer.current_epoch),
        "final_train_loss": float(trainer.callback_metrics.get("train/loss", float("nan"))),
        "test": summarise(volumes),
        "test_volumes": len(volumes),
        "test_slices": net.slices,
        "infer_ms_per_slice": 1e3 * net.seconds / max(net.slices, 1),
        "infer_cpu_ms_per_slice": 1e3 * net.cpu_seconds / max(net.slices, 1),
        "eval_s": eval_s,
        "threads": spec["threads"],
    }


class Timed(nn.Module):
    """Forwards to ``net``; accumulates its forward time and the slices it saw."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.slices = 0

    def forward(self, kspace, *args, **kwargs):
        t0, c0 = time.perf_counter(), time.process_time()
        out = self.net(kspace, *args, **kwargs)
        if out.image.is_cuda:
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - t0
        self.cpu_seconds += time.process_time() - c0
        self.slices += kspace.shape[0]
        return out


def loadavg() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def run(
    candidates: list[str] | None = None,
    budget_s: float = 240,
    clock: str = "cpu",
    threads: int = 1,
    max_wall_factor: float = 6.0,
    data_root: Path = REPO / "data" / "embedded",
    out: Path | None = RESULTS / "quality_per_budget.json",
) -> dict:
    """Train every candidate concurrently for ``budget_s`` seconds of ``clock``; test; write JSON.

    With ``clock="cpu"`` a run is also stopped after ``max_wall_factor * budget_s`` wall
    seconds (``budget_reached`` is then false in its record).
    """
    candidates = candidates or CANDIDATES
    _ensure_embedded(data_root)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env.setdefault("WANDB_MODE", "offline")
    procs = {}
    before = loadavg()
    t0 = time.perf_counter()
    for name in candidates:
        spec = {
            "name": name,
            "budget_s": budget_s,
            "clock": clock,
            "max_wall_factor": max_wall_factor,
            "threads": threads,
            "data_root": str(data_root),
            "out": str(REPO / "outputs" / "bench" / stamp / name),
        }
        procs[name] = subprocess.Popen(
            [sys.executable, __file__, "--worker", json.dumps(spec)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
    records = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=budget_s * max_wall_factor + 1800)
        if proc.returncode != 0:
            raise RuntimeError(f"{name} failed:\n{stderr[-3000:]}")
        records[name] = json.loads(stdout.strip().splitlines()[-1])
        r = records[name]
        print(
            f"  {name:14s} SSIM {r['test']['ssim']:.4f}  PSNR {r['test']['psnr']:.2f}  "
            f"NMSE {r['test']['nmse']:.4f}  steps {r['steps']:5d}  "
            f"{r['infer_cpu_ms_per_slice']:.0f} CPU-ms/slice  ({r['train_cpu_s']:.0f} CPU-s)",
            flush=True,
        )
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "budget_s": budget_s,
        "clock": clock,
        "threads_per_run": threads,
        "concurrent_runs": len(candidates),
        "base_overrides": BASE,
        "load_before": before,
        "load_after": loadavg(),
        "wall_s": time.perf_counter() - t0,
        "runs": records,
    }
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
    return result


def _ensure_embedded(root: Path) -> None:
    """Generate the embedded data set (the settings of experiment=embedded) if missing."""
    from omegaconf import OmegaConf

    from unrolled.data.synth import ensure_dataset

    cfg = networks.compose("varnet")
    ensure_dataset(str(root), **OmegaConf.to_container(cfg.synth, resolve=True))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--budget", type=float, default=240, help="seconds of training each")
    parser.add_argument("--clock", choices=list(CLOCKS), default="cpu", help="budget clock")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument(
        "--candidates", nargs="+", default=CANDIDATES, choices=list(networks.MODELS)
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "quality_per_budget.json")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    run(args.candidates, args.budget, args.clock, args.threads, out=args.out)


if __name__ == "__main__":
    main()
