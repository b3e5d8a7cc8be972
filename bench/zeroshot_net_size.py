"""Zero-shot network size on the real scans where it misses the 1 dB margin (issue 16 §3).

Fits ``method=zeroshot`` (single slice, 600 steps, the YAML's stopping rule) with several
denoiser sizes on the scans and accelerations of ``bench/zeroshot_real_scans.py`` where the
default network was less than 1 dB above the best fixed-weight classical method: the
75%-FOV brain at 4x and 8x and the twix phantom at 8x (plus the real brain at 8x as a
control). Each fit is one row of ``zeroshot_real_scans.run_scan`` (network image "before",
the method's output "after", the kept and best-in-hindsight steps), without re-scoring the
classical methods: their rows are in ``bench/results/zeroshot_real_scans.json``. ``--start``:
what every fit starts from, CG-SENSE by default (the method's default since session 7); the
committed results (session 6, no ``start`` key in the JSON) started from the zero-filled
k-space with CG-SENSE as a held-out candidate (``--start zero_filled``).

Arms (``cascades x channels x blocks`` of the residual CNN): the default 5x16x2, a wider
5x32x4 and a deeper 8x32x4. Arm-major order, so a cut-short run still compares the arms
on the first scans.

    # here (CPU, ~5-10 min a fit): needs ../shared/data
    OMP_NUM_THREADS=1 .venv/bin/python bench/zeroshot_net_size.py
    # save the scans' coil images (for a machine without ../shared and twixtools):
    .venv/bin/python bench/zeroshot_net_size.py --save-scans .gpu/scans.pt
    # on a GPU machine, within a time budget:
    python3 bench/zeroshot_net_size.py --scans-file .gpu/scans.pt --device cuda --budget-s 170

Writes ``--json`` (default ``bench/results/zeroshot_net_size.json``) after every fit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import zeroshot_real_scans as zrs  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ARMS = {
    "5x16x2": {},  # conf/method/zeroshot.yaml
    "5x32x4": {"denoiser": {"cnn": {"channels": 32, "num_blocks": 4}}},
    "8x32x4": {"num_cascades": 8, "denoiser": {"cnn": {"channels": 32, "num_blocks": 4}}},
    # cheaper arms for a CPU
    "5x32x2": {"denoiser": {"cnn": {"channels": 32}}},
    "8x16x2": {"num_cascades": 8},
}
CASES = [
    ("brain_folded75", 8),
    ("twix_phantom", 8),
    ("brain_folded75", 4),
    ("brain", 8),
    ("twix_phantom", 4),
    ("brain", 4),
]
CASE_NAMES = [f"{scan}/{acc}x" for scan, acc in CASES]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=REPO / "bench/results/zeroshot_net_size.json")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arms", nargs="+", default=list(ARMS))
    parser.add_argument("--scans-file", type=Path, help="coil images saved by --save-scans")
    parser.add_argument("--save-scans", type=Path, help="save the scans' coil images and exit")
    parser.add_argument("--cases", nargs="+", default=CASE_NAMES[:4], choices=CASE_NAMES)
    parser.add_argument("--budget-s", type=float, default=None, help="no new fit after this")
    parser.add_argument("--max-steps", type=int, default=None, help="override (smoke runs)")
    parser.add_argument("--merge", action="store_true", help="add the fits to an existing JSON")
    parser.add_argument(
        "--start", default="cg_sense", choices=zrs.STARTS,
        help="what each fit starts from (the method's default: cg_sense; the committed "
        "session-6 results used zero_filled with the CG-SENSE candidate)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.save_scans:
        args.save_scans.parent.mkdir(parents=True, exist_ok=True)
        torch.save(zrs.scans(), args.save_scans)
        return {}
    data = torch.load(args.scans_file) if args.scans_file else zrs.scans()
    if args.device == "cpu":
        torch.set_num_threads(1)
    overrides = {"time_budget_s": 1500}  # steps, not the machine's load, end every fit
    if args.max_steps is not None:
        overrides["max_steps"] = args.max_steps
    machine = f"{os.cpu_count()}-core CPU, one torch thread"
    if args.device.startswith("cuda"):
        machine = torch.cuda.get_device_name(0)
    result = {
        "machine": machine,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "arms": {k: ARMS[k] for k in args.arms},
        "start": args.start,
        "overrides": overrides,
        "fits": {},
    }
    if args.merge and args.json.exists():
        old = json.loads(args.json.read_text())
        result["fits"] = old.get("fits", {})
        result["runs"] = [*old.get("runs", [old.get("date")]), result["date"]]
    for arm in args.arms:
        for scan, acc in CASES:
            if f"{scan}/{acc}x" not in args.cases:
                continue
            elapsed = time.perf_counter() - start
            if args.budget_s is not None and elapsed > args.budget_s:
                print(f"budget spent after {elapsed:.0f} s: {arm} {scan} {acc}x not run",
                      flush=True)  # fmt: skip
                continue
            zrs.record_fit(
                result, f"{arm}/{scan}/{acc}x", args.json, start, name=scan, coils=data[scan],
                acceleration=acc, device=args.device, with_classical=False,
                net_overrides=ARMS[arm], start=args.start, **overrides,
            )  # fmt: skip
    return result


if __name__ == "__main__":
    main()
