"""Issue 16's closing table: one table per real scan and acceleration, every method.

Rendered by ``bench/readme_tables.py`` (its ``BENCH_TABLES``) into ``bench/README.md`` from
the JSON of five benchmarks, which share the scans (``brain``, ``brain_fold75`` /
``brain_folded75``, ``twix_gre`` / ``twix_phantom``: the same data under two spellings), the
masks (fastMRI's ``EquispacedMaskFractionFunc``, seed 0, centre 0.08 at 4x and 0.04 at 8x),
the normalisation and the whole-image scoring:

* ``real_scans.json`` / ``real_scans_2maps.json`` (``bench/real_scans.py [--num-maps 2]``):
  CG-SENSE, CS-wavelet and CS-TV with one and two sets of ESPIRiT maps, at the YAML's fixed
  weight, at the weight chosen by k-space cross-validation, and the oracle weight;
* ``zeroshot_real_scans.json``: zero-shot from the zero-filled k-space (the default of
  session 5), with one and two sets of maps;
* ``zeroshot_classical_start.json``: zero-shot started from CG-SENSE (today's default) and
  from CS-wavelet;
* ``zeroshot_net_size.json``: zero-shot with 8 cascades (zero-filled start);
* ``synthetic_net_real_brain.json``: the networks trained on synthetic data only (real
  brain only).
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SCANS = {  # real_scans.py name: (zeroshot benches' name, label)
    "brain": ("brain", "real brain, 4 coils, 256 x 256"),
    "brain_fold75": ("brain_folded75", "the brain folded to 75 % FOV, 4 coils, 256 x 192"),
    "twix_gre": ("twix_phantom", "twix GRE phantom, 2 coils, 160 x 160"),
}
METHODS = {"cg_sense": "CG-SENSE", "cs_wavelet": "CS wavelet", "cs_tv": "CS TV"}


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _score(r: dict) -> str:
    return f"{r['psnr']:.2f} / {r['ssim']:.3f}"


def _fixed(r: dict) -> str:
    return f"{_score(r)} (lam {r['weight']:.3g}, {r['seconds']:.1f} s)"


def _cv(c: dict) -> str:
    cv, oracle = c["cv"], c["oracle"]
    return (
        f"{_score(cv)} (lam {cv['weight']:.3g}, {cv['seconds']:.0f} s; oracle lam "
        f"{float(oracle['weight']):.3g}: {_score(oracle)})"
    )


def _fit(f: dict, start: float | None = None) -> str:
    b = f["zeroshot_before"]
    head = f"{start:.2f} -> " if start is not None else ""
    return f"{head}{_score(b)} (kept {b['kept_step']} / {b['steps']}, {b['seconds']:.0f} s)"


def case_table(scan: str, acc: str, sources: dict) -> list[str]:
    """Rows of one scan and acceleration; columns: one / two sets, fixed / CV weight."""
    zs_name, label = SCANS[scan]
    one, two = (sources[k]["cases"].get(scan, {}).get(acc) if sources[k] else None
                for k in ("real_scans", "real_scans_2maps"))  # fmt: skip
    lines = [
        f"**{label}, {acc}**"
        + (
            f" (the methods' automatic choice: {one['auto_map_sets']} set(s))"
            if one and "auto_map_sets" in one
            else ""
        ),  # fmt: skip
        "",
        "| method | 1 set: fixed weight / as configured | 1 set: CV weight (oracle) "
        "| 2 sets: fixed weight / as configured | 2 sets: CV weight (oracle) |",
        "|---|---:|---:|---:|---:|",
    ]
    scored: dict[str, dict] = {}  # every result of this case but zero-filled, for the verdict
    if one:
        zf = one["zero_filled"]
        lines.append(f"| zero-filled | {_score(zf)} | | | |")
    for m, name in METHODS.items():
        cells = []
        for sets, res in ((1, one), (2, two)):
            if res and m in res:
                cells += [_fixed(res[m]["fixed"]), _cv(res[m])]
                scored[f"{name}, {sets} set(s), fixed weight"] = res[m]["fixed"]
                scored[f"{name}, {sets} set(s), CV weight"] = res[m]["cv"]
            else:
                cells += ["not run", "not run"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    # zero-shot: the fits of the other benches, one fit each
    zs_key = zs_name if acc == "4x" else f"{zs_name}_{acc}"
    base = sources["zeroshot_real_scans"]["scans"]
    two_sets = base.get(f"{zs_key}_2sets")
    lines.append(
        "| zero-shot, 5 cascades, zero-filled start (session 5) | "
        f"{_fit(base[zs_key])} | | {_fit(two_sets) if two_sets else 'not run'} | |"
    )
    scored["zero-shot, zero-filled start"] = base[zs_key]["zeroshot_before"]
    if two_sets:
        scored["zero-shot, zero-filled start, 2 sets"] = two_sets["zeroshot_before"]
    fits = sources["zeroshot_classical_start"]["fits"]
    for arm, name in (
        ("cg_sense", "zero-shot, started from CG-SENSE (default)"),
        ("cs_wavelet", "zero-shot, started from CS wavelet"),
    ):
        f = fits.get(f"{arm}/{zs_name}/{acc}")
        if f and "error" not in f:
            lines.append(f"| {name} | {_fit(f, f['stopping']['psnr_at']['0'])} | | | |")
            scored[name] = f["zeroshot_before"]
    f = sources["zeroshot_net_size"]["fits"].get(f"8x16x2/{zs_name}/{acc}")
    if f:
        lines.append(f"| zero-shot, 8 cascades, zero-filled start | {_fit(f)} | | | |")
        scored["zero-shot, 8 cascades"] = f["zeroshot_before"]
    synth = sources["synthetic_net_real_brain"]
    if scan == "brain" and synth:
        col = synth["settings"][f"equispaced_{acc}"]["methods"]
        for net in ("make_train", "embedded_4x_12ep", *[n for n in col if n.startswith("wide")]):
            if net in col:
                lines.append(
                    f"| network trained on synthetic data only: `{net}` (own learned "
                    f"coil sensitivities) | {_score(col[net])} | | | |"
                )
                scored[f"`{net}`"] = col[net]
    default_sets = one.get("auto_map_sets", 1) if one else 1
    fixed = {k: v for k, v in scored.items() if k.endswith(f"{default_sets} set(s), fixed weight")}
    if fixed:
        ref = max(fixed, key=lambda k: fixed[k]["psnr"])
        best = max(scored, key=lambda k: scored[k]["psnr"])
        dp = scored[best]["psnr"] - fixed[ref]["psnr"]
        ds = scored[best]["ssim"] - fixed[ref]["ssim"]
        met = "met" if dp >= 1 and ds >= 0 else "not met"
        lines += [
            "",
            f"Best: {best}, {dp:+.2f} dB / {ds:+.3f} SSIM against the best fixed-weight "
            f"classical method with the default maps ({ref}): issue 16's +1 dB target {met}.",
        ]
    return lines


def real_scans_by_case() -> str:
    names = (
        "real_scans", "real_scans_2maps", "zeroshot_real_scans", "zeroshot_classical_start",
        "zeroshot_net_size", "synthetic_net_real_brain",
    )  # fmt: skip
    sources = {n: _load(n) for n in names}
    out = [
        "_From `bench/results/`: "
        + "; ".join(
            f"`{n}.json` measured {d.get('date', 'not recorded')}" for n, d in sources.items() if d
        )
        + " (each on this project's 2-core CPU, one torch thread; loads and steps in each"
        " file). Cells: PSNR dB / SSIM (weight, seconds); zero-shot: start PSNR -> kept PSNR /"
        " SSIM (kept / run steps, fit seconds)._"
    ]
    for acc in ("4x", "8x"):
        for scan in SCANS:
            if sources["real_scans"] and scan not in sources["real_scans"]["cases"]:
                continue
            out += ["", *case_table(scan, acc, sources)]
    return "\n".join(out)


def weights_summary() -> str:
    """One row per scan and acceleration of ``real_scans.json``: best fixed-weight method,
    CV-chosen and oracle PSNR per method, and whether choosing the weight meets the target."""
    data = _load("real_scans")
    short = {"cg_sense": "CG", "cs_wavelet": "wavelet", "cs_tv": "TV"}
    lines = [
        "| scan, acc | best fixed (PSNR / SSIM) | CV-chosen CG / wavelet / TV PSNR "
        "| oracle CG / wavelet / TV PSNR | issue target (+1 dB) |",
        "|---|---|---|---|---|",
    ]
    for scan, accs in data["cases"].items():
        for acc, case in accs.items():
            v = case["verdict"]
            best = case[v["best_fixed"]]["fixed"]
            cv = " / ".join(f"{case[m]['cv']['psnr']:.2f}" for m in METHODS)
            oracle = " / ".join(f"{case[m]['oracle']['psnr']:.2f}" for m in METHODS)
            gain = f"{v['psnr_gain_db']:+.2f} dB"
            target = (
                f"**yes ({gain}, SSIM {v['ssim_change']:+.3f})**" if v["target_met"]
                else f"no ({gain})"
            )  # fmt: skip
            lines.append(
                f"| {SCANS[scan][1]}, {acc} | {short[v['best_fixed']]} {_score(best)} | {cv} "
                f"| {oracle} | {target} |"
            )
    caption = (
        f"_From `bench/results/real_scans.json`: {data.get('machine', 'machine not recorded')};"
        f" measured {data.get('date', 'not recorded')}; one set of ESPIRiT maps._"
    )
    return "\n".join([caption, "", *lines])
