"""Multi-acquisition fusion with rigid motion estimation, on the embedded test split.

For a handful of slices of ``data/embedded/test`` and ``N`` = 2, 3, 4
acquisitions, each fully sampled slice is split into an object and coil maps
(:func:`~unrolled.methods.fusion.object_and_maps`) and sampled ``N`` times:
a different 4x ``RandomMaskFunc`` mask each (centre fraction 0.08), the
object moved by a random rigid motion (``dy``, ``dx`` uniform in +-3 px,
angle uniform in +-3 degrees; acquisition 0 at rest), and independent
complex Gaussian noise at the file's own noise level (measured in the
k-space rows farthest from the centre). Scored (fastMRI's PSNR and SSIM
per slice, at the 128 x 128 recon size, data range the reference maximum):

- each single acquisition by CG-SENSE (``conf/method/cg_sense.yaml``),
  against the motion-free reference *in its own frame*;
- fusion assuming no motion, fusion with estimated motion and fusion with
  the true motion (oracle), against the reference of acquisition 0;
- the motion error of the estimate (Euclidean translation error, absolute
  angle error).

Then two stress tests on one slice: the capture range (``N = 2``, one large
motion at a time) and the low-pass schedule's worth (default schedule vs
full k-space only, at 1x and 4x the noise). Writes
``bench/results/fusion_motion.json`` and ``docs/fusion_motion.png``.

    .venv/bin/python bench/fusion_motion.py            # about 15 min on a shared 2-core CPU
    .venv/bin/python bench/fusion_motion.py --quick    # one slice, N = 3, no stress tests
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from unrolled.data.fastmri_io import read_slice, read_volume_info
from unrolled.methods.classical import CGSense
from unrolled.methods.fusion import (
    MotionFusion,
    motion_error,
    moved_magnitude,
    object_and_maps,
    random_motion,
)
from unrolled.metrics import psnr, ssim
from unrolled.physics.coils import center_crop
from unrolled.physics.masks import RandomMaskFunc
from unrolled.physics.motion import simulate_acquisitions

REPO = Path(__file__).resolve().parents[1]
LAM = 0.0172  # conf/method/cg_sense.yaml, also conf/fuse.yaml
TOLERANCE = {"translation_px": 0.25, "angle_deg": 0.5}


def noise_level(kspace: torch.Tensor, rows: int = 8) -> float:
    """Per-sample noise std ``sigma`` from the ``rows`` outermost k-space rows at each end."""
    edge = torch.cat([kspace[:, :rows], kspace[:, -rows:]], dim=1)
    return float(edge.abs().pow(2).mean().sqrt())


def make_case(path, slice_idx, n, motion, seed, noise_scale=1.0):
    """Simulated acquisitions of one slice: a dict of tensors and the scoring references."""
    raw = read_slice(path, slice_idx)
    kspace = raw.kspace  # (C, H, W)
    c, h, w = kspace.shape
    image, maps = object_and_maps(kspace)
    mask_func = RandomMaskFunc([0.08], [4])
    masks, nlf = [], None
    for i in range(n):
        mask, nlf = mask_func((c, h, w), None, (seed, slice_idx, i))
        masks.append(mask.expand(h, w)[None])
    masks = torch.stack(masks)  # (N, 1, H, W)
    g = torch.Generator().manual_seed(seed)
    sigma = noise_level(kspace) * noise_scale
    y = simulate_acquisitions(image[None], maps[None], masks[None], motion[None], sigma, g)[0]
    crop = tuple(raw.target.shape)
    refs = [center_crop(moved_magnitude(image, maps, motion[i]), crop) for i in range(n)]
    return {"y": y, "masks": masks, "nlf": nlf, "motion": motion, "refs": refs, "crop": crop}


def score(magnitude, ref, crop):
    rec = center_crop(magnitude, crop)
    return {"psnr": float(psnr(ref, rec)), "ssim": float(ssim(ref, rec))}, rec


def run_case(case, methods=("none", "estimated", "oracle"), fusion_kwargs=None):
    """Singles and fusions of one case: scores, motion, errors, seconds; and the images."""
    y, masks, nlf, motion, refs, crop = (
        case[k] for k in ("y", "masks", "nlf", "motion", "refs", "crop")
    )
    out, images = {"singles": []}, {"singles": [], "refs": refs}
    cg = CGSense(lam=LAM)
    for i in range(y.shape[0]):
        t = time.perf_counter()
        rec = cg(y[i : i + 1], masks[i : i + 1], torch.tensor([nlf])).image[0]
        s, img = score(rec, refs[i], crop)
        out["singles"].append({**s, "seconds": time.perf_counter() - t})
        images["singles"].append(img)
    for name in methods:
        fusion = MotionFusion(lam=LAM, estimate_motion=name != "none", **(fusion_kwargs or {}))
        t = time.perf_counter()
        result = fusion(y, masks, nlf, motion=motion if name == "oracle" else None)
        s, img = score(result.magnitude, refs[0], crop)
        out[name] = {**s, "seconds": time.perf_counter() - t}
        images[name] = img
        if name == "estimated":
            out[name]["motion"] = result.motion.tolist()
            out[name]["error"] = motion_error(result.motion, motion)
    out["true_motion"] = motion.tolist()
    return out, images


def summarise(cases):
    """Per ``N``: mean scores, how often fusion beats every single, motion errors."""
    by_n: dict[int, list] = {}
    for c in cases:
        by_n.setdefault(c["num_acquisitions"], []).append(c)
    summary = {}
    for n, cs in sorted(by_n.items()):
        row = {"cases": len(cs)}
        singles = [s for c in cs for s in c["singles"]]
        for metric in ("psnr", "ssim"):
            row[f"single_mean_{metric}"] = sum(s[metric] for s in singles) / len(singles)
            row[f"single_best_{metric}"] = sum(
                max(s[metric] for s in c["singles"]) for c in cs
            ) / len(cs)
            for name in ("none", "estimated", "oracle"):
                row[f"{name}_{metric}"] = sum(c[name][metric] for c in cs) / len(cs)
        row["estimated_beats_every_single"] = sum(
            all(c["estimated"][m] > s[m] for s in c["singles"] for m in ("psnr", "ssim"))
            for c in cs
        )
        errs = [c["estimated"]["error"] for c in cs]
        row["translation_error_mean_px"] = sum(e["translation_mean"] for e in errs) / len(errs)
        row["translation_error_max_px"] = max(e["translation_max"] for e in errs)
        row["angle_error_mean_deg"] = sum(e["angle_mean"] for e in errs) / len(errs)
        row["angle_error_max_deg"] = max(e["angle_max"] for e in errs)
        row["estimated_seconds_mean"] = sum(c["estimated"]["seconds"] for c in cs) / len(cs)
        summary[str(n)] = row
    return summary


def capture_range(path, slice_idx, seed):
    """N = 2, one large motion at a time: the estimate's error per motion."""
    rows = []
    for shift, angle in [
        (0, 10),
        (0, 30),
        (0, 60),
        (0, 90),
        (0, 105),
        (0, 120),
        (0, 135),
        (8, 0),
        (16, 0),
        (32, 0),
        (48, 0),
        (60, 0),
        (10, 20),
    ]:
        motion = torch.tensor([[0.0, 0.0, 0.0], [shift * 0.6, shift * 0.8, angle]])
        case = make_case(path, slice_idx, 2, motion, seed)
        out, _ = run_case(case, methods=("estimated", "oracle"))
        err = out["estimated"]["error"]
        rows.append(
            {
                "shift_px": shift,
                "angle_deg": angle,
                **err,
                "captured": err["translation_max"] < TOLERANCE["translation_px"]
                and err["angle_max"] < TOLERANCE["angle_deg"],
                "estimated_psnr": out["estimated"]["psnr"],
                "oracle_psnr": out["oracle"]["psnr"],
            }
        )
        print(f"capture shift {shift} px angle {angle} deg: {err}")
    return rows


