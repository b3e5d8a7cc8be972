"""Robustness suite: methods scored over a grid of acquisition conditions.

The grid varies one axis at a time around a base condition (a full factorial
over five axes would be thousands of cells; one-at-a-time sweeps answer "what
breaks first"):

- ``acceleration``: nominal undersampling factor (e.g. 2 to 12);
- ``mask_type``: any name of :func:`unrolled.physics.mask_tools.create_mask_func`
  (``random``, ``equispaced_fraction``, ``poisson``, ...);
- ``noise``: complex Gaussian noise added to the k-space before masking, in
  multiples of the data's own noise level (a blind test: networks never saw it);
- ``center_fraction``: width of the fully sampled calibration region;
- ``num_coils``: keep only the first ``n`` coils (the reference is recomputed
  from those coils, so every cell is scored against its own fully sampled RSS).

Per cell and method, against the fully sampled, noise-free acquisition:

- PSNR, SSIM, NMSE of the RSS image (volume-level, fastMRI's definitions);
- ``dc_residual``: ``||M (k_out - y)|| / ||M y||``, the distance of the output
  coil k-space to the measured samples (0 for hard data consistency);
- ``sampled_error`` and ``hallucination``: the relative error energy of the
  output coil k-space against the clean reference ``k_ref``, on the sampled
  and on the unsampled locations::

      sampled_error = ||M (k_out - k_ref)||^2 / ||M k_ref||^2
      hallucination = ||(1 - M) (k_out - k_ref)||^2 / ||(1 - M) k_ref||^2

  ``hallucination`` compares the output with leaving unmeasured k-space empty:
  zero-filling scores exactly 1, a method that recovers missing data scores
  below 1, and a value above 1 means the method put more *wrong* energy where
  nothing was measured than it would by putting nothing there: content that
  no measurement supports. Normalising by the reference (not by the sampled
  error, which hard data consistency drives to the noise level) keeps it
  comparable between DC types. It is an indicator, not a verdict: it
  measures error energy, not whether the error looks like anatomy.

Methods that return no coil k-space get NaN for the k-space quantities.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from unrolled.data.fastmri_io import RawSlice, read_slice, read_volume_info
from unrolled.data.publish import atomic_path
from unrolled.data.sample import collate_samples
from unrolled.data.transforms import UnrolledTransform
from unrolled.inference.runner import summarise
from unrolled.metrics import VolumeMetricAccumulator
from unrolled.physics.coils import center_crop, rss
from unrolled.physics.fft import ifft2c
from unrolled.physics.mask_tools import create_mask_func

log = logging.getLogger(__name__)

AXES = ("acceleration", "mask_type", "noise", "center_fraction", "num_coils")


@dataclass(frozen=True)
class Condition:
    """One acquisition condition. ``num_coils=None`` keeps all coils; ``noise`` is in
    multiples of the data's estimated noise standard deviation."""

    acceleration: float = 4
    mask_type: str = "random"
    noise: float = 0.0
    center_fraction: float = 0.08
    num_coils: int | None = None


def grid(base: Condition, axes: dict[str, Sequence]) -> list[tuple[str, Condition]]:
    """``(axis, condition)`` for each value of each axis, the others at ``base``.

    The base condition appears once per axis that contains its value, so each
    axis's curve is complete on its own.
    """
    cells = []
    for axis, values in axes.items():
        if axis not in AXES:
            raise ValueError(f"unknown robustness axis {axis!r}; choose from {AXES}")
        cells += [(axis, replace(base, **{axis: v})) for v in values]
    return cells


def estimate_noise_std(kspace: torch.Tensor, fraction: float = 0.05) -> float:
    """Noise std per coil from the outermost readout rows of fully sampled k-space.

    Uses the median magnitude, robust to the little signal left there: for
    complex Gaussian noise with ``E|n|^2 = sigma^2``, ``median |n| = sigma sqrt(ln 2)``.
    ``kspace``: ``(C, H, W)``.
    """
    h = kspace.shape[-2]
    rows = max(1, int(fraction * h))
    edge = torch.cat([kspace[..., :rows, :], kspace[..., h - rows :, :]], dim=-2)
    return float(edge.abs().median()) / math.sqrt(math.log(2))


def degrade(
    raw: RawSlice, cond: Condition, generator: torch.Generator
) -> tuple[RawSlice, torch.Tensor]:
    """The fully sampled slice under ``cond`` (coil subset, added noise) with its own reference.

    Returns:
        ``(degraded slice whose target is the clean RSS of the kept coils,
        clean fully sampled coil k-space (C, H, W) of the kept coils)``.
    """
    k = raw.kspace  # (C, H, W) complex64, fully sampled
    if cond.num_coils is not None:
        if not 1 <= cond.num_coils <= k.shape[0]:
            raise ValueError(
                f"{raw.fname}: num_coils={cond.num_coils} but the file has {k.shape[0]}"
            )
        k = k[: cond.num_coils]
    h, w = raw.target.shape if raw.target is not None else k.shape[-2:]
    clean_k = k.to(torch.complex64)  # (C, H, W), before added noise
    reference = center_crop(rss(ifft2c(clean_k), dim=0), (h, w))
    if cond.noise > 0:
        sigma = cond.noise * estimate_noise_std(raw.kspace)
        noise = torch.randn(k.shape, generator=generator, dtype=torch.complex64) * sigma
        k = k + noise
    attrs = {**raw.attrs, "max": float(reference.max())}  # of this slice; see evaluate_condition
    return replace(raw, kspace=k.to(torch.complex64), target=reference, attrs=attrs), clean_k


