"""Compare reconstruction methods on a split: tune, score, tabulate, picture."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from unrolled.data.publish import atomic_path
from unrolled.data.sample import Sample
from unrolled.evaluation.metrics_json import write_metrics_file
from unrolled.evaluation.tuning import tune_parameter
from unrolled.inference.runner import reconstruct

__all__ = [
    "METRICS",
    "format_table",
    "print_table",
    "save_comparison_figure",
    "tune_parameter",  # lives in unrolled.evaluation.tuning, re-exported for existing callers
    "write_metrics_json",
]

METRICS = ("psnr", "ssim", "nmse")


def write_metrics_json(results: dict[str, dict[str, float]], path: Path) -> Path:
    """Write ``{"method": {"psnr", "ssim", "nmse"}}`` atomically, as strict JSON: a
    non-finite metric is ``null`` with a ``<metric>_nonfinite`` flag
    (:mod:`unrolled.evaluation.metrics_json`)."""
    return write_metrics_file(results, path)


def format_table(results: dict[str, dict[str, float]], title: str = "") -> str:
    """A markdown table of the metrics, one row per method."""
    lines = [f"**{title}**", ""] if title else []
    lines += ["| method | PSNR (dB) | SSIM | NMSE |", "|---|---:|---:|---:|"]
    for name, m in results.items():
        lines.append(f"| {name} | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['nmse']:.4f} |")
    return "\n".join(lines)


def print_table(results: dict[str, dict[str, float]], title: str) -> None:
    """Print the metrics as a rich table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("method")
    for col in ("PSNR (dB)", "SSIM", "NMSE"):
        table.add_column(col, justify="right")
    for name, m in results.items():
        table.add_row(name, f"{m['psnr']:.2f}", f"{m['ssim']:.4f}", f"{m['nmse']:.4f}")
    Console().print(table)


@torch.no_grad()
def save_comparison_figure(
    methods: dict[str, nn.Module],
    batch: Sample,
    path: Path,
    index: int = 0,
    device: str | torch.device = "cpu",
) -> Path:
    """One slice reconstructed by every method, with error maps (x5) below, as a PNG."""
    from matplotlib.figure import Figure  # no pyplot: leaves the user's backend alone

    from unrolled.metrics import psnr, ssim

    batch = batch.to(device)
    target = batch.target[index].cpu()
    maxval = float(batch.max_value[index])
    images = {}
    for name, method in methods.items():
        pred, _ = reconstruct(method.to(device).eval(), batch)
        images[name] = pred[index].cpu()
    n = len(images) + 1
    ncols = min(n, 4)  # more panels wrap onto further rows instead of one very wide row
    blocks = -(-n // ncols)
    fig = Figure(figsize=(2.4 * ncols + 1.0, 4.8 * blocks), layout="constrained")
    axes = fig.subplots(2 * blocks, ncols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    vmax = float(target.max())
    panels = [("reference", target), *images.items()]
    err = None
    for k, (name, img) in enumerate(panels):
        top, bottom = axes[2 * (k // ncols), k % ncols], axes[2 * (k // ncols) + 1, k % ncols]
        shown = top.imshow(img.numpy(), cmap="gray", vmin=0, vmax=vmax)
        if k == 0:
            top.set_title("reference", fontsize=9)
            continue
        s = float(ssim(target, img, maxval))
        p = float(psnr(target, img, maxval))
        top.set_title(f"{name}\n{p:.2f} dB, SSIM {s:.3f}", fontsize=8)
        err = bottom.imshow((img - target).abs().numpy(), cmap="magma", vmin=0, vmax=vmax / 5)
        bottom.set_title(f"|{name} - reference|", fontsize=8)
    for b in range(blocks):  # one scale per row: images 0..max, errors 0..max/5
        fig.colorbar(shown, ax=list(axes[2 * b]), shrink=0.8, label="intensity")
        if err is not None:
            fig.colorbar(err, ax=list(axes[2 * b + 1]), shrink=0.8, label="|error| (0 .. max/5)")
    fig.suptitle(f"{batch.fname[index]}, slice {int(batch.slice_num[index])}", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return path
