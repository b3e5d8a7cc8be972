"""Run every benchmark against fastMRI's E2E-VarNet; write bench/results/*.json and summary.md.

    .venv/bin/python bench/run_all.py                 # ~20-25 minutes on a 2-core CPU
    .venv/bin/python bench/run_all.py --quick         # embedded size only, 60 s budget
    make bench ARGS="--budget 600 --ours ours_8x24x3"

The issue's target: at equal or better test SSIM (same training wall time),
our network at least 1.5x faster per inference slice and at most 0.5x the
peak training memory of fastMRI's VarNet.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import networks
import quality_per_budget
import speed_memory

RESULTS = Path(__file__).resolve().parent / "results"
SPEEDUP = 1.5  # ours at least this much faster per inference slice
MEMORY = 0.5  # ours at most this fraction of the peak training memory


def _fmt_ms(s: float) -> str:
    return f"{1e3 * s:,.0f}"


def speed_table(speed: dict) -> list[str]:
    lines = [
        "| network | size | inference ms/slice | training ms/step | "
        "peak training memory MiB | peak inference memory MiB | parameters |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    by = {(r["model"], r["size"], r["mode"]): r for r in speed["records"]}
    for model, size in dict.fromkeys((r["model"], r["size"]) for r in speed["records"]):
        inf, tr = by.get((model, size, "infer")), by.get((model, size, "train"))
        cells = [
            _fmt_ms(inf["median_s"]) if inf else "not run",
            _fmt_ms(tr["median_s"]) if tr else "not run",
            f"{tr['peak_mb']:,.0f}" if tr else "not run",
            f"{inf['peak_mb']:,.0f}" if inf else "not run",
            f"{(inf or tr)['params']:,}",
        ]
        lines.append(f"| {model} | {size} | " + " | ".join(cells) + " |")
    return lines


def ratio_table(speed: dict) -> list[str]:
    lines = [
        "| comparison | ours | size | inference time ours/theirs | "
        "training time ours/theirs | peak training memory ours/theirs |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in speed["ratios"]:
        lines.append(
            f"| {r['comparison']} | {r['ours']} | {r['size']} | "
            f"{_ratio(r.get('infer_time_ratio'))} | {_ratio(r.get('train_time_ratio'))} | "
            f"{_ratio(r.get('train_peak_ratio'))} |"
        )
    return lines


def _ratio(v) -> str:
    return "not run" if v is None else f"{v:.2f}"


def quality_table(quality: dict) -> list[str]:
    lines = [
        "| network | test SSIM | PSNR dB | NMSE | steps | CPU-s used | "
        "inference CPU-ms/slice | parameters |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in quality["runs"].items():
        t = r["test"]
        lines.append(
            f"| {name} | {t['ssim']:.4f} | {t['psnr']:.2f} | {t['nmse']:.4f} | {r['steps']} | "
            f"{r['train_cpu_s']:.0f} | {r['infer_cpu_ms_per_slice']:,.0f} | {r['params']:,} |"
        )
    return lines


def verdict(speed: dict, quality: dict, ours: str, theirs: str = "varnet") -> dict:
    """Check the target for ``ours`` against ``theirs`` at every measured size."""
    rows = [r for r in speed["ratios"] if r["ours"] == ours and r["theirs"] == theirs]
    checks = {}
    for r in rows:
        if r.get("infer_time_ratio") is not None:
            t = r["infer_time_ratio"]
            speed = f"{1 / t:.2f}x faster" if t <= 1 else f"{t:.2f}x slower"
            checks[f"inference {r['size']}: {speed}"] = t <= 1 / SPEEDUP
        if r.get("train_peak_ratio") is not None:
            checks[f"peak training memory {r['size']}: {r['train_peak_ratio']:.2f}x"] = (
                r["train_peak_ratio"] <= MEMORY
            )
    runs = quality.get("runs", {}) if quality else {}
    if ours in runs and theirs in runs:
        a, b = runs[ours]["test"]["ssim"], runs[theirs]["test"]["ssim"]
        checks[f"test SSIM {a:.4f} vs {b:.4f}"] = a >= b
    else:
        checks["test SSIM: not trained by the quality bench"] = None
    values = list(checks.values())
    status = "NOT MET" if False in values else "INCOMPLETE" if None in values else "MET"
    return {"ours": ours, "theirs": theirs, "checks": checks, "status": status}


def summary(speed: dict, quality: dict | None, verdicts: list[dict]) -> str:
    m = speed["machine"]
    loads = [r["load_before"] for r in speed["records"]]
    lines = [
        "# Benchmarks against fastMRI's E2E-VarNet",
        "",
        f"Run {speed.get('date', '?')} on {m['cpu']} ({m['cores']} cores, "
        f"CUDA: {m['cuda'] or 'none'}), torch {m['torch']}. "
        f"Speed/memory: {speed['threads']} torch thread(s); times are "
        f"the median {speed['records'][0]['timing']}. "
        f"Load averages (1/5/15 min) before the speed runs ranged "
        f"{min(lo[0] for lo in loads):.1f}-{max(lo[0] for lo in loads):.1f} (1-min).",
        "",
        "## Speed and peak memory (batch 1, synthetic slice, same inputs for both)",
        "",
        *speed_table(speed),
        "",
        *ratio_table(speed),
        "",
        *[
            f"Not run: {r['model']} {r['mode']} at {r['size']} size (`--full` runs it)."
            for r in speed.get("skipped", [])
        ],
        "",
    ]
    if quality:
        lines += [
            f"## Quality after the same training time ({quality['budget_s']:.0f} "
            f"{'CPU-' if quality['clock'] == 'cpu' else 'wall '}seconds each, "
            f"{quality['concurrent_runs']} runs at once, {quality['threads_per_run']} thread each; "
            f"load {quality['load_before']} -> {quality['load_after']})",
            "",
            *quality_table(quality),
            "",
        ]
    lines += ["## Target: >= 1.5x faster inference, <= 0.5x training memory, >= SSIM", ""]
    for v in verdicts:
        mark = {True: "ok", False: "FAIL", None: "n/a"}
        detail = "; ".join(f"{k} {mark[ok]}" for k, ok in v["checks"].items())
        lines.append(f"- **{v['ours']}** vs {v['theirs']}: {v['status']} ({detail})")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="embedded size only, 60 s budget")
    parser.add_argument("--budget", type=float, default=240, help="training seconds per network")
    parser.add_argument(
        "--ours",
        nargs="+",
        default=["ours_5x24x3", "ours_8x32x3"],
        choices=list(networks.MODELS),
        help="our 'matched quality' networks (bench/networks.py)",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="also time ours_12x64x8's knee-size training step (~10+ CPU-min)",
    )
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument(
        "--summarise-only",
        action="store_true",
        help="rewrite summary.md from the JSON files in --out (e.g. after speed_memory.py --only)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="bench/results (--quick: outputs/bench/quick)"
    )
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = RESULTS.parents[1] / "outputs" / "bench" / "quick" if args.quick else RESULTS
    if args.summarise_only:
        speed = json.loads((args.out / "speed_memory.json").read_text())
        qpath = args.out / "quality_per_budget.json"
        quality = json.loads(qpath.read_text()) if qpath.is_file() else None
        write_summary(args.out, speed, quality, [tuple(c) for c in speed["comparisons"]])
        return

    sizes = ("embedded",) if args.quick else ("embedded", "knee")
    comparisons = [("matched cascades", "ours_12x64x8", "varnet")]
    comparisons += [("matched quality", ours, "varnet") for ours in args.ours]
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print("speed and memory (one subprocess per measurement)", flush=True)
    speed = speed_memory.run(sizes, comparisons, full=args.full, out=args.out / "speed_memory.json")
    speed_memory.print_ratios(speed)
    quality = None
    if not args.skip_quality:
        budget = 60 if args.quick else args.budget
        print(f"\nquality after {budget:.0f} s of training each (concurrent)", flush=True)
        quality = quality_per_budget.run(
            ["varnet", *args.ours], budget, out=args.out / "quality_per_budget.json"
        )
    write_summary(args.out, speed, quality, comparisons)
    print(f"bench wall time {time.perf_counter() - t0:.0f} s; results in {args.out}")


def write_summary(out: Path, speed: dict, quality: dict | None, comparisons) -> None:
    """Write ``summary.md`` and ``verdict.json``; print the summary."""
    verdicts = [verdict(speed, quality, ours, theirs) for _, ours, theirs in comparisons]
    text = summary(speed, quality, verdicts)
    (out / "summary.md").write_text(text)
    (out / "verdict.json").write_text(json.dumps(verdicts, indent=2))
    print("\n" + text)


if __name__ == "__main__":
    main()
