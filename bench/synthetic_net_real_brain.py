"""The synthetic-trained network on the real 4-coil brain, against CG-SENSE and CS (issue 16 §4).

Networks trained by ``unrolled-train`` on synthetic data only (the ``make train`` recipe, and
variants with a wider synthetic set) reconstruct the shared real brain slice
(``../shared/data/brain_t2_4coil``, 4 coils, 256 x 256, never shown to them) next to
zero-filled, CG-SENSE and CS-wavelet/TV with the weights of their ``conf/method`` YAML (the
weights every command uses). Masks: fastMRI's ``EquispacedMaskFractionFunc`` (the brain
standard) and ``RandomMaskFunc`` (the masks the networks were trained on), 4x (centre 0.08)
and 8x (centre 0.04), seed 0. Scored as fastMRI's ``evaluate.py`` does: reference = RSS of
the fully sampled coil images, data range = the reference maximum (one-slice volume).

    .venv/bin/python bench/synthetic_net_real_brain.py \\
        --network make_train=outputs/X/checkpoints/best-epoch004.ckpt [--network NAME=CKPT ...] \\
        [--out bench/results/synthetic_net_real_brain.json]

Writes the JSON with the machine, load average, date and the checkpoints' provenance.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy.io
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_brain_figure import BRAIN, build  # noqa: E402

from unrolled.data.sample import Sample  # noqa: E402
from unrolled.inference.checkpoint import load_checkpoint_network  # noqa: E402
from unrolled.metrics import volume_metrics  # noqa: E402
from unrolled.models.sensitivity import EspiritSensitivity  # noqa: E402
from unrolled.physics.coils import rss  # noqa: E402
from unrolled.physics.fft import fft2c  # noqa: E402
from unrolled.physics.masks import EquispacedMaskFractionFunc, RandomMaskFunc  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLASSICAL = ("zero_filled", "cg_sense", "cs_wavelet", "cs_tv")
SETTINGS = [  # (mask name, class, acceleration, centre fraction)
    ("equispaced", EquispacedMaskFractionFunc, 4, 0.08),
    ("equispaced", EquispacedMaskFractionFunc, 8, 0.04),
    ("random", RandomMaskFunc, 4, 0.08),
    ("random", RandomMaskFunc, 8, 0.04),
]


def load_batch(mask_cls, acceleration: int, center: float, seed: int = 0) -> Sample:
    """The brain slice (normalised to max |coil image| 1) undersampled by one fastMRI mask."""
    img = scipy.io.loadmat(BRAIN)["img"].transpose(2, 0, 1)  # (C, H, W)
    coils = torch.from_numpy((img / np.abs(img).max()).astype(np.complex64))
    full = fft2c(coils)[None]  # (1, C, H, W)
    mask, nlf = mask_cls([center], [acceleration], seed=seed)(full.shape)
    mask = mask.reshape(1, 1, 1, -1).expand(1, 1, *full.shape[-2:]).contiguous()
    target = rss(coils, dim=0)[None]  # (1, H, W)
    return Sample(
        kspace=full * mask,
        mask=mask,
        target=target,
        max_value=target.amax(dim=(1, 2)),
        num_low_frequencies=torch.tensor([nlf]),
        crop_size=torch.tensor([list(target.shape[-2:])]),
        slice_num=torch.tensor([0]),
        fname=(f"brain_t2_4coil ({acceleration}x {mask_cls.__name__})",),
    )


def run(networks: dict[str, str]) -> dict:
    methods: dict[str, torch.nn.Module] = {}
    espirit = EspiritSensitivity()
    for name in CLASSICAL:
        # fixed YAML weights (cs_tv's default per-scan selection is in bench/real_scans.py)
        methods[name] = build(name, espirit, fixed_weight=True)
    for name, ckpt in networks.items():
        methods[name] = load_checkpoint_network(ckpt).eval()
    results: dict = {
        "data": "../shared/data/brain_t2_4coil/img_brain_4ch.mat (4 coils, 256 x 256, real)",
        "scoring": "fastMRI evaluate.py: RSS reference, data range = reference max, one slice",
        "classical_weights": "conf/method/*.yaml fixed lam (cs_tv: weight_selection=null)",
        "networks": networks,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_start": list(os.getloadavg()),
        "settings": {},
    }
    for mask_name, mask_cls, acc, center in SETTINGS:
        key = f"{mask_name}_{acc}x"
        batch = load_batch(mask_cls, acc, center)
        rows = {}
        for name, method in methods.items():
            t0 = time.perf_counter()
            with torch.no_grad():
                out = method(batch.kspace, batch.mask, batch.num_low_frequencies, keys=[(key, 0)])
            image = out.image if hasattr(out, "image") else out
            rows[name] = volume_metrics(batch.target, image, batch.max_value[0])
            rows[name]["seconds"] = time.perf_counter() - t0
            m = rows[name]
            print(f"{key:15s} {name:22s} PSNR {m['psnr']:6.2f} SSIM {m['ssim']:.4f}", flush=True)
        results["settings"][key] = {"center_fraction": center, "methods": rows}
    results["load_average_end"] = list(os.getloadavg())
    return results


def merge(old: dict, new: dict) -> dict:
    """``new`` with the networks of ``old`` that it does not re-run (rows and provenance),
    and both runs' machine, date and load average under ``runs``."""
    kept = [n for n in old.get("networks", {}) if n not in new["networks"]]
    run_keys = ("machine", "date", "load_average_start", "load_average_end", "networks")
    runs = old.get("runs") or [{k: old.get(k) for k in run_keys}]
    merged = {**new, "runs": [*runs, {k: new.get(k) for k in run_keys}]}
    merged["networks"] = {**{n: old["networks"][n] for n in kept}, **new["networks"]}
    for key, setting in merged["settings"].items():
        old_rows = old.get("settings", {}).get(key, {}).get("methods", {})
        rows = setting["methods"]  # classical rows, then the old networks, then the new ones
        setting["methods"] = {
            **{n: rows[n] for n in CLASSICAL},
            **{n: old_rows[n] for n in kept},
            **{n: rows[n] for n in new["networks"]},
        }
    if "network_runs" in old:
        merged["network_runs"] = old["network_runs"]
    return merged


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", action="append", default=[], metavar="NAME=CKPT")
    parser.add_argument(
        "--out", default=str(REPO / "bench" / "results" / "synthetic_net_real_brain.json")
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--merge", action="store_true",
        help="keep the networks already in --out that are not re-run (their provenance and "
        "rows stay; the classical rows are re-measured)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    networks = {}
    for item in args.network:
        name, sep, ckpt = item.partition("=")
        if not sep or not Path(ckpt).is_file():
            parser.error(f"--network {item}: expected NAME=CHECKPOINT with an existing file")
        networks[name] = ckpt
    if not BRAIN.is_file():
        parser.error(f"{BRAIN}: the shared real brain is absent (see ../shared/data/README.md)")
    results = run(networks)
    if args.merge and Path(args.out).is_file():
        results = merge(json.loads(Path(args.out).read_text()), results)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
