"""``unrolled-info`` on fastMRI-layout files (raw files: tests/data/raw/test_twix_cli.py)."""

import shutil

import h5py
import numpy as np
import pytest

from unrolled.cli.info import main


def _info(capsys, *files):
    with pytest.raises(SystemExit) as exit_:
        main([str(f) for f in files])
    return exit_.value.code, capsys.readouterr().out


def test_fastmri_files_are_described_as_reconstruct_reads_them(tiny_root, tmp_path, capsys):
    (val,) = (tiny_root / "val").glob("*.h5")
    code, out = _info(capsys, val)
    assert code == 0, out
    assert "format: fastMRI HDF5\n" in out
    assert "kspace (2, 4, 64, 64), coils 4, slices 2" in out
    assert "acquired columns 64 of 64, acceleration 1.00" in out
    assert "geometry: none stored" in out
    test = tmp_path / "test.h5"  # test-set layout: a stored mask, k-space zero elsewhere
    shutil.copy(val, test)
    mask = np.zeros(64, bool)
    mask[::8] = mask[28:36] = True
    with h5py.File(test, "a") as f:
        f["kspace"][...] = f["kspace"][()] * mask
        f["mask"] = mask
        f.attrs["acceleration"] = 4
        f.attrs["num_low_frequency"] = 8
    code, out = _info(capsys, test)
    assert code == 0 and "stored mask (test-set layout)" in out, out
    assert f"acquired columns {int(mask.sum())} of 64, acceleration 4.27" in out
    assert "calibration width 8" in out
    broken = tmp_path / "broken.h5"
    with h5py.File(broken, "w") as f:
        f["kspace"] = np.zeros((2, 3), np.complex64)  # not (slices, coils, H, W)
    code, out = _info(capsys, broken, val)
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == str(broken) and lines[1].startswith(f"  error: {broken}")
    assert str(val) in lines  # the next file is still described
