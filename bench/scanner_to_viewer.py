"""gre.dat from the scanner to the viewer: the README's commands, then a picture of the result.

Runs, in a scratch folder, exactly the commands of the README section "Your own scanner
data" on the real Siemens phantom scan ``tests/fixtures/siemens_twix/gre.dat``
(``unrolled-convert``, then ``unrolled-reconstruct`` with zero-filled, CG-SENSE and
zero-shot, written as NIfTI and DICOM), converts each DICOM series back with
``dcm2niix``, and draws ``docs/scanner_to_viewer.png``: per method our NIfTI next to the
image dcm2niix read from our DICOM, and their difference in rescale steps. Also writes
``bench/results/scanner_to_viewer.json`` (timings, agreement figures).

    .venv/bin/python bench/scanner_to_viewer.py [--work /tmp/unrolled_scanner_to_viewer]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
METHODS = {
    "zero_filled": ["method=zero_filled"],
    "cg_sense": ["method=cg_sense"],
    "zeroshot": ["method=zeroshot", "method.max_steps=60", "method.time_budget_s=120"],
}
TITLES = {"zero_filled": "zero-filled", "cg_sense": "CG-SENSE", "zeroshot": "zero-shot"}


def _run(cmd: list[str], cwd: Path) -> tuple[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    start = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    if res.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}")
    return res.stdout + res.stderr, time.perf_counter() - start


def _canonical_slice(path: Path) -> np.ndarray:
    """Slice 0 of a NIfTI in its closest canonical (RAS) orientation, shown with A up."""
    img = nib.as_closest_canonical(nib.load(path))
    return np.asarray(img.get_fdata(), dtype=np.float64)[:, :, 0].T  # (A-P rows, R-L cols)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/unrolled_scanner_to_viewer"))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "scanner_to_viewer.png")
    parser.add_argument("--json", type=Path, default=REPO / "bench/results/scanner_to_viewer.json")
    args = parser.parse_args()
    if shutil.which("dcm2niix") is None:
        sys.exit("dcm2niix is not installed (see .ci/debian-packages.txt)")
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copy(REPO / "tests/fixtures/siemens_twix/gre.dat", work / "gre.dat")
    result: dict = {"machine": "shared 2-core CPU, OMP_NUM_THREADS=1", "seconds": {}}
    _, t = _run([str(BIN / "unrolled-convert"), "inputs=[gre.dat]", "output_dir=scans"], work)
    result["seconds"]["convert"] = round(t, 1)
    panels = []
    for name, overrides in METHODS.items():
        out = f"recon_{name}"
        cmd = [str(BIN / "unrolled-reconstruct"), *overrides, "input_dir=scans"]
        cmd += [f"output_dir={out}", "output_format=[nifti,dicom]", "progress=false"]
        _, t = _run(cmd, work)
        result["seconds"][name] = round(t, 1)
        d2n = work / f"d2n_{name}"
        d2n.mkdir()
        _run(
            ["dcm2niix", "-z", "y", "-b", "n", "-f", "d2n", "-o", str(d2n), f"{out}/gre_dicom"],
            work,
        )
        ours = _canonical_slice(work / out / "gre.nii.gz")
        theirs = _canonical_slice(next(d2n.glob("d2n*.nii.gz")))
        slope = float(pydicom.dcmread(work / out / "gre_dicom" / "IM_0001.dcm").RescaleSlope)
        steps = np.abs(theirs - ours) / slope
        result[name] = {"max_difference_rescale_steps": round(float(steps.max()), 4)}
        panels.append((name, ours, theirs, steps))
    _figure(panels, args.out)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def _figure(panels, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 3, figsize=(11, 3.5 * len(panels)))
    for row, (name, ours, theirs, steps) in zip(axes, panels, strict=True):
        vmax = float(np.percentile(ours, 99.5))
        for ax, img, label in (
            (row[0], ours, f"{TITLES[name]}: our NIfTI"),
            (row[1], theirs, f"{TITLES[name]}: dcm2niix of our DICOM"),
        ):
            im = ax.imshow(img, cmap="gray", vmin=0, vmax=vmax, origin="lower")
            ax.set_title(label, fontsize=10)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="magnitude (a.u.)")
        im = row[2].imshow(steps, cmap="magma", vmin=0, vmax=0.5, origin="lower")
        row[2].set_title(f"|difference|, max {steps.max():.3f} rescale steps", fontsize=10)
        fig.colorbar(im, ax=row[2], fraction=0.046, pad=0.02, label="rescale steps")
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(
        "gre.dat (Siemens twix, 2 coils, 160 x 160, 1.25 mm, 4x random mask): "
        "zero-filled / CG-SENSE / zero-shot\nexported as NIfTI and DICOM; "
        "RAS view, anterior up, patient's right on the right",
        fontsize=11,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
