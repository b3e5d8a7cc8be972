"""Unmeetable mask configurations end every CLI that takes a mask with one line, exit 1,
before any file is read (issue 10, section 4).

The entry points run in this process (Hydra's ``main`` with a patched ``argv``): each
subprocess would cost seconds of imports, and the point is what happens before any work.
The input files named on the command line exist and are valid; a run that reached them
would read them, and write its outputs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers.common import run_cli

CASES = {  # overrides of the mask group -> the one line expected after "error: mask: "
    "centre_above_1_over_R": (
        ["mask.center_fractions=[0.3]", "mask.accelerations=[4]"],
        "center_fractions[0]=0.3 is above 1/accelerations[0] = 1/4",
    ),
    "acceleration_below_1": (
        ["mask.accelerations=[0.5]"],
        "accelerations[0]=0.5 must be a number >= 1",
    ),
    "centre_wider_than_kspace": (
        ["mask.center_fractions=[1.5]", "mask.accelerations=[1]"],
        "center_fractions[0]=1.5 is above 1: the centre would be wider than the k-space",
    ),
}
ROBUSTNESS = {  # the robustness grid spells the mask as base/axes fields
    "centre_above_1_over_R": ["base.center_fraction=0.3"],
    "acceleration_below_1": ["axes.acceleration=[2,0.5]"],
    "centre_wider_than_kspace": ["base.center_fraction=1.5", "axes.acceleration=[1]"],
}


def _main(module: str, tmp_path: Path, *overrides: str) -> tuple[int, str, str]:
    """``unrolled.cli.<module>.main`` in this process: ``(exit status, stdout, stderr)``."""
    return run_cli(module, tmp_path / "hydra", *overrides)


def _files(root: Path) -> set[str]:
    """Every file under ``root`` except Hydra's own record of the run."""
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "hydra" not in p.relative_to(root).parts[0]
    }


@pytest.fixture
def inputs(tiny_root, tmp_path):
    """A folder with one valid fully sampled file (copied: its access time is not checked,
    so a spy on ``h5py.File`` proves that no file is opened)."""
    src = sorted((tiny_root / "test").glob("*.h5"))[0]
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(src, folder / src.name)
    return folder / src.name


def _assert_one_line(code, err, expected):
    assert code == 1, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: mask: ") and expected in lines[0], lines[0]
    assert "Traceback" not in err


@pytest.fixture
def no_file_opened(monkeypatch):
    """Fail the test if any HDF5 file is opened."""
    import h5py

    opened = []

    def spy(*args, **kwargs):
        opened.append(args[0] if args else kwargs.get("name"))
        raise AssertionError(f"h5py.File({opened[-1]}) opened before the mask was checked")

    monkeypatch.setattr(h5py, "File", spy)
    return opened


@pytest.mark.parametrize("case", list(CASES))
def test_reconstruct(case, inputs, tmp_path, no_file_opened):
    overrides, expected = CASES[case]
    code, _, err = _main(
        "reconstruct",
        tmp_path,
        "method=zero_filled",
        f"input_dir={inputs.parent}",
        f"output_dir={tmp_path / 'out'}",
        *overrides,
    )
    _assert_one_line(code, err, expected)
    assert not (tmp_path / "out").exists() and not no_file_opened


@pytest.mark.parametrize("case", list(CASES))
def test_fuse(case, inputs, tmp_path, no_file_opened):
    overrides, expected = CASES[case]
    code, _, err = _main(
        "fuse", tmp_path, f"inputs=[{inputs},{inputs}]", f"output={tmp_path / 'o.h5'}", *overrides
    )
    _assert_one_line(code, err, expected)
    assert not (tmp_path / "o.h5").exists() and not no_file_opened


@pytest.mark.parametrize("case", list(CASES))
def test_train(case, tmp_path, no_file_opened):
    """Before the embedded data set is generated (``synth``) or any checkpoint written."""
    overrides, expected = CASES[case]
    root = tmp_path / "data"
    code, _, err = _main(
        "train",
        tmp_path,
        f"data.root={root}",
        "logger=csv",
        f"paths.output_dir={tmp_path / 'run'}",
        *overrides,
    )
    _assert_one_line(code, err, expected)
    assert not root.exists() and not no_file_opened
    assert not (tmp_path / "run").exists() or not _files(tmp_path / "run")


@pytest.mark.parametrize("case", list(CASES))
def test_robustness(case, inputs, tmp_path, no_file_opened):
    expected = CASES[case][1]
    code, _, err = _main("robustness", tmp_path, f"input_dir={inputs.parent}", *ROBUSTNESS[case])
    _assert_one_line(code, err, expected)
    assert not no_file_opened
    assert not list((tmp_path / "hydra").glob("robustness.*"))


def test_train_val_mask_checked_too(tmp_path, no_file_opened):
    code, _, err = _main(
        "train",
        tmp_path,
        f"data.root={tmp_path / 'data'}",
        "logger=csv",
        "+data.val_mask_func._target_=unrolled.physics.masks.EquispacedMaskFractionFunc",
        "+data.val_mask_func.center_fractions=[0.3]",
        "+data.val_mask_func.accelerations=[4]",
    )
    assert code == 1 and "error: data.val_mask_func: center_fractions[0]=0.3" in err, err


def test_reconstruct_calibration_block_wider_than_kspace(inputs, tmp_path):
    """A shape-dependent mask error (a 2D block larger than the 64 x 64 k-space) is found
    from the file headers, before any slice is reconstructed."""
    code, _, err = _main(
        "reconstruct",
        tmp_path,
        "method=zero_filled",
        f"input_dir={inputs.parent}",
        f"output_dir={tmp_path / 'out'}",
        "mask._target_=unrolled.physics.grid_masks.GaussianMaskFunc",
        "mask.center_fractions=null",
        "+mask.calib_size=[80,80]",
    )
    _assert_one_line(code, err, "calib_size=(80, 80) is wider than the k-space (64, 64)")
    assert str(inputs) in err and not (tmp_path / "out").exists()


def test_centre_fraction_equal_to_1_over_r_reconstructs(inputs, tmp_path):
    """cf = 1/R with equispaced_fraction (fastMRI: ZeroDivisionError) runs: centre alone."""
    import h5py

    code, out, err = _main(
        "reconstruct",
        tmp_path,
        "method=zero_filled",
        "mask=equispaced_fraction",
        "mask.center_fractions=[0.25]",
        "mask.accelerations=[4]",
        f"input_dir={inputs.parent}",
        f"output_dir={tmp_path / 'out'}",
        "progress=false",
    )
    assert code == 0, err
    with h5py.File(tmp_path / "out" / inputs.name) as f:
        assert f.attrs["acceleration"] == 4
        assert f["reconstruction"].shape[0] == 2
