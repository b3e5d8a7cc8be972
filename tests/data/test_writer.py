"""Atomic writing of reconstructions in fastMRI's submission layout."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from unrolled.data.writer import save_reconstructions, write_reconstruction


@pytest.fixture
def volume():
    return np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)


def test_write_readable_and_equal(tmp_path, volume):
    out = tmp_path / "recons"
    path = write_reconstruction(out, "file1000.h5", volume, attrs={"acquisition": "CORPD_FBK"})
    assert path == out / "file1000.h5"
    with h5py.File(path) as hf:
        assert list(hf) == ["reconstruction"]
        assert hf["reconstruction"].dtype == np.float32
        np.testing.assert_array_equal(hf["reconstruction"][()], volume)
        assert hf.attrs["acquisition"] == "CORPD_FBK"
    assert sorted(p.name for p in out.iterdir()) == ["file1000.h5"]  # no temporary file left
    assert path.stat().st_mode & 0o777 != 0o600  # not mkstemp's private mode


def test_refuses_overwrite_unless_asked(tmp_path, volume):
    path = write_reconstruction(tmp_path, "file1.h5", volume)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="file1.h5"):
        write_reconstruction(tmp_path, "file1.h5", 2 * volume)
    assert path.read_bytes() == before
    write_reconstruction(tmp_path, "file1.h5", 2 * volume, overwrite=True)
    with h5py.File(path) as hf:
        np.testing.assert_array_equal(hf["reconstruction"][()], 2 * volume)
    assert [p.name for p in tmp_path.iterdir()] == ["file1.h5"]


def test_failure_mid_write_leaves_nothing(tmp_path, volume, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(h5py.Group, "create_dataset", broken)
    with pytest.raises(OSError, match="disk full"):
        write_reconstruction(tmp_path, "file1.h5", volume)
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_overwrite_keeps_old_file(tmp_path, volume, monkeypatch):
    path = write_reconstruction(tmp_path, "file1.h5", volume)
    before = path.read_bytes()

    def broken(self, key, value):
        raise OSError("disk full")

    monkeypatch.setattr(h5py.AttributeManager, "__setitem__", broken)
    with pytest.raises(OSError, match="disk full"):
        write_reconstruction(tmp_path, "file1.h5", 2 * volume, overwrite=True, attrs={"a": 1})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["file1.h5"]


@pytest.mark.parametrize("fname", ["", "sub/file.h5", "..", "/abs.h5"])
def test_rejects_paths_as_fname(tmp_path, volume, fname):
    with pytest.raises(ValueError, match="plain file name"):
        write_reconstruction(tmp_path, fname, volume)


def test_rejects_bad_volume(tmp_path):
    with pytest.raises(ValueError, match="slices, h, w"):
        write_reconstruction(tmp_path, "f.h5", np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="real"):
        write_reconstruction(tmp_path, "f.h5", np.zeros((1, 8, 8), np.complex64))


def test_save_reconstructions(tmp_path, volume):
    recons = {"file1.h5": volume, "file2.h5": volume[:2].astype(np.float64)}
    paths = save_reconstructions(recons, tmp_path / "out")
    assert [p.name for p in paths] == ["file1.h5", "file2.h5"]
    for path, vol in zip(paths, recons.values(), strict=True):
        with h5py.File(path) as hf:
            assert hf["reconstruction"].dtype == np.float32
            np.testing.assert_array_equal(hf["reconstruction"][()], vol.astype(np.float32))
    (tmp_path / "out" / "file2.h5").unlink()
    with pytest.raises(FileExistsError, match="file1.h5"):
        save_reconstructions(recons, tmp_path / "out")
    assert not (tmp_path / "out" / "file2.h5").exists()  # refused before writing any
    save_reconstructions(recons, tmp_path / "out", overwrite=True)


def test_layout_matches_fastmri(tmp_path, volume):
    fastmri = pytest.importorskip("fastmri")
    fastmri.save_reconstructions({"file1.h5": volume}, tmp_path / "theirs")
    save_reconstructions({"file1.h5": volume}, tmp_path / "ours")
    with (
        h5py.File(tmp_path / "theirs" / "file1.h5") as a,
        h5py.File(tmp_path / "ours" / "file1.h5") as b,
    ):
        assert list(a) == list(b)
        assert a["reconstruction"].shape == b["reconstruction"].shape
        assert a["reconstruction"].dtype == b["reconstruction"].dtype
        np.testing.assert_array_equal(a["reconstruction"][()], b["reconstruction"][()])
