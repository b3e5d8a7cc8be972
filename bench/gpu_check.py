"""GPU check: our knee network and fastMRI's E2E-VarNet on one card; prints ONE JSON.

For a knee-sized (15 coils, 640 x 368) and a brain-sized (16 coils, 640 x 320) slice, and
for ``ours`` (``ours_8x32x3`` of ``bench/networks.py``, the model of
``experiment=knee_multicoil_4x8x``) and ``varnet`` (fastMRI's E2E-VarNet at its published
size: 12 cascades, U-Net 18 channels x 4 pools, sensitivity U-Net 8 x 4):

- ``infer_ms``: inference per slice (``no_grad``, batch 1) in fp32, under bf16 autocast, and
  after ``torch.compile`` (compiled in a child process with a time limit; a failure or a
  timeout is reported, not raised);
- ``train``: one training step (forward, SSIM+L1 on the central 320 x 320 crop, backward,
  Adam), batch 1, fp32 and bf16 autocast, with and without gradient checkpointing: median
  ms and peak memory (``torch.cuda.max_memory_allocated`` above what the network, inputs
  and optimizer already held, after ``reset_peak_memory_stats``);
- ``zeroshot``: seconds per 256 x 256 slice (16 coils) of ``method=zeroshot`` with the
  defaults of ``conf/method/zeroshot.yaml``: a few steps are timed and the rest
  extrapolated to the default ``max_steps`` (said so in the JSON, with the steps timed);
- the card's name and memory, torch, CUDA and cuDNN versions.

Times are wall times with ``torch.cuda.synchronize`` around each call, median of the timed
repetitions after warm-up. Everything runs offline on the synthetic slice of
``speed_memory.synthetic_inputs``. ``--dry-run`` runs the same code path on the CPU with
tiny slices, 2-cascade networks and one repetition (``torch.compile`` with the ``eager``
backend) in seconds;
its figures mean nothing, it keeps this script from rotting (tests/bench/test_gpu_check.py).

    bash bench/gpu_check.sh                 # on a GPU machine: < 8 min on one H100/H200
    bash bench/gpu_check.sh --dry-run       # anywhere
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import networks  # noqa: E402
import speed_memory  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NETWORKS = {"ours": "ours_8x32x3", "varnet": "varnet"}
SIZES = {"knee": (15, 640, 368), "brain": (16, 640, 320)}
DRY_SIZES = {"knee": (3, 32, 40), "brain": (4, 32, 32)}
ZEROSHOT_SIZE, DRY_ZEROSHOT_SIZE = (16, 256, 256), (4, 32, 32)
CROP = (320, 320)


DRY_OVERRIDES = ["model.num_cascades=2"]  # the dry run's networks: same code, 2 cascades


def build(name: str, dry: bool):
    """Network ``name`` of ``bench/networks.py`` (``dry``: with 2 cascades only)."""
    from hydra.utils import instantiate

    return instantiate(networks.compose(name, DRY_OVERRIDES if dry else []).model)


def log(msg: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def inputs(shape, device):
    coils, h, w = shape
    crop = (min(CROP[0], h), min(CROP[1], w))
    tensors = speed_memory.synthetic_inputs(coils, h, w, crop)
    return [t.to(device) for t in tensors], crop


def timed(fn, device, warmup: int, reps: int) -> list[float]:
    """Wall seconds of ``reps`` calls of ``fn`` after ``warmup`` calls, synchronised."""

    def sync():
        if device.type == "cuda":
            import torch

            torch.cuda.synchronize()

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def autocast(device, bf16: bool):
    import torch

    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def attempt(fn) -> dict:
    """``fn()`` as a dict, or ``{"error": ...}`` if it raised (e.g. bf16 unsupported)."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - reported in the JSON, the check goes on
        log(f"  failed: {type(exc).__name__}: {str(exc)[:300]}")
        return {"error": f"{type(exc).__name__}: {str(exc)[:500]}"}


def infer_ms(net, shape, device, bf16: bool, warmup: int, reps: int) -> dict:
    import torch

    (kspace, mask, nlf, _, _), _ = inputs(shape, device)
    net.eval()

    def call():
        with torch.no_grad(), autocast(device, bf16):
            net(kspace, mask, nlf)

    times = timed(call, device, warmup, reps)
    return {"ms": 1e3 * statistics.median(times), "reps": reps}


