"""Our DICOM and NIfTI exports, checked by tools we did not write: dcm2niix and dciodvfy.

``dcm2niix`` (Debian package dcm2niix) converts our DICOM series into NIfTI; its voxel
size, orientation (affine, compared in the closest canonical RAS orientation, since
dcm2niix flips rows) and values must equal our own NIfTI export, the values within the
rescale quantisation (half a ``RescaleSlope``). ``dciodvfy`` (Debian package dicom3tools)
must report no error on any file. Tests skip with a reason where a tool is missing.
"""

import shutil
import subprocess

import nibabel as nib
import numpy as np
import pydicom
import pytest

from unrolled.data.export.dicom import write_dicom_series
from unrolled.data.export.geometry import volume_geometry
from unrolled.data.export.nifti import write_nifti
from unrolled.data.header import build_ismrmrd_header

XML = (
    build_ismrmrd_header((128, 48, 1), (64, 48, 1), 4, (240.0, 90.0, 4.0))
    .decode()
    .replace(
        "</ismrmrdHeader>",
        "<sequenceParameters><TR>2500</TR><TE>95</TE><flipAngle_deg>90</flipAngle_deg>"
        "</sequenceParameters></ismrmrdHeader>",
    )
)


def _volume(shape=(5, 64, 48), seed=0):
    """A magnitude volume at fastMRI's scale (~1e-4) with an asymmetric marker per slice."""
    rng = np.random.default_rng(seed)
    vol = rng.gamma(2.0, 2e-5, size=shape).astype(np.float32)
    for k in range(shape[0]):
        vol[k, 3 + k : 9 + k, 2:5] = 4e-4  # top-left, moving down: catches flips and order
    return vol


def _oblique_positions(num_slices):
    t = np.deg2rad(20)
    read = np.array([0, np.cos(t), np.sin(t)])
    phase = np.array([np.cos(0.3), 0, -np.sin(0.3)])
    phase -= read * (phase @ read)
    phase /= np.linalg.norm(phase)
    normal = np.cross(phase, read)
    centres = np.array([12.0, -30.0, 25.0]) + np.arange(num_slices)[:, None] * 4.5 * normal
    return {
        "slice_position": centres,
        "read_dir": np.tile(read, (num_slices, 1)),
        "phase_dir": np.tile(phase, (num_slices, 1)),
    }


def _export(tmp_path, positions=None):
    vol = _volume()
    geometry = volume_geometry(XML, vol.shape, positions)
    write_nifti(tmp_path / "ours.nii.gz", vol, geometry, "test")
    files = write_dicom_series(
        tmp_path / "dicom",
        vol,
        geometry,
        method="cg_sense",
        patient_id="anon-0123456789abcdef",
        series_description="unrolled cg_sense file1",
        header_xml=XML,
    )
    return vol, geometry, files


