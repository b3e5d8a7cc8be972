"""bench/README.md's generated tables of the speed benches (data loading, scaling).

Rendered by ``bench/readme_tables.py`` (its ``BENCH_TABLES``) from ``bench/results/``.
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
KINDS = {
    "ours": "ours: `SliceDataset` + `UnrolledTransform`",
    "fastmri": "fastMRI: `SliceDataset` + `VarNetDataTransform`",
    "datamodule": "ours through `ReconDataModule` (training batches)",
}


def _caption(path: Path, data: dict) -> str:
    from readme_tables import caption

    m = data.get("machine") or {}
    machine = f"{m.get('cores')}-core {m.get('cpu')}, torch {m.get('torch')}" if m else None
    return caption(path, {**data, "machine": machine})


def data_loading() -> str:
    path = RESULTS / "data_loading.json"
    data = json.loads(path.read_text())
    workers = sorted(
        {int(w) for shape in data["results"].values() for k in shape.values() for w in k}
    )
    lines = [
        "| slice (coils x H x W) | loader | " + " | ".join(f"{w} workers" for w in workers) + " |",
        "|---|---|" + "---:|" * len(workers),
    ]
    for name, kinds in data["results"].items():
        shape = " x ".join(map(str, data["shapes"][name]))
        for kind, by in kinds.items():
            cells = [_cell(by.get(str(w))) for w in workers]
            lines.append(f"| {name} {shape} | {KINDS[kind]} | " + " | ".join(cells) + " |")
        ours, theirs = kinds["ours"], kinds["fastmri"]
        ratio = [
            f"{ours[str(w)]['slices_per_s'] / theirs[str(w)]['slices_per_s']:.2f} "
            f"({ours[str(w)]['cpu_ms_per_slice'] / theirs[str(w)]['cpu_ms_per_slice']:.2f})"
            for w in workers
        ]
        lines.append(f"| {name} {shape} | ours / fastMRI | " + " | ".join(ratio) + " |")
    note = (
        "Slices per second, wall time, batch 1, files in the page cache (in brackets: CPU-ms "
        "per slice of the process and its workers, worker start included)."
    )
    return "\n".join([_caption(path, data), "", note, "", *lines])


def _cell(r: dict | None) -> str:
    return "-" if r is None else f"{r['slices_per_s']:.1f} ({r['cpu_ms_per_slice']:.0f})"


def scaling() -> str:
    path = RESULTS / "scaling.json"
    data = json.loads(path.read_text())
    peak = data["matmul_peak"]["gflops"]
    lines = [
        "| network | coils | matrix | inference CPU-ms/slice | training CPU-ms/step "
        "| peak training memory MiB | inference GFLOP | % of matmul peak |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    rows = sorted(data["rows"], key=lambda r: (r["model"], r["height"] * r["width"], r["coils"]))
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['coils']} | {r['height']} x {r['width']} "
            f"| {r.get('infer_ms', float('nan')):,.0f} | {r.get('train_ms', float('nan')):,.0f} "
            f"| {r.get('train_peak_mb', float('nan')):,.0f} | {r.get('infer_gflops', 0):.1f} "
            f"| {100 * r.get('peak_fraction', float('nan')):.0f} |"
        )
    note = (
        f"One torch thread, CPU time; measured matmul peak {peak:.1f} GFLOP/s (float32, "
        f"{data['matmul_peak']['n']}^3, one thread); FLOPs: convolutions and matmuls of one "
        "inference call (`FlopCounterMode`), FFTs not counted; memory: peak RSS above the "
        "footprint before the step (`VmHWM`)."
    )
    return "\n".join([_caption(path, data), "", note, "", *lines])


BENCH_TABLES = {"data_loading": data_loading, "scaling": scaling}