def train_step(net, shape, device, bf16: bool, checkpointing: bool, warmup: int, reps: int):
    import torch

    from unrolled.losses import SSIML1Loss
    from unrolled.physics.coils import center_crop

    (kspace, mask, nlf, target, max_value), crop = inputs(shape, device)
    net.train()
    net.checkpointing = checkpointing  # both networks read it at every forward
    loss_fn = SSIML1Loss()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast(device, bf16):
            image = net(kspace, mask, nlf).image
        loss = loss_fn(center_crop(image.float(), crop), target, max_value)
        loss.backward()
        opt.step()

    memory = speed_memory._Memory(device)
    memory.start()
    times = timed(step, device, warmup, reps)  # warm-up counts: it allocates Adam's state
    peak = memory.peak_increase() / 2**20
    opt.state.clear()
    net.zero_grad(set_to_none=True)
    return {"ms": 1e3 * statistics.median(times), "peak_mib": peak, "reps": reps}


def zeroshot(device, dry: bool, steps: int) -> dict:
    """``method=zeroshot`` with its config's defaults, ``steps`` steps timed, extrapolated."""
    import torch
    from hydra.utils import instantiate

    from unrolled.cli.compose import compose_option

    cfg = compose_option("method", "zeroshot")
    default_steps = int(cfg.max_steps)
    every = int(cfg.val_every)
    steps = max(every + 1, steps)  # at least one validation inside the timed part
    cfg.max_steps, cfg.patience = steps, 10**6  # the timed part runs all its steps
    method = instantiate(cfg).to(device)
    shape = DRY_ZEROSHOT_SIZE if dry else ZEROSHOT_SIZE
    (kspace, mask, nlf, _, _), _ = inputs(shape, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    method(kspace, mask, nlf)
    if device.type == "cuda":
        torch.cuda.synchronize()
    total = time.perf_counter() - t0
    hist = method.histories[-1]
    per_step = (hist.records[-1].seconds - hist.records[0].seconds) / (len(hist.records) - 1)
    extrapolated = total + per_step * (default_steps - len(hist.records))
    budget = cfg.time_budget_s
    overhead = total - per_step * len(hist.records)  # ESPIRiT, candidates, final image
    warm = int(cfg.get("warm_steps", 0)) if cfg.get("warm_start", False) else None
    return {
        "slice": "the first slice of a volume (fitted from scratch)",
        "warm_start": warm is not None,
        "warm_steps": warm,
        "seconds_per_following_slice": None if warm is None else overhead + per_step * warm,
        "coils": shape[0],
        "matrix": list(shape[1:]),
        "config": "conf/method/zeroshot.yaml defaults (max_steps and patience overridden "
        "for the timed part only)",
        "steps_timed": len(hist.records),
        "seconds_timed": total,
        "seconds_per_step": per_step,
        "default_max_steps": default_steps,
        "seconds_per_slice": min(extrapolated, budget) if budget else extrapolated,
        "extrapolated": True,
        "note": f"timed {len(hist.records)} steps (setup, ESPIRiT, validations every {every} "
        f"steps and the final image included), extrapolated linearly to max_steps="
        f"{default_steps} (an upper bound: early stopping may end sooner), capped at "
        f"time_budget_s={budget}",
    }


def compile_child(spec: dict) -> dict:
    """In a child process: compile one network, time inference at every size."""
    import torch

    device = torch.device(spec["device"])
    net = build(spec["network"], spec["dry"]).to(device).eval()
    compiled = torch.compile(net, backend=spec["backend"])
    out = {}
    for size, shape in spec["sizes"].items():
        (kspace, mask, nlf, _, _), _ = inputs(shape, device)

        def call(compiled=compiled, kspace=kspace, mask=mask, nlf=nlf):
            with torch.no_grad():
                compiled(kspace, mask, nlf)

        t0 = time.perf_counter()
        call()  # compiles
        first = time.perf_counter() - t0
        times = timed(call, device, spec["warmup"], spec["reps"])
        out[size] = {"ms": 1e3 * statistics.median(times), "first_call_s": first}
    return out


def compiled_ms(name: str, sizes: dict, device, args, deadline: float) -> dict:
    limit = min(args.compile_timeout, deadline - time.perf_counter())
    backend = "eager" if args.dry_run else "inductor"
    if limit < 30:
        return {size: {"skipped": "no time left in the check's budget"} for size in sizes}
    spec = {
        "network": NETWORKS[name],
        "device": device.type,
        "backend": backend,
        "dry": args.dry_run,
        "sizes": sizes,
        "warmup": 1 if args.dry_run else 3,
        "reps": 1 if args.dry_run else 10,
    }
    cmd = [sys.executable, __file__, "--compile-child", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {size: {"error": f"torch.compile: timed out after {limit:.0f} s"} for size in sizes}
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        return {size: {"error": f"torch.compile failed: {tail[0][:500]}"} for size in sizes}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {size: {**r, "backend": backend} for size, r in result.items()}


def environment(device) -> dict:
    import torch

    env = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device": device.type,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(card=props.name, card_memory_gib=props.total_memory / 2**30)
    else:
        env.update(card="none (CPU dry run)", card_memory_gib=None)
    return env


def measure_network(result: dict, name: str, net, sizes: dict, device, dry: bool) -> None:
    """Inference (fp32, bf16) and training steps of ``net`` at every size, into ``result``."""
    import torch

    warmup, reps = (0, 1) if dry else (3, 10)
    twarm, treps = (0, 1) if dry else (2, 5)
    result["params_" + name] = sum(p.numel() for p in net.parameters())
    for size, shape in sizes.items():
        log(f"{name} {size} {shape}")
        r = result["results"].setdefault(size, {}).setdefault(name, {})
        for bf16 in (False, True):
            r[f"infer_{'bf16' if bf16 else 'fp32'}"] = attempt(
                lambda b=bf16, s=shape: infer_ms(net, s, device, b, warmup, reps)
            )
        for bf16 in (False, True):
            for ckpt in (False, True):
                key = f"train_{'bf16' if bf16 else 'fp32'}_{'ckpt' if ckpt else 'nockpt'}"
                r[key] = attempt(
                    lambda b=bf16, c=ckpt, s=shape: train_step(net, s, device, b, c, twarm, treps)
                )
                if device.type == "cuda":
                    torch.cuda.empty_cache()


def run(args) -> dict:
    import torch

    start = time.perf_counter()
    deadline = start + args.budget_s
    if args.dry_run:
        device = torch.device("cpu")
        torch.set_num_threads(1)
    elif not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device visible (use --dry-run to check on CPU)")
    else:
        device = torch.device("cuda")
        torch.backends.cudnn.benchmark = True
    networks.check_experiment_models()
    sizes = DRY_SIZES if args.dry_run else SIZES
    dry = args.dry_run
    result = {
        "dry_run": args.dry_run,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        **environment(device),
        "networks": {
            k: networks.MODELS[v] + (DRY_OVERRIDES if args.dry_run else [])
            for k, v in NETWORKS.items()
        },
        "sizes": {k: list(v) for k, v in sizes.items()},
        "timing": "wall ms, median after warm-up, synchronised; batch 1",
        "memory": "torch.cuda.max_memory_allocated above the footprint before the step"
        if device.type == "cuda"
        else "peak RSS above the footprint before the step (CPU dry run)",
        "results": {},
    }
    for name, model in NETWORKS.items():
        measure_network(result, name, build(model, args.dry_run).to(device), sizes, device, dry)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    log("zero-shot")
    result["zeroshot"] = attempt(lambda: zeroshot(device, args.dry_run, args.zeroshot_steps))
    if args.compile:
        for name in NETWORKS:
            log(f"torch.compile {name}")
            for size, r in compiled_ms(name, sizes, device, args, deadline).items():
                result["results"][size][name]["infer_compiled"] = r
    else:
        for size in sizes:
            for name in NETWORKS:
                result["results"][size][name]["infer_compiled"] = {"skipped": "--no-compile"}
    result["total_s"] = time.perf_counter() - start
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, seconds")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--compile-timeout", type=float, default=150, help="s per network")
    parser.add_argument("--budget-s", type=float, default=450, help="no compile after this")
    parser.add_argument("--zeroshot-steps", type=int, default=30, help="steps timed")
    parser.add_argument("--compile-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "offline")
    if args.compile_child:
        print(json.dumps(compile_child(json.loads(args.compile_child))))
        return
    if args.dry_run:
        args.zeroshot_steps = min(args.zeroshot_steps, 3)
    result = run(args)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
