"""unrolled-reconstruct output_format=[h5,nifti,dicom]: what a user gets, all or nothing."""

import hashlib
import shutil
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pydicom
import pytest
from helpers.common import run_cli

SECRET = "Doe^Jane-19700101"  # the input's patient_id: must not reach any output


pytestmark = pytest.mark.usefixtures("one_thread_module")


def _main(cwd, *overrides):
    """``unrolled-reconstruct`` in this process: ``(exit status, stdout, stderr)``."""
    return run_cli("reconstruct", cwd / "hydra", "progress=false", "method=zero_filled", *overrides)


@pytest.fixture
def inputs(tiny_root, tmp_path):
    """The tiny validation volume (2 slices, 64 x 64 recon) with an identifying patient_id."""
    d = tmp_path / "in"
    d.mkdir()
    (src,) = sorted((tiny_root / "val").glob("*.h5"))
    shutil.copy(src, d / src.name)
    with h5py.File(d / src.name, "a") as f:
        f.attrs["patient_id"] = SECRET
    return d


def _listing(directory: Path):
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def test_all_three_formats_agree_and_carry_no_identifier(inputs, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = _main(
        tmp_path, f"input_dir={inputs}", f"output_dir={out}", "output_format=[h5,nifti,dicom]"
    )
    assert code == 0, stderr
    assert "as h5, nifti, dicom" in stdout
    (name,) = [p.name for p in inputs.glob("*.h5")]
    stem = Path(name).stem
    dicoms = [f"{stem}_dicom/IM_000{k}.dcm" for k in (1, 2)]
    assert _listing(out) == sorted([name, f"{stem}.nii.gz", f"{stem}_dicom", *dicoms])
    with h5py.File(out / name) as f:
        recon = f["reconstruction"][()]  # (S, h, w)
    nii = nib.load(out / f"{stem}.nii.gz")
    np.testing.assert_array_equal(np.asarray(nii.dataobj), recon.transpose(2, 1, 0))
    ds = [pydicom.dcmread(out / p) for p in dicoms]
    slope = float(ds[0].RescaleSlope)
    for k, d in enumerate(ds):
        np.testing.assert_allclose(d.pixel_array * slope, recon[k], atol=slope / 2 * 1.0001)
    assert ds[0].PatientID == "anon-" + hashlib.sha256(SECRET.encode()).hexdigest()[:16]
    assert "zero_filled" in ds[0].ImageComments
    for path in out.rglob("*"):  # neither the name nor any part of the ID
        if path.is_file():
            data = path.read_bytes()
            assert SECRET.encode() not in data and b"Doe" not in data, path


def test_existing_outputs_are_refused_before_any_work_and_overwrite_replaces(inputs, tmp_path):
    out = tmp_path / "out"
    (name,) = [p.name for p in inputs.glob("*.h5")]
    stem = Path(name).stem
    mine = out / f"{stem}_dicom"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    code, _, stderr = _main(
        tmp_path, f"input_dir={inputs}", f"output_dir={out}", "output_format=[nifti,dicom]"
    )
    assert code == 1 and stderr.count("\n") == 1
    assert f"{stem}_dicom" in stderr and "overwrite=true" in stderr
    assert _listing(out) == [f"{stem}_dicom", f"{stem}_dicom/notes.txt"]  # nothing else
    code, _, stderr = _main(
        tmp_path,
        f"input_dir={inputs}",
        f"output_dir={out}",
        "output_format=[nifti,dicom]",
        "overwrite=true",
    )
    assert code == 0, stderr
    assert _listing(out) == sorted(  # no h5 (not asked), no staging left, old series replaced
        [
            f"{stem}.nii.gz",
            f"{stem}_dicom",
            f"{stem}_dicom/IM_0001.dcm",
            f"{stem}_dicom/IM_0002.dcm",
        ]
    )


def test_bad_format_and_bad_geometry_are_one_line_and_write_nothing(inputs, tmp_path):
    out = tmp_path / "out"
    code, _, stderr = _main(
        tmp_path, f"input_dir={inputs}", f"output_dir={out}", "output_format=png"
    )
    assert code == 1 and stderr.strip().splitlines() == [
        "error: output_format: expected h5, nifti, dicom or a list of them, got 'png'"
    ]
    (path,) = inputs.glob("*.h5")
    with h5py.File(path, "a") as f:  # slice positions that are not a regular grid
        f["slice_position"] = np.array([[0, 0, 0], [0, 0, 3.0]])
    code, _, stderr = _main(
        tmp_path, f"input_dir={inputs}", f"output_dir={out}", "output_format=nifti"
    )
    assert code == 1 and stderr.count("\n") == 1
    assert path.name in stderr and "lacks phase_dir, read_dir" in stderr
    assert not out.exists()
