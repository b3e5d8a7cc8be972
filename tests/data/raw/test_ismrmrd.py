"""ISMRMRD files made by the reference tool ``ismrmrd_generate_cartesian_shepp_logan``."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from rawtools import cli, need, run

from unrolled.data.fastmri_io import read_slice, read_volume_info
from unrolled.data.raw import convert, plan_conversion
from unrolled.data.raw.assemble import noise_covariance, prewhitening_matrix
from unrolled.data.raw.convert import read_raw
from unrolled.data.transforms import UnrolledTransform


def _generate(tmp_path, name: str, *options: str):
    path = tmp_path / name
    run([need("ismrmrd_generate_cartesian_shepp_logan"), *options, "-o", path], tmp_path)
    return path


def test_fully_sampled_matches_ismrmrd_recon_cartesian_2d(tmp_path):
    """8 coils, readout oversampling 2, noise scan: same image as the reference recon.

    ``ismrmrd_recon_cartesian_2d`` (ismrmrd 1.8) grids every acquisition by
    ``kspace_encode_step_1``, runs an unnormalised FFTW backward 2D FFT with
    fftshifts, crops the readout to the recon matrix and takes the RSS over coils;
    it writes ``dataset/cpp/data`` ``(1, 1, 1, y, x)``. Ours is orthonormal, so
    the two differ by ``sqrt(H_enc * W)`` exactly.
    """
    raw = _generate(tmp_path, "full.h5", "-m", "128", "-c", "8", "-O", "2", "-C")
    reference = tmp_path / "reference.h5"
    reference.write_bytes(raw.read_bytes())
    run([need("ismrmrd_recon_cartesian_2d"), reference], tmp_path)
    with h5py.File(reference) as f:
        ref = f["dataset/cpp/data"][:].reshape(128, 128).T  # (x, y)

    convert([raw], tmp_path / "out", prewhiten=False)  # the reference does not prewhiten
    with h5py.File(tmp_path / "out" / "full.h5") as f:
        ours = f["reconstruction_rss"][0]
        assert f["kspace"].shape == (1, 8, 128, 128)  # oversampling 256 -> 128 removed
        assert "mask" not in f and f.attrs["max"] == pytest.approx(float(ours.max()))
    rel = np.linalg.norm(ours * np.sqrt(256 * 128) - ref) / np.linalg.norm(ref)
    assert rel < 1e-3, rel
    info = read_volume_info(tmp_path / "out" / "full.h5")
    assert info.encoding_size == (128, 128, 1) and info.recon_size == (128, 128, 1)


@pytest.mark.slow  # starts the real commands (~20 s each under load)
def test_undersampled_repetitions_calibration_and_prewhitening(tmp_path):
    """Acceleration 2 with 16 calibration lines, 2 repetitions, noise scan."""
    raw = _generate(
        tmp_path, "acc.h5", "-m", "64", "-c", "8", "-O", "2", "-r", "2", "-a", "2", "-w", "16", "-C"
    )
    plan = plan_conversion(raw)
    # the tool interleaves: repetition index r * acc + a, each a different half of the lines
    assert [f.name for f in plan.files] == [f"acc_rep{i}.h5" for i in range(4)]
    assert plan.assembly.prewhitened and plan.assembly.calibration_lines == 8
    convert([raw], tmp_path / "out")
    for i, f in enumerate(plan.files):
        mask = f.datasets["mask"]
        lines = np.flatnonzero(mask)
        calib = set(range(24, 40))  # -w 16: lines 32 - 8 ... 32 + 7, merged
        assert calib <= set(lines.tolist())
        assert set(lines.tolist()) - calib == set(range(i % 2, 64, 2)) - calib
        assert f.attrs["acceleration"] == 2.0 and f.attrs["num_low_frequency"] == 17
        path = tmp_path / "out" / f.name
        sample = UnrolledTransform()(read_slice(path, 0))  # the dataset reads it unchanged
        assert tuple(sample.kspace.shape) == (8, 64, 64)
        assert int(sample.num_low_frequencies) == 17
        assert float(sample.mask[0, 0].sum()) == mask.sum()

    info = run([cli("unrolled-info"), tmp_path / "out" / "acc_rep0.h5"], tmp_path)
    # 40 of 64 columns: 1.6x measured (the calibration lines add to the 2x pattern)
    assert (
        "acquired columns 40 of 64, acceleration 1.60 (nominal 2), calibration width 17"
        in info.stdout
    )
    rec = run(
        [cli("unrolled-reconstruct"), "method=cg_sense", "input_dir=out", "output_dir=rec"],
        tmp_path,
    )
    assert rec.returncode == 0, rec.stderr  # the stored masks are used as they are
    with h5py.File(tmp_path / "rec" / "acc_rep3.h5") as f:
        assert f["reconstruction"].shape == (1, 64, 64) and f.attrs["acceleration"] == 2.0

    # prewhitening makes the noise scan's covariance the identity
    scan = read_raw(raw)
    psi = noise_covariance(scan)
    w = prewhitening_matrix(psi, raw)
    np.testing.assert_allclose(w @ psi @ w.conj().T, np.eye(8), atol=1e-10)


def test_averages_kept_apart_for_fusion(tmp_path):
    """Two repetitions of the same lines stand in for averages: separate -> stacked layout."""
    from unrolled.data.acquisitions import open_acquisitions

    raw = _generate(tmp_path, "avg.h5", "-m", "32", "-c", "4", "-O", "2", "-r", "2")
    import ismrmrd

    # turn the repetition counter into the average counter (same scan, two averages)
    dset = ismrmrd.Dataset(str(raw), "dataset", create_if_needed=False)
    acqs = [dset.read_acquisition(i) for i in range(dset.number_of_acquisitions())]
    dset.close()
    out = tmp_path / "avg2.h5"
    new = ismrmrd.Dataset(str(out), "dataset", create_if_needed=True)
    new.write_xml_header(open_xml(raw))
    for a in acqs:
        a.idx.average, a.idx.repetition = a.idx.repetition, 0
        new.append_acquisition(a)
    new.close()
    mean = plan_conversion(out).files
    apart = plan_conversion(out, averages="separate").files
    assert len(mean) == 1 and mean[0].datasets["kspace"].shape == (1, 4, 32, 32)
    stacked = apart[0].datasets["kspace"]
    assert stacked.shape == (2, 1, 4, 32, 32)
    np.testing.assert_allclose(stacked.mean(0), mean[0].datasets["kspace"], atol=1e-6)
    convert([out], tmp_path / "fuse", averages="separate")
    aset = open_acquisitions([tmp_path / "fuse" / "avg2.h5"])
    assert aset.num_acquisitions == 2 and aset.slice_shape == (4, 32, 32)


def open_xml(path) -> bytes:
    with h5py.File(path) as f:
        return f["dataset/xml"][0]
