"""Stopping rules for zero-shot, judged offline on recorded fits (issue 16 §3).

The fits of ``bench/zeroshot_classical_start.py`` (and ``zeroshot_real_scans.run_scan``)
record, at every validation, the held-out k-space loss (what a stopping rule may use) and the
PSNR / SSIM against the reference (what it may not). This script replays stopping rules on
those curves, without refitting, and reports the PSNR of the step each rule keeps:

- ``held-out min``: the method's rule (``ZeroShot.fit_scan``): the lowest held-out loss, a new
  best only when it improves by the relative ``min_delta`` (1e-3);
- ``held-out min, 3-point mean``: the lowest mean of three consecutive validations' held-out
  losses (the middle one kept), which ignores single-validation dips;
- ``held-out min, EMA 0.5``: the lowest exponential moving average (weight 0.5 on the newest);
- ``last``: the last step run;
- ``best in hindsight``: the highest PSNR (an upper bound; uses the reference).

A fit's curve ends where it stopped (patience, steps or budget), so every rule chooses among the
same validations.

    .venv/bin/python bench/zeroshot_stopping.py bench/results/zeroshot_stopping_curves.json

Writes ``--json`` (default ``bench/results/zeroshot_stopping.json``) and ``--png``
(default ``docs/zeroshot_stopping.png``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def held_out_min(val: list[float], min_delta: float = 1e-3) -> int:
    """Index kept by ``ZeroShot.fit_scan``: a new best needs a relative improvement."""
    best, kept = val[0], 0
    for i, v in enumerate(val[1:], 1):
        if v < best * (1 - min_delta):
            best, kept = v, i
    return kept


def mean3(val: list[float]) -> int:
    """Index whose three-validation mean (itself and its neighbours) is lowest."""
    means = [
        sum(val[max(i - 1, 0) : i + 2]) / len(val[max(i - 1, 0) : i + 2]) for i in range(len(val))
    ]
    return min(range(len(val)), key=means.__getitem__)


def ema(val: list[float], weight: float = 0.5) -> int:
    """Index of the lowest exponential moving average of the held-out loss."""
    avg, out = val[0], [val[0]]
    for v in val[1:]:
        avg = weight * v + (1 - weight) * avg
        out.append(avg)
    return min(range(len(val)), key=out.__getitem__)


RULES = {
    "held-out min": held_out_min,
    "held-out min, 3-point mean": mean3,
    "held-out min, EMA 0.5": ema,
    "last": lambda val: len(val) - 1,
}


def judge(curve: list[list[float]]) -> dict:
    """``{rule: {step, psnr, ssim}}`` for one fit's ``[step, held-out, psnr, ssim]`` rows."""
    val = [row[1] for row in curve]
    out = {}
    for name, rule in RULES.items():
        i = rule(val)
        out[name] = {"step": curve[i][0], "psnr": curve[i][2], "ssim": curve[i][3]}
    best = max(range(len(curve)), key=lambda i: curve[i][2])
    out["best in hindsight"] = {
        "step": curve[best][0],
        "psnr": curve[best][2],
        "ssim": curve[best][3],
    }
    return out


def figure(fits: dict, path: Path) -> None:
    n = len(fits)
    fig, axs = plt.subplots(2, n, figsize=(3.2 * n, 5.5), squeeze=False, layout="constrained")
    for j, (key, fit) in enumerate(fits.items()):
        steps = [r[0] for r in fit["curve"]]
        axs[0, j].plot(steps, [r[1] for r in fit["curve"]], color="C1", lw=1)
        axs[1, j].plot(steps, [r[2] for r in fit["curve"]], color="C0", lw=1)
        for k, (rule, marker) in enumerate(zip(fit["rules"], "ovs^*", strict=False)):
            chosen = fit["rules"][rule]
            axs[1, j].plot(chosen["step"], chosen["psnr"], marker, color=f"C{k + 2}", ms=6,
                           label=rule, ls="none")  # fmt: skip
        axs[0, j].set_title(key.replace("/", " "), fontsize=8)
        axs[1, j].set_xlabel("step")
    axs[0, 0].set_ylabel("held-out k-space loss")
    axs[1, 0].set_ylabel("PSNR (dB)")
    handles, labels = axs[1, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=5, fontsize=8)
    fig.suptitle("Zero-shot stopping rules replayed on recorded fits (step 0: the start)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="JSON files with 'fits' and curves")
    parser.add_argument("--json", type=Path, default=REPO / "bench/results/zeroshot_stopping.json")
    parser.add_argument("--png", type=Path, default=REPO / "docs" / "zeroshot_stopping.png")
    args = parser.parse_args(argv)
    fits = {}
    for path in args.inputs:
        for key, fit in json.loads(path.read_text())["fits"].items():
            if "curve" in fit:
                fits[key] = {"curve": fit["curve"], "rules": judge(fit["curve"])}
    if not fits:
        parser.error(f"no fit with a recorded curve in {', '.join(map(str, args.inputs))}")
    summary = {}
    for rule in [*RULES, "best in hindsight"]:
        diffs = [
            f["rules"][rule]["psnr"] - f["rules"]["held-out min"]["psnr"] for f in fits.values()
        ]
        summary[rule] = {"mean_psnr_change_db": sum(diffs) / len(diffs), "per_fit": diffs}
    result = {"inputs": [str(p) for p in args.inputs], "fits": fits, "summary": summary}
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    figure(fits, args.png)
    for key, fit in fits.items():
        print(key, {r: f"{v['step']}: {v['psnr']:.2f}" for r, v in fit["rules"].items()})
    print(json.dumps({k: round(v["mean_psnr_change_db"], 3) for k, v in summary.items()}))
    return result


if __name__ == "__main__":
    main()
