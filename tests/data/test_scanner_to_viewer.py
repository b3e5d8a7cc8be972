"""From the scanner to the viewer: the README's "Your own scanner data" commands on gre.dat.

The real Siemens raw file goes through the installed console scripts exactly as the README
shows them (convert, info, CG-SENSE and zero-shot reconstructions written as HDF5, NIfTI and
DICOM), then tools we did not write check the outputs: ``twixtools`` reads the slice
geometry of the raw file's protocol independently, ``dcm2niix`` converts our DICOM series
into a NIfTI that must equal ours, and ``dciodvfy`` (dicom3tools) must report no error.
"""

from __future__ import annotations

import gzip
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pydicom
import pytest
from raw.rawtools import GRE, GRE_IDENTIFIERS, cli, run

pytestmark = pytest.mark.slow

# gre.dat's protocol (twixtools): 200 x 200 mm field of view, 160 x 160 recon matrix, 4 mm.
PIXEL_MM = 200.0 / 160
THICKNESS_MM = 4.0

README = Path(__file__).resolve().parents[2] / "README.md"
TINY_SCHEDULE = {"method.max_steps": "10", "method.time_budget_s": "60"}
"""The zero-shot schedule of the test (the README's 60 steps take ~100 s on one thread)."""


def readme_commands() -> list[list[str]]:
    """The commands of the README's "Your own scanner data" block, as a shell splits them."""
    text = README.read_text()
    section = text[text.index("## Your own scanner data") :]
    block = section[section.index("```bash") + len("```bash") : section.index("```\n", 8)]
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            commands.append(shlex.split(line))
    return commands


def _tiny(args: list[str]) -> list[str]:
    out = [a for a in args if a.split("=", 1)[0] not in TINY_SCHEDULE]
    if "method=zeroshot" in args:
        out += [f"{k}={v}" for k, v in TINY_SCHEDULE.items()]
        out += ["method.val_every=5", "method.warmup_steps=2"]
    return out


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A scratch folder after the README's commands ran; the output of each, by name."""
    root = tmp_path_factory.mktemp("scanner_to_viewer")
    (root / "tests/fixtures/siemens_twix").mkdir(parents=True)  # the README's relative path
    shutil.copy(GRE, root / "tests/fixtures/siemens_twix/gre.dat")
    outputs: dict[str, str] = {}
    commands = readme_commands()
    scripts = [c[0] for c in commands]
    assert scripts == [
        "unrolled-info",
        "unrolled-convert",
        "unrolled-info",
        "unrolled-reconstruct",
        "unrolled-reconstruct",
        "unrolled-evaluate",
    ], commands
    for script, *args in commands:
        res = run([cli(script), *_tiny(args)], root, timeout=900)
        assert res.returncode == 0, f"{script} {args}: {res.stdout}\n{res.stderr}"
        method = next((a.split("=")[1] for a in args if a.startswith("method=")), None)
        key = method or (
            "info_raw"
            if "info_raw" not in outputs and script.endswith("info")
            else script.removeprefix("unrolled-")
        )
        outputs[key] = res.stdout + res.stderr
    return root, outputs


def test_commands_print_what_the_readme_shows(scratch):
    root, out = scratch
    assert "convert would write gre.h5: kspace (1, 2, 160, 160)" in out["info_raw"]
    assert "gre.h5: kspace (1, 2, 160, 160), fully sampled" in out["convert"]
    assert "de-identified" in out["convert"]
    info = out["info"]
    assert "format: fastMRI HDF5 (converted from Siemens twix" in info
    assert "kspace (1, 2, 160, 160), coils 2, slices 1" in info
    assert "geometry: slice 0 centre [-2.59, 53.92, -54.0] mm (LPS)" in info
    assert "with cg_sense" in out["cg_sense"] and "as h5, nifti, dicom" in out["cg_sense"]
    assert "with zeroshot" in out["zeroshot"] and "as h5, nifti, dicom" in out["zeroshot"]
    assert "stopped at step 10 (max_steps)" in out["zeroshot"]
    assert re.search(r"PSNR", out["evaluate"]), out["evaluate"]
    assert sorted(p.name for p in (root / "recon_cg").iterdir()) == [
        "gre.h5",
        "gre.nii.gz",
        "gre_dicom",
    ]
    names = sorted(p.name for p in (root / "recon_zs").iterdir())
    assert names == [  # reconstructions, the fit's curves, unrolled-evaluate's scores
        "gre.h5",
        "gre.nii.gz",
        "gre_curves.csv",
        "gre_curves.png",
        "gre_dicom",
        "metrics.json",
        "metrics_per_volume.csv",
    ]


def test_nifti_holds_the_hdf5_reconstruction(scratch):
    root, _ = scratch
    with h5py.File(root / "recon_cg" / "gre.h5") as f:
        recon = f["reconstruction"][()]  # (slices, rows, columns)
    ours = nib.load(root / "recon_cg" / "gre.nii.gz")
    assert recon.shape == (1, 160, 160)
    np.testing.assert_array_equal(np.asarray(ours.dataobj), recon.transpose(2, 1, 0))
    assert ours.header.get_zooms() == pytest.approx((PIXEL_MM, PIXEL_MM, THICKNESS_MM))


