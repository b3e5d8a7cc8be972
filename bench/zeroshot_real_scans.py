"""Zero-shot before / after its classical candidate, on three real scans, 4x and 8x.

Scans (coil images normalised to max |x| = 1; reference = RSS of the fully
sampled coil images, data range = its maximum; fastMRI's PSNR / SSIM):

- ``brain``: the shared real 4-coil brain (``../shared/data/brain_t2_4coil``, 256 x 256);
- ``brain_folded75``: the same coil images folded to 75% of their
  phase-encoding field of view (FOV centred: the head's sides wrap onto its
  middle), then FFT: 256 x 192, the reference is the folded RSS (what a
  scanner with that field of view measures);
- ``twix_phantom``: the Siemens twix gradient-echo phantom
  (``../shared/data/siemens_twix/gre.dat``) converted with
  ``unrolled-convert`` (2 coils, 160 x 160).

Mask: fastMRI's ``EquispacedMaskFractionFunc``, seed 0: 4x with centre fraction 0.08,
8x with 0.04 (as ``bench/real_scans.py``); results keyed ``<scan>`` (4x), ``<scan>_8x``.
Per scan: zero-filled, CG-SENSE (``conf/method/cg_sense.yaml``), and ONE
zero-shot fit of ``conf/method/zeroshot.yaml`` (single slice: no warm start) with the
zero-filled start (``method.classical_start=false``, the default until session 7).
"before" is that fit's network image, i.e. the method without the classical
candidate (``method.classical=null``, the fit is the same); "after" is what
the method returns (the network unless CG-SENSE, from the same samples, has
the lower held-out loss). Seconds per slice: "before" = the fit and its
image; "after" adds the candidate. A monitor scores the network at every
validation (off the clock; the reference is never used to fit), which shows
what other stopping rules would have kept.

    OMP_NUM_THREADS=1 .venv/bin/python bench/zeroshot_real_scans.py

Writes ``bench/results/zeroshot_real_scans.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import scipy.io
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from zeroshot_real_brain import network_imager  # bench/: the script's own folder

from unrolled.cli.compose import compose_option
from unrolled.metrics import psnr, ssim
from unrolled.physics.coils import rss
from unrolled.physics.fft import fft2c, ifft2c
from unrolled.physics.fov import fold_fov
from unrolled.physics.masks import EquispacedMaskFractionFunc

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CONF = REPO / "conf" / "method"


def scans() -> dict[str, torch.Tensor]:
    img = scipy.io.loadmat(DATA / "brain_t2_4coil" / "img_brain_4ch.mat")["img"]
    brain = torch.from_numpy(img.transpose(2, 0, 1).astype(np.complex64))
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [str(Path(sys.executable).parent / "unrolled-convert"),
             f"inputs=[{DATA / 'siemens_twix' / 'gre.dat'}]", f"output_dir={tmp}"],
            check=True, capture_output=True,
        )  # fmt: skip
        with h5py.File(Path(tmp) / "gre.h5") as f:
            twix = ifft2c(torch.from_numpy(f["kspace"][0]))
    out = {"brain": brain, "brain_folded75": fold_fov(brain, 0.75), "twix_phantom": twix}
    return {k: v / v.abs().max() for k, v in out.items()}


def scores(reference, image) -> dict[str, float]:
    maxval = reference.max()
    return {
        "psnr": float(psnr(reference, image, maxval)),
        "ssim": float(ssim(reference, image, maxval)),
    }


# what a zero-shot fit of run_scan can start from: a classical method's image (its fixed
# weight), or the zero-filled k-space with CG-SENSE as a held-out candidate
STARTS = ("cg_sense", "cs_wavelet", "cs_tv", "zero_filled")


def fixed_weight(method: str):
    """``conf/method/METHOD.yaml`` with its fixed weight (``weight_selection=null``)."""
    cfg = OmegaConf.load(CONF / f"{method}.yaml")
    if "weight_selection" in cfg:
        cfg.weight_selection = None
    return cfg


def classical(kspace, mask, nlf, reference, key) -> dict[str, dict]:
    """Zero-filled and the classical methods with their fixed default weights (``conf/method``).

    CS-TV's default chooses its weight per scan (k-space cross-validation); here it keeps
    the fixed weight of its YAML (``weight_selection=null``), as do the others.
    """
    out = {}
    for method in ("zero_filled", "cg_sense", "cs_wavelet", "cs_tv"):
        m = instantiate(fixed_weight(method))
        t0 = time.perf_counter()
        with torch.no_grad():
            image = m(kspace, mask, nlf, keys=[key]).image[0]
        out[method] = {**scores(reference, image), "seconds": round(time.perf_counter() - t0, 1)}
    return out


def run_scan(
    name: str,
    coils: torch.Tensor,
    acceleration: int = 4,
    classical_only: bool = False,
    maps: int = 1,
    device: str = "cpu",
    with_classical: bool = True,
    net_overrides: dict | None = None,
    start: str | None = None,
    **overrides,
) -> dict:
    """One scan at one acceleration: the classical rows (``with_classical``) and one
    zero-shot fit on ``device``; ``net_overrides`` merge into the config's ``net``.
    ``start``: a classical method of ``conf/method`` (fixed weight) the fit starts from
    (``classical_start``) instead of weighing CG-SENSE as a candidate (``None`` or
    ``"zero_filled"``: the zero-filled start, CG-SENSE the candidate)."""
    if start == "zero_filled":
        start = None
    coils = coils.to(device)
    full = fft2c(coils)[None]  # (1, C, H, W)
    center = 0.08 if acceleration == 4 else 0.04
    mask, nlf = EquispacedMaskFractionFunc([center], [acceleration], seed=0)(full.shape)
    mask = mask.reshape(1, 1, 1, -1).expand(1, 1, *full.shape[-2:]).contiguous().to(device)
    kspace, nlf = full * mask, torch.tensor([nlf], device=device)
    reference = rss(coils, dim=0)
    key = (name, 0)
    out: dict = {
        "shape": list(coils.shape),
        "acceleration": acceleration,
        "center_fraction": center,
        "num_low_frequencies": int(nlf),
        "zeroshot_espirit_sets": maps,
    }
    if with_classical:
        out.update(classical(kspace, mask, nlf, reference, key))
    if classical_only:
        return out
    # This bench measures the CG-SENSE candidate (before / after) with the zero-filled start,
    # the YAML's default until session 7 (it now starts from CG-SENSE: `start`, and
    # bench/zeroshot_classical_start.py).
    candidate = {
        "classical": {
            "_target_": "unrolled.methods.classical.CGSense",
            "lam": 0.0172,
            "max_iter": 30,
        },
        "classical_start": False,
    }
    if start is not None:
        candidate = {"classical": fixed_weight(start), "classical_start": True}
    cfg = compose_option("method", "zeroshot")
    if maps > 1:  # soft-SENSE: M sets of ESPIRiT maps, 2M real channels at the CNN
        cfg.net.sens.num_maps = maps
        cfg.net.denoiser.cnn.in_channels = cfg.net.denoiser.cnn.out_channels = 2 * maps
    if net_overrides:
        net_overrides = dict(net_overrides)
        if "sens" in net_overrides:  # another sensitivity model replaces ESPIRiT, not merged
            cfg.net.sens = net_overrides.pop("sens")
        cfg.net = OmegaConf.merge(cfg.net, net_overrides)
    zs = instantiate(cfg, **candidate, **overrides).to(device)
    curve = []
    network_image = network_imager(zs, kspace, mask, nlf, key)

    def monitor(step, net):
        curve.append((step, *scores(reference, network_image(net)).values()))
        return {}

    load = [round(x, 2) for x in os.getloadavg()]
    if device != "cpu":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.no_grad():
        after, hist = zs.fit_slice(kspace, mask, nlf, key, monitor=monitor)
        net = zs._previous[2]
        t1 = time.perf_counter()
        before = network_image(net)
        before_image_s = time.perf_counter() - t1
    fit_s = hist.records[-1].seconds if hist.records else 0.0
    kept = dict((s, (p, q)) for s, p, q in curve)
    best = max(curve, key=lambda c: c[1])
    out["network_parameters"] = sum(p.numel() for p in net.parameters())
    if start is not None:
        out["start"] = start
    out["zeroshot_before"] = {
        **scores(reference, before), "seconds": round(fit_s + before_image_s, 1),
        "steps": hist.last_step, "stop_reason": hist.stop_reason, "kept_step": hist.best_step,
        "held_out_loss": hist.best_val_loss,
    }  # fmt: skip
    out["zeroshot_after"] = {
        **scores(reference, after.image[0]), "seconds": round(hist.seconds, 1),
        "chosen": hist.chosen, "held_out_loss": min(hist.best_val_loss, hist.classical_val_loss),
        "cg_sense_held_out_loss": hist.classical_val_loss,
    }  # fmt: skip
    out["stopping"] = {
        "kept": {"step": hist.best_step, "psnr": kept[hist.best_step][0]},
        "last": {"step": curve[-1][0], "psnr": curve[-1][1]},
        "best_in_hindsight": {"step": best[0], "psnr": best[1], "ssim": best[2]},
        "psnr_at": {s: kept[s][0] for s in (0, 50, 100, 200, 300, 400) if s in kept},
    }
    # every validation: step, held-out loss (what the stopping rule sees), PSNR, SSIM (what
    # it cannot see), for judging other stopping rules offline (bench/zeroshot_stopping.py)
    held_out = {0: hist.initial_val_loss}
    held_out.update({r.step: r.val_loss for r in hist.records if not math.isnan(r.val_loss)})
    out["curve"] = [[s, held_out.get(s), p, q] for s, p, q in curve]
    out["load_average_before_after"] = [load, [round(x, 2) for x in os.getloadavg()]]
    out["wall_seconds_with_monitor"] = round(time.perf_counter() - t0, 1)
    print(name, json.dumps({k: v for k, v in out.items() if k != "stopping"}), flush=True)
    return out


def record_fit(result: dict, key: str, path: Path, t0: float, **run_scan_args) -> dict:
    """``run_scan(**run_scan_args)`` as ``result["fits"][key]`` (or the error it raised, so that
    the next fit goes on), then ``result`` (``total_s``: seconds since ``t0``) written to
    ``path``: a cut-short sweep keeps its fits."""
    try:
        row = run_scan(**run_scan_args)
    except Exception as exc:  # noqa: BLE001 - recorded, the next fit goes on
        row = {"error": f"{type(exc).__name__}: {str(exc)[:500]}"}
        print(f"{key} failed: {row['error']}", flush=True)
    result["fits"][key] = row
    result["total_s"] = round(time.perf_counter() - t0, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    return row


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scans", nargs="+", default=["brain", "brain_folded75", "twix_phantom"])
    parser.add_argument(
        "--json", type=Path, default=REPO / "bench/results/zeroshot_real_scans.json"
    )
    parser.add_argument("--accelerations", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--max-steps", type=int, default=None, help="override (smoke runs)")
    parser.add_argument(
        "--maps", type=int, default=1, help="sets of ESPIRiT maps of the zero-shot net"
    )
    parser.add_argument(
        "--classical-only",
        action="store_true",
        help="(re)score only zero-filled and the classical methods, keeping the zero-shot rows",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="seconds per fit (default: the YAML's; raise it on a loaded machine)",
    )
    args = parser.parse_args(argv)
    overrides = {} if args.max_steps is None else {"max_steps": args.max_steps}
    if args.time_budget is not None:
        overrides["time_budget_s"] = args.time_budget
    torch.set_num_threads(1)
    data = scans()
    result = json.loads(args.json.read_text()) if args.json.exists() else {}
    result["setup"] = {
        "mask": "EquispacedMaskFractionFunc, seed 0: 4x centre fraction 0.08, 8x 0.04",
        "overrides": overrides,
        "method": OmegaConf.to_container(compose_option("method", "zeroshot")),
        "torch_threads": 1,
        "note": "shared 2-core machine under load from other jobs (see load averages)",
    }
    result["machine"] = f"{os.cpu_count()}-core CPU, one torch thread"
    result["date"] = time.strftime("%Y-%m-%d")
    result.setdefault("scans", {})
    for acc in args.accelerations:
        for name in args.scans:
            key = (name if acc == 4 else f"{name}_{acc}x") + (
                f"_{args.maps}sets" if args.maps > 1 else ""
            )
            row = run_scan(name, data[name], acc, args.classical_only, args.maps, **overrides)
            result["scans"][key] = {**result["scans"].get(key, {}), **row}
            args.json.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
