"""A wider synthetic training set: coil count, coil geometry, SNR and matrix size varied.

Issue 16 §4 asks whether a network trained only on synthetic data transfers better to real
scans when the synthetic set varies more. The embedded set (``make train``) has 8 coils,
SNR 40 and a 256 x 128 k-space (2x readout oversampling) for every volume; the shared real
brain has 4 coils and a 256 x 256 matrix without oversampling. This script writes, with
:func:`unrolled.data.synth.generate_dataset` (each sub-set its own seed, hence its own
anatomy deformations, contrasts, coil placements and smooth phases), train volumes of

    ======  =====  ==========  =====  =====
    subset  coils  k-space     SNR    volumes
    ======  =====  ==========  =====  =====
    c4      4      256 x 256   20     3
    c8      8      256 x 128   40     2
    c12     12     192 x 192   60     2
    c16     16     256 x 256   30     2
    c32     32     128 x 128   80     1
    ======  =====  ==========  =====  =====

(10 volumes x 8 slices, as many as the embedded train split) into ``OUT/parts/<subset>``
and links them into ``OUT/train``; ``OUT/val`` and ``OUT/test`` link the embedded set's
splits, so that checkpoint selection and the synthetic test score stay comparable with
``make train``. Then train on it exactly as ``make train`` does, only the data root changes:

    .venv/bin/python bench/wide_synthetic_set.py --embedded data/embedded --out data/wide
    .venv/bin/unrolled-train data.root=data/wide synth=null

The network of the README's real-brain table (``wide_4x_12ep``: 12 epochs, 480 steps, 51
minutes on one thread of the 2-core CPU; 30.95 dB at equispaced 4x and 25.14 dB at 8x on the
real brain, against CG-SENSE's 27.21 and 24.24):

    .venv/bin/unrolled-train data.root=data/wide synth=null mask.accelerations=[4] \
        mask.center_fractions=[0.08] trainer.max_epochs=12 trainer.max_time=00:01:10:00 \
        baselines=null hydra.run.dir=outputs/s9_w4

No real data is used. The field of view smaller than the object is not varied here (that
option belongs to ``unrolled-synth``'s wrap-around work).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from unrolled.data.synth import generate_dataset

SUBSETS = {  # name: (coils, height, width, snr, volumes, seed)
    "c4": (4, 256, 256, 20.0, 3, 101),
    "c8": (8, 256, 128, 40.0, 2, 102),
    "c12": (12, 192, 192, 60.0, 2, 103),
    "c16": (16, 256, 256, 30.0, 2, 104),
    "c32": (32, 128, 128, 80.0, 1, 105),
}


def build(embedded: Path, out: Path) -> dict:
    """Generate the sub-sets and link the training root; returns a summary."""
    if (out / "train").exists():
        raise SystemExit(f"{out / 'train'}: exists; choose another --out")
    summary = {"subsets": {}, "embedded": str(embedded)}
    (out / "train").mkdir(parents=True)
    for name, (coils, height, width, snr, volumes, seed) in SUBSETS.items():
        part = out / "parts" / name
        info = generate_dataset(
            part,
            num_volumes=volumes,
            num_coils=coils,
            height=height,
            width=width,
            snr=snr,
            seed=seed,
            split=(volumes, 0, 0),
            progress=False,
        )
        for f in sorted((part / "train").glob("*.h5")):
            (out / "train" / f"{f.stem}_{name}.h5").symlink_to(f.resolve())
        summary["subsets"][name] = {
            "num_coils": coils,
            "kspace": [height, width],
            "recon": list(info["recon_shape"]),
            "snr": snr,
            "volumes": volumes,
            "seed": seed,
        }
    for split in ("val", "test"):
        if not any((embedded / split).glob("*.h5")):
            raise SystemExit(f"{embedded / split}: no .h5 files (run unrolled-synth first)")
        (out / split).symlink_to((embedded / split).resolve(), target_is_directory=True)
    (out / "wide_synthetic_set.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--embedded", type=Path, default=Path("data/embedded"))
    parser.add_argument("--out", type=Path, default=Path("data/wide"))
    args = parser.parse_args(argv)
    print(json.dumps(build(args.embedded, args.out), indent=2))


if __name__ == "__main__":
    main()