def lowpass_ablation(path, slice_idx, seed):
    """Default schedule vs full k-space only, at 1x and 4x the noise, N = 3, 3 motions."""
    rows = []
    for noise_scale in (1.0, 4.0):
        for k in range(3):
            g = torch.Generator().manual_seed(100 + k)
            motion = random_motion(3, 3.0, 3.0, g).float()
            case = make_case(path, slice_idx, 3, motion, seed + k, noise_scale)
            for name, kwargs in (("default", {}), ("full_kspace_only", {"lowpass": [None] * 4})):
                out, _ = run_case(case, methods=("estimated",), fusion_kwargs=kwargs)
                rows.append(
                    {
                        "noise_scale": noise_scale,
                        "draw": k,
                        "schedule": name,
                        **out["estimated"]["error"],
                        "psnr": out["estimated"]["psnr"],
                    }
                )
                print(f"ablation noise x{noise_scale} draw {k} {name}: {out['estimated']['error']}")
    return rows


def figure(case_images, out, path):
    """Singles, fused without/with motion, oracle, reference; error maps below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    refs = case_images["refs"]
    n = len(case_images["singles"])
    panels = [
        (f"single {i} (CG-SENSE)", case_images["singles"][i], refs[i], out["singles"][i])
        for i in range(n)
    ]
    for name, title in (
        ("none", "fused, motion ignored"),
        ("estimated", "fused, motion estimated"),
        ("oracle", "fused, true motion"),
    ):
        panels.append((title, case_images[name], refs[0], out[name]))
    panels.append(("reference (acq. 0)", refs[0], refs[0], None))
    vmax = float(refs[0].max())
    fig, axes = plt.subplots(2, len(panels), figsize=(2.2 * len(panels), 4.8))
    for j, (title, img, ref, s) in enumerate(panels):
        axes[0, j].imshow(img.numpy(), cmap="gray", vmin=0, vmax=vmax)
        label = title if s is None else f"{title}\n{s['psnr']:.1f} dB / {s['ssim']:.3f}"
        axes[0, j].set_title(label, fontsize=7)
        axes[1, j].imshow((img - ref).abs().numpy(), cmap="magma", vmin=0, vmax=vmax / 3)
        for ax in axes[:, j]:
            ax.axis("off")
    fig.text(0.005, 0.27, "|error| x3", rotation=90, fontsize=8, va="center")
    err = out["estimated"]["error"]
    fig.suptitle(
        f"N = {n} acquisitions, 4x each, rigid motion up to 3 px / 3 deg; motion error "
        f"{err['translation_max']:.3f} px, {err['angle_max']:.3f} deg (max)",
        fontsize=8,
    )
    fig.tight_layout(rect=(0.015, 0, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(REPO / "data" / "embedded" / "test"))
    parser.add_argument("--acquisitions", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--slices-per-volume", type=int, default=2, help="centre slices per file")
    parser.add_argument("--max-shift", type=float, default=3.0)
    parser.add_argument("--max-angle", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "fusion_motion.json"))
    parser.add_argument("--figure", default=str(REPO / "docs" / "fusion_motion.png"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()

    files = sorted(Path(args.root).glob("*.h5"))
    slices = []
    for f in files:
        s = read_volume_info(f).num_slices
        first = s // 2 - args.slices_per_volume // 2
        slices += [(f, first + i) for i in range(args.slices_per_volume)]
    acquisitions = args.acquisitions
    if args.quick:
        slices, acquisitions = slices[:1], [3]

    cases, fig_case = [], None
    for n in acquisitions:
        for k, (f, s) in enumerate(slices):
            g = torch.Generator().manual_seed(args.seed * 1000 + n * 100 + k)
            motion = random_motion(n, args.max_shift, args.max_angle, g).float()
            case = make_case(f, s, n, motion, args.seed * 1000 + n * 100 + k)
            out, images = run_case(case)
            cases.append({"file": f.name, "slice": s, "num_acquisitions": n, **out})
            if n == 3 and fig_case is None:
                fig_case = (images, out)
            singles = " ".join(f"{x['psnr']:.2f}/{x['ssim']:.3f}" for x in out["singles"])
            print(
                f"N={n} {f.name}[{s}] singles {singles} | none {out['none']['psnr']:.2f}/"
                f"{out['none']['ssim']:.3f} est {out['estimated']['psnr']:.2f}/"
                f"{out['estimated']['ssim']:.3f} oracle {out['oracle']['psnr']:.2f}/"
                f"{out['oracle']['ssim']:.3f} | err {out['estimated']['error']}",
                flush=True,
            )
    result = {
        "description": __doc__.split("\n\n")[0],
        "setup": {
            "root": str(Path(args.root).relative_to(REPO))
            if Path(args.root).is_relative_to(REPO)
            else args.root,
            "slices": [f"{f.name}[{s}]" for f, s in slices],
            "acquisitions": acquisitions,
            "mask": "RandomMaskFunc, 4x, centre fraction 0.08, one seed per acquisition",
            "motion": f"dy, dx uniform in +-{args.max_shift} px, "
            f"angle uniform in +-{args.max_angle} deg",
            "noise": "complex Gaussian at the file's own k-space noise level, per acquisition",
            "lam": LAM,
            "fusion": "MotionFusion defaults (conf/fuse.yaml)",
            "scoring": "fastMRI PSNR/SSIM per slice at 128x128; singles vs their own frame",
            "torch_threads": 1,
            "seed": args.seed,
        },
        "tolerance": TOLERANCE,
        "summary": summarise(cases),
        "cases": cases,
    }
    if not args.quick:
        f, s = slices[0]
        result["capture_range"] = capture_range(f, s, args.seed)
        result["lowpass_ablation"] = lowpass_ablation(f, s, args.seed)
    result["wall_seconds"] = time.perf_counter() - start
    result["uptime"] = os.popen("uptime").read().strip()
    result["load_average"] = list(os.getloadavg())

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out)
    if fig_case is not None:
        figure(fig_case[0], fig_case[1], Path(args.figure))
    print(json.dumps(result["summary"], indent=2))
    print(f"wrote {out} and {args.figure} in {result['wall_seconds']:.0f} s")
    return result


if __name__ == "__main__":
    main()