@torch.no_grad()
def evaluate_condition(
    methods: dict[str, nn.Module],
    slices: Sequence[RawSlice],
    cond: Condition,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Metrics of every method under ``cond``; masks are seeded per file (fastMRI's convention)."""
    mask_func = create_mask_func(cond.mask_type, [cond.center_fraction], [cond.acceleration])
    transform = UnrolledTransform(mask_func, use_seed=True)
    gen = torch.Generator().manual_seed(seed)
    degraded = [degrade(r, cond, gen) for r in slices]
    vol_max: dict[str, float] = {}
    for raw, _ in degraded:  # SSIM's data range is the volume maximum, as in fastMRI
        vol_max[raw.fname] = max(vol_max.get(raw.fname, 0.0), raw.attrs["max"])
    degraded = [(replace(r, attrs={**r.attrs, "max": vol_max[r.fname]}), c) for r, c in degraded]
    batches = []
    for start in range(0, len(degraded), batch_size):
        chunk = degraded[start : start + batch_size]
        groups: dict[tuple, list] = {}
        for raw, clean in chunk:  # batches need one k-space shape
            groups.setdefault(tuple(raw.kspace.shape), []).append((raw, clean))
        for group in groups.values():
            clean = torch.stack([c for _, c in group]).to(device)  # (B, C, H, W)
            sample = collate_samples([transform(r) for r, _ in group]).to(device)
            batches.append((sample, clean))
    results = {}
    for name, method in methods.items():
        try:
            results[name] = _score(method.to(device).eval(), batches, cond)
        except ValueError as e:  # e.g. VarNet given a 2D mask: a gap in the table, not a crash
            log.warning("%s cannot run under %s: %s", name, cond, e)
            results[name] = {k: float("nan") for k in FIELDS[3:]}
    return results


def _score(method: nn.Module, batches: list, cond: Condition) -> dict[str, float]:
    """One method's metrics over the prepared batches of one condition."""
    acc = VolumeMetricAccumulator()
    dc, sampled_err, hall = [], [], []
    for batch, clean in batches:
        # ESPIRiT caches maps per key: the key holds what changes the calibration data
        tag = (cond.num_coils, cond.noise, cond.mask_type)
        keys = [(f, int(s), *tag) for f, s in zip(batch.fname, batch.slice_num, strict=True)]
        out = method(batch.kspace, batch.mask, batch.num_low_frequencies, keys=keys)
        crop = tuple(int(v) for v in batch.crop_size[0])
        pred = center_crop(out.image, crop)
        for i, fname in enumerate(batch.fname):
            acc.update(fname, batch.slice_num[i], pred[i], batch.target[i], batch.max_value[i])
        if out.kspace.shape == batch.kspace.shape:
            stats = kspace_errors(out.kspace, batch.kspace, clean, batch.mask)
            dc += stats["dc_residual"]
            sampled_err += stats["sampled_error"]
            hall += stats["hallucination"]
    summary = summarise(acc.volumes())
    for key, values in (
        ("dc_residual", dc),
        ("sampled_error", sampled_err),
        ("hallucination", hall),
    ):
        summary[key] = sum(values) / len(values) if values else float("nan")
    return summary


def kspace_errors(
    k_out: torch.Tensor, y: torch.Tensor, k_ref: torch.Tensor, mask: torch.Tensor
) -> dict[str, list[float]]:
    """Per-slice k-space quantities of the robustness table (see the module docstring).

    Args:
        k_out: output coil k-space ``(B, C, H, W)``.
        y: measured k-space, zero where not sampled ``(B, C, H, W)``.
        k_ref: clean fully sampled coil k-space ``(B, C, H, W)``.
        mask: ``(B, 1, H, W)``, nonzero where sampled.

    Returns:
        ``{"dc_residual", "sampled_error", "hallucination"}``, one value per slice each.
    """
    m = (mask > 0).expand_as(k_out).to(torch.float32)
    k_out, y, k_ref = k_out.to(torch.complex64), y.to(torch.complex64), k_ref.to(torch.complex64)

    def energy(t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return (t.abs().pow(2) * w).flatten(1).sum(1).double()  # (B,)

    tiny = 1e-30
    dc = (energy(k_out - y, m) / energy(y, m).clamp_min(tiny)).sqrt()
    sampled = energy(k_out - k_ref, m) / energy(k_ref, m).clamp_min(tiny)
    unsampled = energy(k_out - k_ref, 1 - m) / energy(k_ref, 1 - m).clamp_min(tiny)
    return {
        "dc_residual": dc.tolist(),
        "sampled_error": sampled.tolist(),
        "hallucination": unsampled.tolist(),
    }


def load_slices(files: Iterable[Path], max_slices_per_volume: int | None = None) -> list[RawSlice]:
    """Fully sampled slices of fastMRI files (centre slices first when limited)."""
    slices = []
    for path in files:
        info = read_volume_info(path)
        if info.has_mask:
            raise ValueError(
                f"{path}: holds undersampled test-set data; robustness needs fully sampled files"
            )
        idx = list(range(info.num_slices))
        if max_slices_per_volume is not None and max_slices_per_volume < len(idx):
            mid = len(idx) // 2
            start = max(0, mid - max_slices_per_volume // 2)
            idx = idx[start : start + max_slices_per_volume]
        slices += [read_slice(path, i) for i in idx]
    return slices


FIELDS = (
    "axis",
    "value",
    "method",
    "psnr",
    "ssim",
    "nmse",
    "dc_residual",
    "sampled_error",
    "hallucination",
)


def write_csv(rows: list[dict], path: Path) -> Path:
    """One row per (axis, value, method), atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*FIELDS, *AXES])
        writer.writeheader()
        writer.writerows(rows)
    return path


def markdown_table(rows: list[dict]) -> str:
    """A markdown table of every cell, grouped by axis."""
    lines = [
        "| axis | value | method | PSNR | SSIM | NMSE | DC residual | sampled error "
        "| hallucination |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['axis']} | {r['value']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
            f"{r['nmse']:.4f} | {r['dc_residual']:.2e} | {r['sampled_error']:.2e} | "
            f"{r['hallucination']:.3f} |"
        )
    return "\n".join(lines) + "\n"


#: y-axis labels of :func:`plot`, with units.
PLOT_LABELS = {
    "ssim": "SSIM",
    "psnr": "PSNR (dB)",
    "hallucination": "hallucination\n(1 = zero-filled)",
}


def plot(rows: list[dict], path: Path, title: str = "Robustness") -> Path:
    """Line plots: one column per axis, rows SSIM / PSNR / hallucination, a line per method.

    Each axis is varied around the base condition (the value every other axis keeps, marked by
    a dotted line), which the title states; the legend sits below the panels, clear of the
    curves. More than four axes wrap onto further rows of panels.
    """
    from collections import Counter

    from matplotlib.figure import Figure

    axes_used = list(dict.fromkeys(r["axis"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    metrics = ("ssim", "psnr", "hallucination")
    # the base value of an axis: the one the rows of every other axis hold
    base = {a: Counter(r[a] for r in rows if r["axis"] != a).most_common(1) for a in axes_used}
    base = {a: v[0][0] for a, v in base.items() if v}
    ncols = min(len(axes_used), 4)
    blocks = -(-len(axes_used) // ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.4 * len(metrics) * blocks + 1.0), layout="constrained")
    axs = fig.subplots(len(metrics) * blocks, ncols, squeeze=False)
    for ax in axs.flat:
        ax.set_visible(False)
    for j, axis in enumerate(axes_used):
        values = list(dict.fromkeys(r["value"] for r in rows if r["axis"] == axis))
        pos = range(len(values))
        for i, metric in enumerate(metrics):
            ax = axs[(j // ncols) * len(metrics) + i, j % ncols]
            ax.set_visible(True)
            for name in methods:
                by = {
                    r["value"]: r[metric] for r in rows if r["axis"] == axis and r["method"] == name
                }
                ax.plot(pos, [by.get(v, float("nan")) for v in values], marker="o", label=name)
            ax.set_xticks(list(pos), [str(v) for v in values], fontsize=7)
            ax.set_xlabel(axis, fontsize=8)
            ax.set_ylabel(PLOT_LABELS[metric], fontsize=8)
            if axis in base and base[axis] in values:
                ax.axvline(values.index(base[axis]), color="k", lw=0.8, ls=":")
            if metric == "hallucination":  # 1 = zero-filling: above it, invented error
                ax.axhline(1.0, color="grey", lw=0.8, ls="--")
            ax.grid(alpha=0.3)
    handles, labels = axs[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(methods), 6), fontsize=8)
    where = ", ".join(f"{a} {v}" for a, v in base.items())
    fig.suptitle(
        f"{title}: one axis varied at a time around the base condition ({where}; dotted)",
        fontsize=9,
    )
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return path


def rows_for(axis: str, cond: Condition, results: dict[str, dict[str, float]]) -> list[dict]:
    """Flatten one cell's results into CSV rows."""
    value = getattr(cond, axis)
    return [
        {
            "axis": axis,
            "value": value,
            "method": name,
            **{k: m[k] for k in FIELDS[3:]},
            **asdict(cond),
        }
        for name, m in results.items()
    ]
