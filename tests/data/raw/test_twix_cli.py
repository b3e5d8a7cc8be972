"""The real Siemens twix files through the real commands, and de-identification."""

from __future__ import annotations

import h5py
import ismrmrd
import numpy as np
import pytest
from rawtools import EPI, GRE, GRE_IDENTIFIERS, cli, need, run

from unrolled.data.raw import convert


@pytest.mark.slow  # starts the real commands (~20 s each under load)
def test_convert_info_reconstruct_gre(tmp_path):
    """gre.dat -> fastMRI file -> unrolled-reconstruct (CG-SENSE) reads it unchanged."""
    res = run([cli("unrolled-convert"), f"inputs=[{GRE}]", "output_dir=scans"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert "gre.h5: kspace (1, 2, 160, 160), fully sampled" in res.stdout
    out = tmp_path / "scans" / "gre.h5"
    with h5py.File(out) as f:
        assert f["kspace"].shape == (1, 2, 160, 160)  # 320 readout samples, oversampling 2
        assert f["reconstruction_rss"].shape == (1, 160, 160)
        assert f.attrs["padding_left"] == 0 and f.attrs["padding_right"] == 160
        assert f["slice_position"].shape == (1, 3)
        # slice direction from the MDH quaternion = the protocol's slice normal
        np.testing.assert_allclose(
            np.abs(f["slice_dir"][0]), [0.0, 0.0383878, 0.9992630], atol=1e-5
        )
        np.testing.assert_allclose(f["slice_position"][0], [-2.5897, 53.9224, -53.9995], atol=1e-3)
        header = f["ismrmrd_header"][()]
    assert b"<fieldOfView_mm><x>200.0</x><y>200.0</y><z>4.0</z>" in header

    schema = ismrmrd.xsd.CreateFromDocument(header)  # a valid ISMRMRD header
    assert schema.encoding[0].reconSpace.matrixSize.x == 160
    assert schema.sequenceParameters.TE == [3.0] and schema.sequenceParameters.TR == [10.0]
    from fastmri.data import SliceDataset  # fastMRI's own loader reads it as a released file

    kspace, mask, target, attrs, fname, _ = SliceDataset(tmp_path / "scans", "multicoil")[0]
    assert kspace.shape == (2, 160, 160) and target.shape == (160, 160) and mask is None
    assert attrs["padding_left"] == 0 and attrs["padding_right"] == 160

    info = run([cli("unrolled-info"), GRE], tmp_path)
    assert info.returncode == 0, info.stderr
    assert "acquired columns 160 of 160" in info.stdout and "coils 2, slices 1" in info.stdout

    rec = run(
        [
            cli("unrolled-reconstruct"),
            "method=cg_sense",
            "input_dir=scans",
            "output_dir=recon_cg",
            "output_format=[h5,nifti,dicom]",
            "progress=false",
        ],
        tmp_path,
    )
    assert rec.returncode == 0, rec.stderr
    with h5py.File(tmp_path / "recon_cg" / "gre.h5") as f:
        image = f["reconstruction"][0]
    assert image.shape == (160, 160) and np.isfinite(image).all() and image.max() > 0
    import nibabel
    import pydicom

    # the export places it by the twix slice geometry: 200 mm / 160 px, 4 mm, oblique axial
    assert nibabel.load(tmp_path / "recon_cg" / "gre.nii.gz").header.get_zooms() == (
        1.25,
        1.25,
        4.0,
    )
    dicom = pydicom.dcmread(next((tmp_path / "recon_cg" / "gre_dicom").glob("*.dcm")))
    row, col = np.array(dicom.ImageOrientationPatient, dtype=float).reshape(2, 3)
    np.testing.assert_allclose(np.abs(np.cross(row, col)), [0.0, 0.0383878, 0.999263], atol=1e-5)

    ev = run([cli("unrolled-evaluate"), "target_dir=scans", "predictions_dir=recon_cg"], tmp_path)
    assert ev.returncode == 0, ev.stderr  # scored against the file's reconstruction_rss
    assert (tmp_path / "recon_cg" / "metrics.json").is_file() and "SSIM" in ev.stdout


@pytest.mark.slow  # starts the real commands (~20 s each under load)
def test_epi_refused_with_one_line(tmp_path):
    res = run([cli("unrolled-convert"), f"inputs=[{GRE},{EPI}]", "output_dir=conv"], tmp_path)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"error: {EPI}: not 2D Cartesian, refused: EPI (reflected readouts and "
        "phase-correction scans; ramp sampling needs regridding)"
    ]
    assert not (tmp_path / "conv").exists()  # gre.dat was fine, but nothing is written
    info = run([cli("unrolled-info"), EPI], tmp_path)
    assert info.returncode == 1 and "convert would refuse it" in info.stdout


def test_no_identifier_of_gre_survives(tmp_path):
    raw = GRE.read_bytes()
    for s in GRE_IDENTIFIERS:
        assert s in raw  # the test would catch them
    convert([GRE], tmp_path)
    data = (tmp_path / "gre.h5").read_bytes()
    assert [s for s in GRE_IDENTIFIERS if s in data] == []
    with h5py.File(tmp_path / "gre.h5") as f:
        pid = f.attrs["patient_id"]
    assert len(pid) == 64 and pid != "x" * 48
    convert([GRE], tmp_path / "again")
    with h5py.File(tmp_path / "again" / "gre.h5") as f:
        assert f.attrs["patient_id"] == pid  # stable pseudonym


FAKE = {
    "patientName": "Doe^Jane",
    "patientWeight_kg": "71.5",
    "patientID": "PID-93810455",
    "patientBirthdate": "1961-04-23",
    "patientGender": "F",
}
STUDY = {
    "studyDate": "2024-02-29",
    "studyTime": "13:37:00",
    "studyID": "ST-777123",
    "accessionNumber": "8844221",
    "referringPhysicianName": "Dr^Strangelove",
    "studyDescription": "Knee left",
    "studyInstanceUID": "1.2.826.0.1.3680043.9.7777.1",
}


def test_no_identifier_of_ismrmrd_survives(tmp_path):
    raw = tmp_path / "sl.h5"
    run(
        [need("ismrmrd_generate_cartesian_shepp_logan"), "-m", "32", "-c", "2", "-o", raw], tmp_path
    )
    dset = ismrmrd.Dataset(str(raw), "dataset", create_if_needed=False)
    xml = dset.read_xml_header().decode()
    subject = "".join(f"<{k}>{v}</{k}>" for k, v in FAKE.items())
    study = "".join(f"<{k}>{v}</{k}>" for k, v in STUDY.items())
    extra = (
        f"<subjectInformation>{subject}</subjectInformation>"
        f"<studyInformation>{study}</studyInformation>"
        "<measurementInformation><measurementID>45385_66327779_1</measurementID>"
        "<seriesDate>2024-02-29</seriesDate><patientPosition>HFS</patientPosition>"
        "<protocolName>t1_se</protocolName></measurementInformation>"
    )
    assert "<subjectInformation>" not in xml  # ismrmrd-tools 1.8 writes none: add ours
    i = xml.index("<acquisitionSystemInformation>")
    xml = xml[:i] + extra + xml[i:]
    xml = xml.replace(
        "</acquisitionSystemInformation>",
        "<stationName>MR-ROOM-3</stationName></acquisitionSystemInformation>",
    )
    dset.write_xml_header(xml.encode())
    dset.close()
    secrets = [v.encode() for v in [*FAKE.values(), *STUDY.values()] if len(v) > 2]
    secrets += [
        b"45385_66327779",
        b"MR-ROOM-3",
        b"ISMRM Synthetic Imaging Lab",
        b"ISMRMRDSheppLogan",
    ]

    convert([raw], tmp_path / "out")
    data = (tmp_path / "out" / "sl.h5").read_bytes()
    assert [s for s in secrets if s in data] == []
    with h5py.File(tmp_path / "out" / "sl.h5") as f:
        header = f["ismrmrd_header"][()]
    assert b"<protocolName>t1_se</protocolName>" in header and b"HFS" in header

    convert([raw], tmp_path / "kept", keep_identifiers=True)
    kept = (tmp_path / "kept" / "sl.h5").read_bytes()
    assert b"Doe^Jane" in kept and b"2024-02-29" in kept
    with h5py.File(tmp_path / "kept" / "sl.h5") as f:
        assert f.attrs["patient_id"] == "PID-93810455"
