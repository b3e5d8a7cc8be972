"""Bad inputs to the converter: one clear line naming the file, nothing written."""

from __future__ import annotations

import gc
import warnings

import h5py
import numpy as np
import pytest

from unrolled.data.errors import DataError
from unrolled.data.raw import convert, plan_conversion


def test_missing_unknown_and_already_converted(tmp_path):
    with pytest.raises(DataError, match=r"nope\.dat: no such file"):
        plan_conversion(tmp_path / "nope.dat")
    (tmp_path / "scan.txt").write_text("hello")
    with pytest.raises(DataError, match=r"scan\.txt: unknown raw format '\.txt'"):
        plan_conversion(tmp_path / "scan.txt")
    with h5py.File(tmp_path / "fastmri.h5", "w") as f:
        f.create_dataset("kspace", data=np.zeros((1, 2, 4, 4), np.complex64))
    with pytest.raises(DataError, match="already a fastMRI-layout file"):
        plan_conversion(tmp_path / "fastmri.h5")
    (tmp_path / "broken.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(DataError, match=r"broken\.h5: cannot open as HDF5"):
        plan_conversion(tmp_path / "broken.h5")
    (tmp_path / "broken.dat").write_bytes(b"\0" * 64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DataError, match=r"broken\.dat: cannot read as Siemens twix"):
            plan_conversion(tmp_path / "broken.dat")
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]  # one line only


def test_existing_output_is_never_overwritten(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "k.npy", (rng.standard_normal((2, 8, 8)) + 0j).astype(np.complex64))
    out = tmp_path / "out"
    out.mkdir()
    (out / "k.h5").write_bytes(b"user data")
    with pytest.raises(FileExistsError, match=r"k\.h5: exists; pass overwrite=true"):
        convert([tmp_path / "k.npy"], out, axes=["coil", "kx", "ky"])
    assert (out / "k.h5").read_bytes() == b"user data"
    assert sorted(p.name for p in out.iterdir()) == ["k.h5"]  # no temporary left behind
    convert([tmp_path / "k.npy"], out, overwrite=True, axes=["coil", "kx", "ky"])
    with h5py.File(out / "k.h5") as f:
        assert f["kspace"].shape == (1, 2, 8, 8)
