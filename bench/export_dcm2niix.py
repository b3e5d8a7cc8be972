"""Export a reconstruction as NIfTI and DICOM and check it with dcm2niix and dciodvfy.

As a user would: one synthetic volume in fastMRI's layout (``unrolled.data.synth``,
8 slices, 8 coils, 256 x 128 k-space, 2x readout oversampling, recon 128 x 128 over
220 mm, 5 mm slices), reconstructed by ``unrolled-reconstruct method=cg_sense
output_format=[h5,nifti,dicom]``; the DICOM series is then converted back by
``dcm2niix`` and compared with our NIfTI (voxel size, affine in the closest canonical
orientation, values against the rescale step), and every DICOM file is validated by
``dciodvfy``. Writes ``bench/results/export_dcm2niix.json`` and the figure
``docs/export_dcm2niix.png`` (ours, dcm2niix's, their difference in rescale steps).

    .venv/bin/python bench/export_dcm2niix.py [--work /tmp/export_check]
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

from unrolled.data.synth import generate_dataset

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/unrolled_export_check"))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "export_dcm2niix.png")
    parser.add_argument("--json", type=Path, default=REPO / "bench/results/export_dcm2niix.json")
    args = parser.parse_args()
    for tool in ("dcm2niix", "dciodvfy"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (see .ci/debian-packages.txt)")
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    generate_dataset(work / "data", num_volumes=1, split=(0, 1, 0), seed=7, progress=False)
    (src,) = sorted((work / "data" / "val").glob("*.h5"))
    recon = work / "recon"
    cmd = [
        str(Path(sys.executable).parent / "unrolled-reconstruct"),
        "method=cg_sense",
        f"input_dir={src.parent}",
        f"output_dir={recon}",
        "output_format=[h5,nifti,dicom]",
        "progress=false",
        f"hydra.run.dir={work / 'hydra'}",
    ]
    start = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
    print(run.stdout.strip(), run.stderr.strip(), sep="\n")
    run.check_returncode()
    seconds = time.perf_counter() - start
    stem = src.stem
    ours = nib.load(recon / f"{stem}.nii.gz")
    dicoms = sorted((recon / f"{stem}_dicom").glob("*.dcm"))
    slope = float(pydicom.dcmread(dicoms[0]).RescaleSlope)

    conv = work / "dcm2niix"
    conv.mkdir()
    d2n = subprocess.run(
        [
            "dcm2niix",
            "-z",
            "y",
            "-b",
            "n",
            "-f",
            "converted",
            "-o",
            str(conv),
            str(dicoms[0].parent),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    theirs = nib.load(next(conv.glob("converted*.nii.gz")))
    a, b = nib.as_closest_canonical(ours), nib.as_closest_canonical(theirs)
    va, vb = a.get_fdata(), b.get_fdata()
    diff = np.abs(va - vb)

    warnings: set[str] = set()
    errors = 0
    for f in dicoms:
        out = subprocess.run(["dciodvfy", str(f)], capture_output=True, text=True)
        lines = (out.stdout + out.stderr).splitlines()
        errors += sum(line.startswith("Error") for line in lines)
        warnings.update(line for line in lines if line.startswith("Warning"))

    result = {
        "command": " ".join(["unrolled-reconstruct", *cmd[1:-2]]),
        "reconstruct_seconds": round(seconds, 1),
        "shape_ours_nifti": list(ours.shape),
        "voxel_mm_ours": [float(z) for z in ours.header.get_zooms()],
        "voxel_mm_dcm2niix": [float(z) for z in theirs.header.get_zooms()],
        "affine_ours": ours.affine.round(6).tolist(),
        "affine_dcm2niix": theirs.affine.round(6).tolist(),
        "max_abs_canonical_affine_difference_mm": float(np.abs(a.affine - b.affine).max()),
        "rescale_slope": slope,
        "max_abs_value_difference": float(diff.max()),
        "max_value_difference_in_rescale_steps": float(diff.max() / slope),
        "volume_max": float(va.max()),
        "dcm2niix_log": [line for line in d2n.stdout.splitlines() if line.strip()],
        "dciodvfy_files": len(dicoms),
        "dciodvfy_errors": errors,
        "dciodvfy_warnings": sorted(warnings),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if "affine_" not in k}, indent=2))
    _figure(va, vb, slope, args.out)
    print(f"wrote {args.json} and {args.out}")


def _figure(ours: np.ndarray, theirs: np.ndarray, slope: float, path: Path) -> None:
    """Three slices (RAS canonical, shown radiologically): ours, dcm2niix's, difference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = np.linspace(1, ours.shape[2] - 2, 3).round().astype(int)
    vmax = np.percentile(ours, 99.5)
    fig, axes = plt.subplots(3, 3, figsize=(9, 9.6))
    rows = (
        ("ours: NIfTI export", ours, dict(cmap="gray", vmin=0, vmax=vmax)),
        ("dcm2niix of our DICOM", theirs, dict(cmap="gray", vmin=0, vmax=vmax)),
        (
            "|difference| / RescaleSlope",
            np.abs(ours - theirs) / slope,
            dict(cmap="magma", vmin=0, vmax=1),
        ),
    )
    for r, (title, vol, style) in enumerate(rows):
        for c, k in enumerate(picks):
            ax = axes[r, c]
            # canonical RAS (i towards the right, j anterior) shown radiologically: anterior
            # at the top, the patient's right on the left
            im = ax.imshow(vol[::-1, ::-1, k].T, **style)
            ax.set_title(f"{title}\nslice {k}", fontsize=9)
            ax.axis("off")
        fig.colorbar(im, ax=axes[r].tolist(), shrink=0.8)
    fig.suptitle("CG-SENSE reconstruction exported by unrolled, read back by nibabel", fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
