"""Reading and validating single fastMRI files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from unrolled.data.errors import DataError
from unrolled.data.fastmri_io import read_slice, read_volume_info, validate_volume
from unrolled.data.header import build_ismrmrd_header

HEADER = build_ismrmrd_header((16, 12, 1), (8, 8, 1), 4)
KSPACE = np.ones((2, 4, 16, 12), dtype=np.complex64)


def test_multicoil_info_and_slice(make_fastmri_file):
    path = make_fastmri_file(num_slices=3, num_coils=4, height=16, width=12, recon=(8, 8))
    info = read_volume_info(path)
    assert (info.num_slices, info.num_coils, info.kspace_shape) == (3, 4, (3, 4, 16, 12))
    assert info.slice_shape == (4, 16, 12)
    assert info.encoding_size == (16, 12, 1) and info.recon_size == (8, 8, 1)
    assert (info.padding_left, info.padding_right) == (0, 12)
    assert info.recon_keys == ("reconstruction_rss",) and not info.has_mask
    assert info.attrs["acquisition"] == "CORPD_FBK" and isinstance(info.attrs["max"], float)
    assert info.fname == "file1000.h5" and info.crop_size == (8, 8)

    raw = read_slice(path, 1)
    with h5py.File(path) as hf:
        np.testing.assert_array_equal(raw.kspace.numpy(), hf["kspace"][1])
        np.testing.assert_array_equal(raw.target.numpy(), hf["reconstruction_rss"][1])
    assert raw.kspace.dtype == torch.complex64 and raw.kspace.shape == (4, 16, 12)
    assert raw.target.dtype == torch.float32 and raw.target.shape == (8, 8)
    assert raw.mask is None and raw.fname == "file1000.h5" and raw.slice_num == 1
    assert raw.attrs["recon_size"] == (8, 8, 1) and raw.attrs["padding_right"] == 12


def test_read_slice_accepts_open_file(make_fastmri_file):
    path = make_fastmri_file()
    with h5py.File(path) as hf:
        raw = read_slice(hf, 2)
    assert torch.equal(raw.kspace, read_slice(path, 2).kspace)


def test_slice_index_out_of_range(make_fastmri_file):
    with pytest.raises(IndexError):
        read_slice(make_fastmri_file(num_slices=3), 3)


def test_singlecoil(make_fastmri_file):
    path = make_fastmri_file(num_coils=None)
    info = read_volume_info(path)
    assert info.num_coils is None and info.slice_shape == (1, 16, 12)
    assert set(info.recon_keys) == {"reconstruction_rss", "reconstruction_esc"}
    raw = read_slice(path, 0)
    assert raw.kspace.shape == (1, 16, 12)
    with h5py.File(path) as hf:  # singlecoil reads the ESC reference by default
        np.testing.assert_array_equal(raw.target.numpy(), hf["reconstruction_esc"][0])
    rss = read_slice(path, 0, recon_key="reconstruction_rss")
    assert not torch.equal(rss.target, raw.target)


def test_test_set_file(make_fastmri_file):
    path = make_fastmri_file(test_set=True)
    info = read_volume_info(path)
    assert info.has_mask and info.recon_keys == ()
    assert info.attrs["acceleration"] == 3 and info.attrs["num_low_frequency"] == 4
    raw = read_slice(path, 0)
    assert raw.target is None and raw.mask.shape == (12,) and raw.mask.dtype == torch.float32
    assert torch.all((raw.kspace != 0).any(dim=(0, 1)) <= (raw.mask == 1))


def test_header_padding_and_attr_override(make_fastmri_file):
    info = read_volume_info(make_fastmri_file("a.h5", padding=(2, 10)))
    assert (info.padding_left, info.padding_right) == (2, 10)
    info = read_volume_info(
        make_fastmri_file("b.h5", attrs={"padding_left": 1, "padding_right": 11})
    )
    assert (info.padding_left, info.padding_right) == (1, 11)


def test_narrow_kspace_reference_allowed(write_h5):
    # fastMRI brain FLAIR files: k-space narrower than the recon matrix -> (W, W), as fastMRI
    header = build_ismrmrd_header((16, 6, 1), (8, 8, 1), 4)
    path = write_h5(
        kspace=np.ones((2, 4, 16, 6), np.complex64),
        ismrmrd_header=header,
        reconstruction_rss=np.ones((2, 6, 6), np.float32),
    )
    assert read_volume_info(path).crop_size == (6, 6)


def test_validate_volume_accepts_good_file(make_fastmri_file):
    assert validate_volume(make_fastmri_file()).num_slices == 3


# --- every kind of broken file -> one DataError naming the file and problem ---


def _kspace_with(index, value):
    kspace = KSPACE.copy()
    kspace[index] = value
    return kspace


BROKEN = {
    "missing kspace": ({"ismrmrd_header": HEADER}, "'kspace' is missing"),
    "rank 2": ({"kspace": KSPACE[0, 0], "ismrmrd_header": HEADER}, "rank 2"),
    "rank 5": ({"kspace": KSPACE[None], "ismrmrd_header": HEADER}, "rank 5"),
    "real dtype": ({"kspace": KSPACE.real, "ismrmrd_header": HEADER}, "dtype float32"),
    "zero size": ({"kspace": KSPACE[:0], "ismrmrd_header": HEADER}, "empty"),
    "missing header": ({"kspace": KSPACE}, "'ismrmrd_header' is missing"),
    "invalid header": ({"kspace": KSPACE, "ismrmrd_header": b"<ismrmrdHeader"}, "not valid XML"),
    "header without recon size": (
        {"kspace": KSPACE, "ismrmrd_header": HEADER.replace(b"reconSpace", b"otherSpace")},
        "reconSpace",
    ),
    "header not a string": (
        {"kspace": KSPACE, "ismrmrd_header": np.arange(3)},
        "invalid ismrmrd_header",
    ),
    "coil mismatch": (
        {"kspace": KSPACE, "ismrmrd_header": build_ismrmrd_header((16, 12, 1), (8, 8, 1), 8)},
        "coil count mismatch",
    ),
    "target shape": (
        {"kspace": KSPACE, "ismrmrd_header": HEADER, "reconstruction_rss": np.ones((2, 9, 8))},
        "'reconstruction_rss' has shape (2, 9, 8)",
    ),
    "target slices": (
        {"kspace": KSPACE, "ismrmrd_header": HEADER, "reconstruction_rss": np.ones((3, 8, 8))},
        "'reconstruction_rss' has shape (3, 8, 8)",
    ),
    "empty mask": (
        {"kspace": KSPACE, "ismrmrd_header": HEADER, "mask": np.zeros(12, np.float32)},
        "empty mask",
    ),
    "mask width": (
        {"kspace": KSPACE, "ismrmrd_header": HEADER, "mask": np.ones(10, np.float32)},
        "'mask' has shape (10,)",
    ),
}


def _assert_data_error(excinfo, path: Path, problem: str) -> None:
    message = str(excinfo.value)
    assert message.startswith(f"{path}: "), message
    assert problem in message, message
    assert "\n" not in message


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_layout(write_h5, case):
    datasets, problem = BROKEN[case]
    path = write_h5(**datasets)
    for read in (read_volume_info, lambda p: read_slice(p, 0), validate_volume):
        with pytest.raises(DataError) as excinfo:
            read(path)
        _assert_data_error(excinfo, path, problem)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_kspace(write_h5, value):
    path = write_h5(kspace=_kspace_with((1, 2, 3, 4), value), ismrmrd_header=HEADER)
    read_volume_info(path)  # structure is fine
    read_slice(path, 0)  # slice 0 is clean
    for read in (lambda p: read_slice(p, 1), validate_volume):
        with pytest.raises(DataError) as excinfo:
            read(path)
        _assert_data_error(excinfo, path, "kspace[1] contains NaN or Inf")


def test_non_finite_target(write_h5):
    target = np.ones((2, 8, 8), np.float32)
    target[0, 0, 0] = np.nan
    path = write_h5(kspace=KSPACE, ismrmrd_header=HEADER, reconstruction_rss=target)
    with pytest.raises(DataError) as excinfo:
        validate_volume(path)
    _assert_data_error(excinfo, path, "reconstruction_rss[0] contains NaN or Inf")


def test_not_hdf5(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("this is not an HDF5 file\n")
    with pytest.raises(DataError) as excinfo:
        read_volume_info(path)
    _assert_data_error(excinfo, path, "cannot open as HDF5")


def test_truncated_file(make_fastmri_file):
    path = make_fastmri_file(num_slices=8, height=32, width=32)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as excinfo:
        validate_volume(path)
    message = str(excinfo.value)
    assert message.startswith(f"{path}: ") and ("corrupt" in message or "truncated" in message)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.h5"
    with pytest.raises(DataError) as excinfo:
        read_slice(path, 0)
    _assert_data_error(excinfo, path, "no such file")


def test_metadata_matches_fastmri(make_fastmri_file, tmp_path):
    mri_data = pytest.importorskip("fastmri.data.mri_data")
    make_fastmri_file("file1.h5", width=12, seed=1)
    make_fastmri_file("file2.h5", width=14, padding=(2, 11), seed=2)
    make_fastmri_file("file3.h5", test_set=True, seed=3)
    make_fastmri_file("file4.h5", attrs={"padding_left": 1, "padding_right": 10}, seed=4)
    root = tmp_path / "data"
    theirs = mri_data.SliceDataset(root, challenge="multicoil").raw_samples
    ours = {p.name: read_volume_info(p) for p in sorted(root.iterdir())}
    assert len(theirs) == sum(v.num_slices for v in ours.values())
    for fname, slice_ind, meta in theirs:
        info = ours[fname.name]
        assert 0 <= slice_ind < info.num_slices
        assert info.metadata() == meta
        assert info.encoding_size == meta["encoding_size"]
        assert info.recon_size == meta["recon_size"]
        assert (info.padding_left, info.padding_right) == (
            meta["padding_left"],
            meta["padding_right"],
        )
        assert read_slice(info.path, slice_ind).attrs == {**meta}