def _dcm2niix(src, out_dir):
    if shutil.which("dcm2niix") is None:
        pytest.skip("dcm2niix not installed (Debian package dcm2niix; .ci/debian-packages.txt)")
    out_dir.mkdir()
    run = subprocess.run(
        ["dcm2niix", "-z", "y", "-b", "n", "-f", "converted", "-o", str(out_dir), str(src)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    (path,) = out_dir.glob("converted*.nii.gz")
    return nib.load(path), run.stdout


@pytest.mark.parametrize("oblique", [False, True], ids=["default_axial", "oblique_from_file"])
def test_dcm2niix_of_our_dicom_equals_our_nifti(tmp_path, oblique):
    positions = _oblique_positions(5) if oblique else None
    vol, geometry, files = _export(tmp_path, positions)
    ours = nib.load(tmp_path / "ours.nii.gz")
    theirs, log = _dcm2niix(tmp_path / "dicom", tmp_path / "d2n")
    slope = float(pydicom.dcmread(files[0]).RescaleSlope)

    assert ours.header.get_zooms() == pytest.approx(theirs.header.get_zooms(), abs=1e-5)
    # in-plane: reconSpace FOV / matrix; through-plane: the slice spacing (thickness 4 mm;
    # 4.5 mm apart in the oblique file's positions)
    spacing = 4.5 if oblique else 4.0
    assert ours.header.get_zooms() == pytest.approx((240 / 128, 90 / 48, spacing))
    assert ours.get_qform(coded=True)[1] == ours.get_sform(coded=True)[1] == 1
    a, b = nib.as_closest_canonical(ours), nib.as_closest_canonical(theirs)
    affine_diff = np.abs(a.affine - b.affine).max()
    value_diff = np.abs(a.get_fdata() - b.get_fdata()).max()
    print(
        f"\n{'oblique' if oblique else 'axial'}: voxel {theirs.header.get_zooms()} mm, "
        f"max |affine diff| {affine_diff:.2e} mm, max |value diff| {value_diff:.3e} "
        f"= {value_diff / slope:.3f} x RescaleSlope {slope:.4e}"
    )
    assert affine_diff < 1e-3  # DICOM decimal strings: 16 characters
    # half a rescale step, plus dcm2niix's float32 copy of the slope (2^-24 relative)
    assert value_diff <= slope / 2 + float(vol.max()) * 2.0**-23
    # our NIfTI holds the volume exactly, float32, as (columns, rows, slices)
    assert ours.get_data_dtype() == np.float32
    np.testing.assert_array_equal(np.asarray(ours.dataobj), vol.transpose(2, 1, 0))


def test_dicom_files_hold_what_the_brief_asks_and_nothing_identifying(tmp_path):
    vol, geometry, files = _export(tmp_path, _oblique_positions(5))
    sets = [pydicom.dcmread(f) for f in files]
    ds = sets[0]
    assert ds.SOPClassUID == pydicom.uid.MRImageStorage and ds.Modality == "MR"
    assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert "unrolled" in ds.ImageComments and "cg_sense" in ds.DerivationDescription
    assert ds.PatientName == "Anonymous^" and ds.PatientID == "anon-0123456789abcdef"
    assert not ds.PatientBirthDate and not ds.StudyDate
    assert (ds.BitsAllocated, ds.PixelRepresentation, float(ds.RescaleIntercept)) == (16, 0, 0)
    assert float(ds.RepetitionTime) == 2500 and float(ds.EchoTime) == 95
    assert len({d.SOPInstanceUID for d in sets}) == len(files)
    assert (
        len({(d.SeriesInstanceUID, d.StudyInstanceUID, d.FrameOfReferenceUID) for d in sets}) == 1
    )
    slope = float(ds.RescaleSlope)
    for k, d in enumerate(sets):
        np.testing.assert_allclose(
            d.pixel_array * slope, vol[k], atol=slope / 2 * (1 + 1e-6), rtol=0
        )
        np.testing.assert_allclose(
            [float(v) for v in d.ImagePositionPatient], geometry.positions_lps[k], atol=1e-6
        )
    # window: 0 to the 99.5th percentile (fastMRI's values are small: a LINEAR_EXACT VOI LUT)
    assert float(ds.WindowCenter) * 2 == pytest.approx(float(ds.WindowWidth), rel=1e-6)
    assert ds.VOILUTFunction == "LINEAR_EXACT"


def test_dciodvfy_reports_no_error(tmp_path):
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy not installed (Debian package dicom3tools; .ci/debian-packages.txt)")
    _, _, files = _export(tmp_path, _oblique_positions(5))
    warnings = set()
    for f in files:
        run = subprocess.run(["dciodvfy", str(f)], capture_output=True, text=True, timeout=60)
        lines = (run.stdout + run.stderr).splitlines()
        errors = [line for line in lines if line.startswith("Error")]
        assert not errors, f"{f.name}: {errors}"
        warnings.update(line for line in lines if line.startswith("Warning"))
    print("\ndciodvfy warnings:\n" + "\n".join(sorted(warnings)))
    # the only warnings: no study date/time (not written: dates may identify), rescale
    # attributes that the MR IOD does not list (the brief asks for them), empty laterality
    for w in warnings:
        assert any(
            s in w
            for s in (
                "Study Date",
                "Study Time",
                "Modality LUT",
                "Rescale",
                "Standard Extended",
                "Laterality",
            )
        ), w