@pytest.mark.parametrize("method", ["cg", "zs"])
def test_dcm2niix_of_our_dicom_equals_our_nifti(scratch, method, tmp_path):
    if shutil.which("dcm2niix") is None:
        pytest.skip("dcm2niix not installed (Debian package dcm2niix; .ci/debian-packages.txt)")
    root, _ = scratch
    folder = root / f"recon_{method}"
    run_ = subprocess.run(
        ["dcm2niix", "-z", "y", "-b", "n", "-f", "converted", "-o", str(tmp_path)]
        + [str(folder / "gre_dicom")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run_.returncode == 0, run_.stdout + run_.stderr
    (path,) = tmp_path.glob("converted*.nii.gz")
    ours = nib.as_closest_canonical(nib.load(folder / "gre.nii.gz"))
    theirs = nib.as_closest_canonical(nib.load(path))
    slope = float(pydicom.dcmread(folder / "gre_dicom" / "IM_0001.dcm").RescaleSlope)
    assert theirs.header.get_zooms() == pytest.approx((PIXEL_MM, PIXEL_MM, THICKNESS_MM))
    np.testing.assert_allclose(theirs.affine, ours.affine, atol=1e-3)  # mm
    diff = np.abs(theirs.get_fdata() - ours.get_fdata()).max() / slope
    print(f"{method}: dcm2niix vs ours: max |difference| = {diff:.4f} rescale steps")
    # half a step of rounding, plus dcm2niix's float32 copy of the slope (65535 steps)
    assert diff <= 0.5 + 65535 * 2.0**-23


def test_dicom_geometry_is_the_raw_files_protocol(scratch):
    """Positions and orientation against twixtools' reading of gre.dat's protocol and MDH."""
    import twixtools

    root, _ = scratch
    meas = twixtools.read_twix(str(GRE), verbose=False, parse_geometry=True)[-1]
    protocol = meas["hdr"]["MeasYaps"]["sSliceArray"]["asSlice"][0]
    centre = np.array([protocol["sPosition"].get(k, 0.0) for k in ("dSag", "dCor", "dTra")])
    normal = np.array([protocol["sNormal"].get(k, 0.0) for k in ("dSag", "dCor", "dTra")])
    prs = meas["geometry"][0].prs_to_pcs()  # columns: phase, readout, slice (LPS)
    for method in ("cg", "zs"):
        ds = pydicom.dcmread(root / f"recon_{method}" / "gre_dicom" / "IM_0001.dcm")
        row, col = np.array(ds.ImageOrientationPatient, dtype=float).reshape(2, 3)
        # rows of our arrays follow the readout: along a row = phase, down a column = readout
        np.testing.assert_allclose(row, prs[:, 0], atol=1e-6)
        np.testing.assert_allclose(col, prs[:, 1], atol=1e-6)
        np.testing.assert_allclose(np.abs(np.cross(row, col) @ normal), 1.0, atol=1e-6)
        spacing = np.array(ds.PixelSpacing, dtype=float)  # (between rows, between columns)
        assert spacing == pytest.approx([PIXEL_MM, PIXEL_MM])
        assert float(ds.SliceThickness) == pytest.approx(protocol["dThickness"])
        assert (ds.Rows, ds.Columns) == (160, 160)
        # ImagePositionPatient: centre of the first pixel; the slice centre is the pixel
        # (rows // 2, columns // 2) of a centred FFT
        first = np.array(ds.ImagePositionPatient, dtype=float)
        at_centre = first + 80 * spacing[0] * col + 80 * spacing[1] * row
        print(f"{method}: slice centre from DICOM {at_centre}, protocol {centre}")
        np.testing.assert_allclose(at_centre, centre, atol=1e-3)  # mm (MDH is float32)


def test_dciodvfy_reports_no_error(scratch):
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy not installed (Debian package dicom3tools)")
    root, _ = scratch
    for path in sorted(root.glob("recon_*/gre_dicom/*.dcm")):
        res = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
        errors = [line for line in (res.stdout + res.stderr).splitlines() if "Error" in line]
        assert errors == [], f"{path}: {errors}"


def test_no_identifying_string_of_the_raw_header_in_any_output(scratch):
    root, _ = scratch
    files = [p for d in ("scans", "recon_cg", "recon_zs") for p in (root / d).rglob("*")]
    files = [p for p in files if p.is_file()]
    assert len(files) >= 8
    for path in files:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        if path.suffix == ".dcm":  # new random UIDs may hold any 5 digits by chance
            uids = [e.value for e in pydicom.dcmread(path).iterall() if e.VR == "UI"]
            assert not any(u.startswith("1.3.12.2.1107") for u in uids), uids  # Siemens' root
            for uid in uids:
                data = data.replace(str(uid).encode(), b"")
        found = [s for s in GRE_IDENTIFIERS if s in data]
        assert found == [], f"{path.relative_to(root)} holds {found}"
    assert re.search(rb"DZNE", GRE.read_bytes())  # the check can fail: the input has them
