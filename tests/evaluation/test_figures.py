"""Figures a reader can read: scales, units, the base condition, wrapped panels."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import torch
from matplotlib.figure import Figure

from unrolled.evaluation.compare import save_comparison_figure
from unrolled.methods.classical import ZeroFilled


@pytest.fixture
def captured(monkeypatch):
    """The matplotlib figures saved during a test, kept for inspection."""
    figures: list[Figure] = []
    save = Figure.savefig

    def keep(self, *args, **kwargs):
        figures.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return figures


def _png_size(path: Path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])


def test_comparison_figure_has_colour_bars_and_wraps(tiny_root, tmp_path, captured):
    from unrolled.data.fastmri_io import read_slice
    from unrolled.data.sample import collate_samples
    from unrolled.data.transforms import UnrolledTransform
    from unrolled.physics.masks import RandomMaskFunc

    path = sorted((tiny_root / "test").glob("*.h5"))[0]
    transform = UnrolledTransform(RandomMaskFunc([0.16], [4]), use_seed=True)
    batch = collate_samples([transform(read_slice(path, 1))])
    methods = {f"method {i}": ZeroFilled() for i in range(6)}  # 7 panels with the reference
    png = save_comparison_figure(methods, batch, tmp_path / "cmp.png")
    (fig,) = captured
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels.count("intensity") == 2 and labels.count("|error| (0 .. max/5)") == 2
    width, height = _png_size(png)
    assert width <= 1400, width  # 4 panels a row, not 7 in one
    assert f"{path.name}, slice 1" in fig.get_suptitle()
    titles = [ax.get_title() for ax in fig.axes]
    assert any("method 5\n" in t and " dB, SSIM " in t for t in titles)


def test_robustness_plot_has_units_base_condition_and_a_clear_legend(tmp_path, captured):
    from unrolled.evaluation.robustness import plot

    rows = []
    for axis, values in {"acceleration": [2, 4, 8], "noise": [0.0, 2.0]}.items():
        for v in values:
            cond = {"acceleration": 4, "noise": 0.0, axis: v}
            for m in ("zero_filled", "unrolled"):
                rows.append(
                    {"axis": axis, "value": v, "method": m, "ssim": 0.7, "psnr": 25.0}
                    | {"hallucination": 0.5, **cond}
                )
    plot(rows, tmp_path / "r.png")
    (fig,) = captured
    assert "base condition (acceleration 4, noise 0.0" in fig.get_suptitle()
    assert "PSNR (dB)" in [ax.get_ylabel() for ax in fig.axes]
    assert fig.legends and all(ax.get_legend() is None for ax in fig.axes)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["zero_filled", "unrolled"]
    assert _png_size(tmp_path / "r.png")[0] <= 1500


def test_comparison_figure_of_one_method_is_one_row(tiny_root, tmp_path):
    from unrolled.data.fastmri_io import read_slice
    from unrolled.data.sample import collate_samples
    from unrolled.data.transforms import UnrolledTransform
    from unrolled.physics.masks import RandomMaskFunc

    path = sorted((tiny_root / "test").glob("*.h5"))[0]
    batch = collate_samples([UnrolledTransform(RandomMaskFunc([0.16], [4]))(read_slice(path, 0))])
    png = save_comparison_figure({"zf": ZeroFilled()}, batch, tmp_path / "one.png")
    width, height = _png_size(png)
    assert width < 800 and height < 600  # reference and one method: two columns, two rows


def test_validation_grid_names_slices_scores_images_and_has_scales(tmp_path, captured):
    from unrolled.metrics import psnr
    from unrolled.training.callbacks import save_image_grid

    gen = torch.Generator().manual_seed(0)
    target = torch.rand(32, 32, generator=gen)
    recon = target + 0.05 * torch.randn(32, 32, generator=gen)
    rows = [{"target": target, "unrolled": recon, "error (x5)": (recon - target).abs()}]
    save_image_grid(rows, tmp_path / "g.png", "epoch 0", row_labels=["file1.h5, slice 3"])
    (fig,) = captured
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "file1.h5, slice 3\ntarget"
    expected = float(psnr(target, recon, float(target.max())))
    assert titles[1].startswith(f"unrolled\n{expected:.2f} dB, SSIM ")
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert "intensity" in labels and "|error|" in labels
