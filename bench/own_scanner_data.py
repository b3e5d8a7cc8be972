"""The README's "Your own scanner data" path on the real Siemens gre.dat, as a user runs it.

Runs the real commands in a scratch folder: ``unrolled-convert`` on
``tests/fixtures/siemens_twix/gre.dat``, ``unrolled-info``, ``unrolled-reconstruct`` with
CG-SENSE (also writing NIfTI and DICOM) and with zero-shot (a short schedule), and
``unrolled-evaluate`` of both against the file's ``reconstruction_rss`` (the fully sampled
scan is undersampled by fastMRI's random 4x mask, seeded by the file name). Writes
``docs/own_scanner_data.png`` and ``bench/results/own_scanner_data.json``.

    .venv/bin/python bench/own_scanner_data.py            # ~3 min on one CPU thread
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py

REPO = Path(__file__).resolve().parents[1]
GRE = REPO / "tests" / "fixtures" / "siemens_twix" / "gre.dat"
BIN = Path(sys.executable).parent
ZEROSHOT = ["method.max_steps=60", "method.time_budget_s=120"]


def sh(*args: str, cwd: Path) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    t = time.time()
    out = subprocess.run(
        [str(BIN / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True
    )
    if out.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{out.stderr}")
    print(f"$ {' '.join(args)}   ({time.time() - t:.0f} s)\n{out.stdout}")
    return out.stdout


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        sh("unrolled-info", str(GRE), cwd=d)
        sh("unrolled-convert", f"inputs=[{GRE}]", "output_dir=scans", cwd=d)
        common = ["input_dir=scans", "progress=false"]
        sh("unrolled-reconstruct", "method=cg_sense", "output_dir=recon_cg",
           "output_format=[h5,nifti,dicom]", *common, cwd=d)  # fmt: skip
        sh("unrolled-reconstruct", "method=zeroshot", "output_dir=recon_zs", *ZEROSHOT, *common,
           cwd=d)  # fmt: skip
        scores = {}
        for name in ("recon_cg", "recon_zs"):
            sh("unrolled-evaluate", "target_dir=scans", f"predictions_dir={name}", cwd=d)
            scores[name] = json.loads((d / name / "metrics.json").read_text())
        with h5py.File(d / "scans" / "gre.h5") as f:
            images = {"fully sampled (reconstruction_rss)": f["reconstruction_rss"][0]}
        for name, title in (("recon_cg", "CG-SENSE, 4x"), ("recon_zs", "zero-shot, 4x")):
            with h5py.File(d / name / "gre.h5") as f:
                images[title] = f["reconstruction"][0]
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.3))
    vmax = float(images["fully sampled (reconstruction_rss)"].max())
    for ax, (title, image) in zip(axes, images.items(), strict=True):
        ax.imshow(image, cmap="gray", vmin=0, vmax=vmax)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle("Siemens gre.dat (2 coils, 160 x 160) through unrolled-convert", fontsize=10)
    fig.tight_layout()
    fig.savefig(REPO / "docs" / "own_scanner_data.png", dpi=80)
    out = REPO / "bench" / "results" / "own_scanner_data.json"
    out.write_text(json.dumps({"zeroshot_overrides": ZEROSHOT, "scores": scores}, indent=2))
    print(f"wrote docs/own_scanner_data.png and {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
