"""The README's result tables, generated from the JSON in ``bench/results/`` (one source).

Each generated table sits in README.md between a ``<!-- generated: NAME -->`` line and a
``<!-- end generated: NAME -->`` line, with a caption naming its JSON file, the machine, the
load average and the date the numbers were measured (or "not recorded" where the JSON
predates those fields; the date then falls back to the JSON file's last commit).

    .venv/bin/python bench/readme_tables.py           # rewrite the tables in README.md
                                                      # and bench/README.md
    .venv/bin/python bench/readme_tables.py --check   # exit 1 if README.md differs

``tests/test_readme_tables.py`` runs ``--check``, so a table edited by hand, or a JSON file
re-measured without regenerating the README, fails the tests.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import real_scans_by_case
import speed_tables
import yaml

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BENCH_README = REPO / "bench" / "README.md"

LABELS = {
    "zero_filled": "zero-filled",
    "cg_sense": "CG-SENSE",
    "cs_tv": "CS TV (fixed weight)",
    "cs_wavelet": "CS wavelet",
    "varnet_fastmri": "E2E-VarNet (fastmri)",
    "unrolled": "unrolled (ours)",
}


def _lam(method: str) -> str:
    """The weight of ``conf/method/METHOD.yaml``: the one every command uses."""
    return f"lam {yaml.safe_load((REPO / 'conf' / 'method' / f'{method}.yaml').read_text())['lam']}"


NOTES = {
    "cg_sense": lambda: _lam("cg_sense") + " (`conf/method/cg_sense.yaml`, tuned on val)",
    "cs_tv": lambda: _lam("cs_tv") + " (tuned on val; the default chooses it per slice)",
    "cs_wavelet": lambda: _lam("cs_wavelet") + " (tuned on val)",
    "varnet_fastmri": lambda: "`make train` recipe with `model=varnet_fastmri`",
    "unrolled": lambda: "`make train` checkpoint of an earlier 9-epoch run (not the one above)",
}


def _committed(path: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%cs", "--", str(path)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def caption(path: Path, data: dict, more: str = "") -> str:
    """Where the numbers come from: file, machine, load, date (and ``more``, if given)."""
    machine = data.get("machine") or "machine not recorded"
    loads = [data.get("load_average_start"), data.get("load_average_end")]
    load = " -> ".join(f"{v[0]:.1f}" for v in loads if v) or "not recorded"
    date = data.get("date")
    if not date:
        committed = _committed(path)
        date = f"not recorded (file committed {committed})" if committed else "not recorded"
    rel = path.relative_to(REPO).as_posix()
    return f"_From `{rel}`: {machine}; load average {load}; measured {date}{more}._"


def embedded_methods() -> str:
    path = REPO / "bench" / "results" / "embedded_methods.json"
    data = json.loads(path.read_text())
    methods = data["methods"]
    best = {
        "psnr": max(m["metrics"]["psnr"]["mean"] for m in methods.values()),
        "ssim": max(m["metrics"]["ssim"]["mean"] for m in methods.values()),
        "nmse": min(m["metrics"]["nmse"]["mean"] for m in methods.values()),
    }

    def cell(m: dict, key: str, fmt: str, std: bool = True) -> str:
        mean = m["metrics"][key]["mean"]
        text = format(mean, fmt) + (f" ± {m['metrics'][key]['std']:{fmt}}" if std else "")
        return f"**{text}**" if mean == best[key] else text

    lines = [
        "| method | PSNR (dB) | SSIM | NMSE | how it was obtained |",
        "|---|---:|---:|---:|---|",
    ]
    for name, m in sorted(methods.items(), key=lambda kv: kv[1]["metrics"]["psnr"]["mean"]):
        note = NOTES.get(name, lambda: "")()
        lines.append(
            f"| {LABELS.get(name, name)} | {cell(m, 'psnr', '.2f')} | {cell(m, 'ssim', '.4f')} "
            f"| {cell(m, 'nmse', '.4f', std=False)} | {note} |"
        )
    return "\n".join([caption(path, data), "", *lines])


def _metric_rows(rows: dict[str, dict], label=lambda name: LABELS.get(name, name)) -> list[str]:
    """``| method | PSNR | SSIM | NMSE |`` rows, best PSNR / SSIM / NMSE in bold."""
    best = {
        "psnr": max(m["psnr"] for m in rows.values()),
        "ssim": max(m["ssim"] for m in rows.values()),
        "nmse": min(m["nmse"] for m in rows.values()),
    }

    def cell(m: dict, key: str, fmt: str) -> str:
        text = format(m[key], fmt)
        return f"**{text}**" if m[key] == best[key] else text

    lines = ["| method | PSNR (dB) | SSIM | NMSE |", "|---|---:|---:|---:|"]
    for name, m in rows.items():
        lines.append(
            f"| {label(name)} | {cell(m, 'psnr', '.2f')} | {cell(m, 'ssim', '.4f')} "
            f"| {cell(m, 'nmse', '.4f')} |"
        )
    return lines


def make_train() -> str:
    """The ``make train`` run recorded by ``bench/record_train_run.py``."""
    path = REPO / "bench" / "results" / "make_train.json"
    data = json.loads(path.read_text())
    lam = data["cg_sense_lam"]
    labels = {"unrolled": "unrolled (this run)", "cg_sense": f"CG-SENSE (lam {lam})"}
    overrides = " ".join(data["overrides"]) or "no overrides"
    how = (
        f"`{data['command']}` ({overrides}) at commit {data['commit']}: trained "
        f"{data['epochs']} of {data['max_epochs']} epochs "
        f"(stopped by `trainer.{data['stopped_by']}`"
        f"{', ' + data['max_time'] if data['stopped_by'] == 'max_time' else ''}); the whole "
        f"command took {data['minutes']:.0f} minutes. Test: {data['test']}."
    )
    rows = _metric_rows(data["metrics"], lambda n: labels.get(n, LABELS.get(n, n)))
    return "\n".join([caption(path, data), "", how, "", *rows])


def real_brain() -> str:
    """Every method on the shared real brain (``bench/synthetic_net_real_brain.py``)."""
    path = REPO / "bench" / "results" / "synthetic_net_real_brain.json"
    data = json.loads(path.read_text())
    settings = data["settings"]
    names = list(next(iter(settings.values()))["methods"])
    header = (
        "| method | " + " | ".join(f"{k.replace('_', ' ')} PSNR / SSIM" for k in settings) + " |"
    )
    lines = [header, "|---|" + "---:|" * len(settings)]
    for name in names:
        cells = []
        for setting in settings.values():
            col = setting["methods"]
            m = col[name]
            psnr, ssim = f"{m['psnr']:.2f}", f"{m['ssim']:.3f}"
            if m["psnr"] == max(v["psnr"] for v in col.values()):
                psnr = f"**{psnr}**"
            if m["ssim"] == max(v["ssim"] for v in col.values()):
                ssim = f"**{ssim}**"
            cells.append(f"{psnr} / {ssim}")
        label = NETWORKS.get(name, LABELS.get(name, name))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    more = ""
    if len(data.get("runs", [])) > 1:  # merged runs (--merge): when each network was measured
        runs = "; ".join(
            f"{', '.join(f'`{n}`' for n in run['networks'])} on {run['date']} (load average "
            f"{run['load_average_start'][0]:.1f} -> {run['load_average_end'][0]:.1f})"
            for run in data["runs"]
        )
        more = f"; networks measured in {len(data['runs'])} runs: {runs}"
    return "\n".join([caption(path, data, more), "", *lines])


SCANS = {
    "brain": "real brain, 4 coils, 256 x 256",
    "brain_folded75": "the brain folded to 75 % FOV, 256 x 192",
    "twix_phantom": "twix GRE phantom, 2 coils, 160 x 160",
}
CLASSICAL = ("cg_sense", "cs_wavelet", "cs_tv")


def sets_note(row: dict) -> str:
    sets = row.get("zeroshot_espirit_sets", 1)
    return f" (zero-shot with {sets} sets of ESPIRiT maps)" if sets > 1 else ""


def real_scans_zeroshot() -> str:
    """Zero-shot against the fixed-weight classical methods (``bench/zeroshot_real_scans.py``)."""
    path = REPO / "bench" / "results" / "zeroshot_real_scans.json"
    data = json.loads(path.read_text())
    scans = data["scans"]
    loads = [x for r in scans.values() for pair in r["load_average_before_after"] for x in pair[:1]]
    lines = [
        "| scan | acc. | zero-filled | CG-SENSE | CS wavelet | CS TV | zero-shot (kept / run "
        "steps, s) | zero-shot - best fixed | >= +1 dB, SSIM not lower |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]

    def scan(key: str) -> str:
        return re.sub(r"_(8x|\dsets)", "", key)

    def position(key: str) -> tuple[int, int, int]:
        r = scans[key]
        return r["acceleration"], list(SCANS).index(scan(key)), r.get("zeroshot_espirit_sets", 1)

    order = sorted(scans, key=position)
    for key in order:
        r = scans[key]
        if not all(m in r for m in CLASSICAL):
            continue  # measured before the CS rows were added
        best = max(CLASSICAL, key=lambda m: r[m]["psnr"])
        zs = r["zeroshot_before"]
        dp, ds = zs["psnr"] - r[best]["psnr"], zs["ssim"] - r[best]["ssim"]
        cells = [f"{r[m]['psnr']:.2f} / {r[m]['ssim']:.3f}" for m in ("zero_filled", *CLASSICAL)]
        lines.append(
            f"| {SCANS[scan(key)]}{sets_note(r)} | {r['acceleration']}x | "
            + " | ".join(cells)
            + f" | {zs['psnr']:.2f} / {zs['ssim']:.3f} ({zs['kept_step']} / {zs['steps']}, "
            f"{zs['seconds']:.0f}) | {dp:+.2f} dB / {ds:+.3f} vs {LABELS[best]} "
            f"| {'met' if dp >= 1 and ds >= 0 else 'not met'} |"
        )
    rel = path.relative_to(REPO).as_posix()
    caption_ = (
        f"_From `{rel}`: {data.get('machine', 'machine not recorded')}; load average "
        f"{min(loads):.1f} to {max(loads):.1f}; measured {data.get('date', 'not recorded')}._"
    )
    return "\n".join([caption_, "", *lines])


VARIANTS = {  # how a variant key of bench/zeroshot_classical_start.py reads in the README
    "pretrained": "weights pre-trained on the synthetic set (`--checkpoint`, 12 epochs)",
}


def zeroshot_classical_start() -> str:
    """Zero-shot started from a classical image (``bench/zeroshot_classical_start.py``)
    against the default zero-filled start and the best fixed-weight classical method (both
    from ``bench/results/zeroshot_real_scans.json``)."""
    path = REPO / "bench" / "results" / "zeroshot_classical_start.json"
    data = json.loads(path.read_text())
    base = json.loads((REPO / "bench" / "results" / "zeroshot_real_scans.json").read_text())
    arms = [a for a in dict.fromkeys(k.split("/")[0] for k in data["fits"]) if "@" not in a]
    lines = [
        "| scan | acc. | best fixed classical | zero-shot, zero-filled start | "
        + " | ".join(f"started from {LABELS.get(a.split('@')[0], a)}{_lr(a)}" for a in arms)
        + " | >= +1 dB over best fixed, SSIM not lower |",
        "|---|---|---:|---:|" + "---:|" * len(arms) + "---|",
    ]

    def met(fit: dict, best: dict) -> bool:
        return fit["psnr"] - best["psnr"] >= 1 and fit["ssim"] >= best["ssim"]

    cases = sorted(
        dict.fromkeys("/".join(k.split("/")[1:]) for k in data["fits"]),
        key=lambda c: (int(c.split("/")[1][:-1]), list(SCANS).index(c.split("/")[0])),
    )
    loads = []
    for case in cases:
        scan, acc = case.split("/")
        r = base["scans"][scan if acc == "4x" else f"{scan}_{acc}"]
        best = max(CLASSICAL, key=lambda m: r[m]["psnr"])
        zs = r["zeroshot_before"]
        cells = [
            f"{LABELS[best]} {r[best]['psnr']:.2f} / {r[best]['ssim']:.3f}",
            f"{zs['psnr']:.2f} / {zs['ssim']:.3f}",
        ]
        verdicts = [f"zero-filled start: {'met' if met(zs, r[best]) else 'not met'}"]
        for arm in arms:
            fit = data["fits"].get(f"{arm}/{case}")
            if not fit or "error" in fit:
                cells.append("not run" if not fit else "failed")
                continue
            loads += [pair[0] for pair in fit["load_average_before_after"]]
            b = fit["zeroshot_before"]
            start = fit["stopping"]["psnr_at"]["0"]
            cells.append(
                f"{start:.2f} -> {b['psnr']:.2f} / {b['ssim']:.3f} "
                f"({b['psnr'] - zs['psnr']:+.2f} dB; {b['kept_step']} / {b['steps']}, "
                f"{b['seconds']:.0f} s)"
            )
            name = LABELS.get(arm.split("@")[0], arm) + _lr(arm)
            verdicts.append(f"{name}: {'met' if met(b, r[best]) else 'not met'}")
        lines.append(
            f"| {SCANS[scan]} | {acc} | " + " | ".join(cells) + " | " + "; ".join(verdicts) + " |"
        )
    variants = []  # other learning rates and seeds, same protocol
    for key, fit in data["fits"].items():
        arm, scan, acc = key.split("/")
        if "@" in arm and "error" not in fit:
            loads += [pair[0] for pair in fit["load_average_before_after"]]
            b = fit["zeroshot_before"]
            name = arm.split("@")[0].replace("zero_filled", "zero-filled start")
            how = [VARIANTS.get(v, v) for v in arm.split("@")[1:]]
            variants.append(
                f"{SCANS[scan]} {acc}, {LABELS.get(name, name)} "
                f"{', '.join(how)}: {b['psnr']:.2f} / {b['ssim']:.3f}, {b['seconds']:.0f} s"
            )
    if variants:
        lines += ["", "Other runs of the same protocol: " + "; ".join(variants) + "."]
    rel = path.relative_to(REPO).as_posix()
    caption_ = (
        f"_From `{rel}` (and `bench/results/zeroshot_real_scans.json` for the first two "
        f"columns): {data.get('machine', 'machine not recorded')}; load average "
        f"{min(loads):.1f} to {max(loads):.1f}; measured {data.get('date', 'not recorded')}. "
        "`a -> b / SSIM (change, kept / run steps, s)`: the start's PSNR (step 0: the "
        "classical image made data-consistent), the kept step's PSNR and SSIM, the change "
        "against the zero-filled start, the steps and the fit's seconds._"
    )
    return "\n".join([caption_, "", *lines])


def _lr(arm: str) -> str:
    return f" (peak lr {arm.split('@lr')[1]})" if "@lr" in arm else ""


NETWORKS = {
    "make_train": "unrolled, `make train` (synthetic only)",
    "embedded_30min": "unrolled, embedded set, 30-minute limit (control)",
    "wide_30min": "unrolled, wider synthetic set, 30-minute limit (`bench/wide_synthetic_set.py`)",
    "embedded_4x_12ep": "unrolled, embedded set, 4x masks, 12 epochs (quiet machine)",
    "embedded_4x8x_12ep": "unrolled, embedded set, 4x and 8x masks, 12 epochs (quiet machine)",
    "wide_4x_12ep": "unrolled, wider synthetic set, 4x masks, 12 epochs (session 9)",
    "wide_4x8x_12ep": "unrolled, wider synthetic set, 4x and 8x masks, 12 epochs (session 9)",
}

TABLES = {
    "make_train": make_train,
    "embedded_methods": embedded_methods,
    "real_brain": real_brain,
    "real_scans_zeroshot": real_scans_zeroshot,
    "zeroshot_classical_start": zeroshot_classical_start,
}
BENCH_TABLES = {  # bench/README.md's
    **speed_tables.BENCH_TABLES,
    "real_scans_by_case": real_scans_by_case.real_scans_by_case,
    "real_scans_weights": real_scans_by_case.weights_summary,
}


def render(readme: str, tables: dict | None = None) -> str:
    """``readme`` with every generated table replaced by its current rendering."""
    for name, make in (TABLES if tables is None else tables).items():
        pattern = re.compile(
            rf"(<!-- generated: {name} [^\n]*-->\n)(?:.*?\n)?(<!-- end generated: {name} -->)", re.S
        )
        if not pattern.search(readme):
            raise SystemExit(f"README.md: no generated block named {name}")
        readme = pattern.sub(lambda m, make=make: m.group(1) + make() + "\n" + m.group(2), readme)
    return readme


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    args = parser.parse_args(argv)
    stale = False
    for path, tables in ((README, TABLES), (BENCH_README, BENCH_TABLES)):
        current = path.read_text()
        wanted = render(current, tables)
        if args.check and wanted != current:
            rel = path.relative_to(REPO).as_posix()
            print(f"{rel}: generated tables are stale: run bench/readme_tables.py", file=sys.stderr)
            stale = True
        elif not args.check:
            path.write_text(wanted)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
