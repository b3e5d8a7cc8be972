"""``unrolled-synth``: write the embedded default data set (Hydra entry point).

Examples::

    unrolled-synth                                  # 16 volumes -> ./data/embedded
    unrolled-synth output_dir=/tmp/synth num_volumes=4 split=[2,1,1] snr=20
    unrolled-synth overwrite=true seed=1

Options live in ``conf/synth.yaml``. Bad options or an output folder that
already holds ``.h5`` files (without ``overwrite=true``) print one line on
stderr and exit with status 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

from unrolled.cli.common import CONFIG_DIR, entry_point
from unrolled.data.synth import generate_dataset, save_preview


@entry_point("unrolled-synth", __doc__, "synth")
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="synth")
def main(cfg: DictConfig) -> None:
    """Generate the data set described by ``cfg``, write a preview, print a summary."""
    out = Path(to_absolute_path(cfg.output_dir))
    options = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(options, dict)
    for key in ("output_dir", "preview", "task_name"):
        options.pop(key, None)
    try:
        summary = generate_dataset(out, **options)
        preview = save_preview(out, out / "preview.png") if cfg.preview else None
    except (ValueError, OSError) as e:  # DataError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(format_summary(summary, preview))


def format_summary(summary: dict, preview: Path | None = None) -> str:
    """A few human-readable lines about a :func:`generate_dataset` summary."""
    files = summary["files"]
    S, C, H, W = summary["kspace_shape"]
    h, w = summary["recon_shape"]
    contrasts = ", ".join(f"{k} {v}" for k, v in summary["acquisitions"].items())
    lines = [
        f"wrote {sum(files.values())} volumes to {summary['output_dir']} "
        f"({', '.join(f'{k} {v}' for k, v in files.items())})",
        f"  per file: {S} slices x {C} coils, k-space {H} x {W} complex64, "
        f"reconstruction_rss {h} x {w}; {summary['num_slices']} slices in all",
        f"  contrasts: {contrasts}; anatomy: {summary['source']}; "
        f"SNR {summary['snr']}; seed {summary['seed']}",
        f"  {summary['bytes'] / 2**20:.0f} MiB on disk, {summary['seconds']:.1f} s",
    ]
    if preview is not None:
        lines.append(f"  preview: {preview}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
