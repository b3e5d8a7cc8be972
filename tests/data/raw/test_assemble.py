"""Gridding of readouts: partial Fourier, asymmetric echo, prewhitening, oversampling, refusals."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from rawtools import need, run

from unrolled.data.header import build_ismrmrd_header
from unrolled.data.raw import RefusedScan, plan_conversion
from unrolled.data.raw.assemble import assemble, remove_readout_oversampling
from unrolled.data.raw.scan import RawScan, Readout


def _scan(readouts, encoded=(16, 16, 1), recon=(16, 16, 1), center_line=8, max_line=15, **kw):
    return RawScan(
        path=Path("synthetic.dat"),
        format="test",
        header_xml=build_ismrmrd_header(encoded, recon, readouts[0].data.shape[0]),
        encoded_size=encoded,
        recon_size=recon,
        center_line=center_line,
        max_line=max_line,
        readouts=readouts,
        **kw,
    )


def _data(rng, coils, samples):
    return (
        rng.standard_normal((coils, samples)) + 1j * rng.standard_normal((coils, samples))
    ).astype(np.complex64)


def test_partial_fourier_and_asymmetric_echo_placed_by_their_centres():
    """Lines 0..10 with centre line 5 (6/8 partial Fourier), 12 samples with centre 4."""
    rng = np.random.default_rng(0)
    data = {line: _data(rng, 2, 12) for line in range(11)}
    readouts = [Readout(data=d, line=line, center_sample=4) for line, d in data.items()]
    asm = assemble(_scan(readouts, center_line=5, max_line=10), prewhiten=False)
    kspace = asm.volumes[0].kspace[0]  # (C, H, W)
    for line, d in data.items():
        col = line - 5 + 8
        np.testing.assert_array_equal(kspace[:, 4:16, col], d)  # centre sample at row 8
        assert not kspace[:, :4, col].any()  # the echo's missing start stays zero
    assert not kspace[:, :, :3].any() and not kspace[:, :, 14:].any()
    np.testing.assert_array_equal(np.flatnonzero(asm.volumes[0].mask), np.arange(3, 14))


def test_padding_from_the_encoding_limits_and_fully_sampled(monkeypatch):
    """Partial Fourier lines 0..10 of 16 (centre 5): padding [3, 14), still 'fully sampled'."""
    import importlib

    convert_module = importlib.import_module("unrolled.data.raw.convert")  # not the function

    rng = np.random.default_rng(1)
    readouts = [Readout(data=_data(rng, 2, 16), line=line, center_sample=8) for line in range(11)]
    scan = _scan(readouts, center_line=5, max_line=10)
    monkeypatch.setattr(convert_module, "read_raw", lambda path, axes: scan)
    planned = plan_conversion("synthetic.dat").files[0]
    assert planned.attrs["padding_left"] == 3 and planned.attrs["padding_right"] == 14
    assert "reconstruction_rss" in planned.datasets and "mask" not in planned.datasets
    readouts.pop(4)  # one line missing inside the limits: undersampled, challenge-style
    planned = plan_conversion("synthetic.dat").files[0]
    assert "mask" in planned.datasets and planned.attrs["acceleration"] == round(16 / 10, 2)


def test_prewhitening_uses_noise_covariance_scaled_by_dwell_time():
    rng = np.random.default_rng(2)
    mix = np.array([[1.0, 0.0], [0.6, 0.8]])  # correlated coils
    noise = (mix @ _data(rng, 2, 20000)).astype(np.complex64)
    signal = [Readout(data=_data(rng, 2, 16), line=line, center_sample=8) for line in range(16)]
    scan = _scan(signal, noise=[noise], noise_dwell_us=2.0, data_dwell_us=1.0)
    asm = assemble(scan)
    psi = noise @ noise.conj().T / noise.shape[1] * 2.0  # half the dwell: twice the variance
    np.testing.assert_allclose(asm.noise_covariance, psi, rtol=1e-5)
    lower_inv = np.linalg.inv(np.linalg.cholesky(psi))
    raw = assemble(scan, prewhiten=False).volumes[0].kspace
    np.testing.assert_allclose(
        asm.volumes[0].kspace, np.einsum("dc,scxy->sdxy", lower_inv, raw), rtol=1e-4, atol=1e-5
    )
    assert asm.prewhitened


def test_oversampling_removal_crops_the_image():
    rng = np.random.default_rng(3)
    k = _data(rng, 3, 32 * 8).reshape(3, 32, 8)
    image = np.fft.fftshift(
        np.fft.ifft(np.fft.ifftshift(k, axes=-2), axis=-2, norm="ortho"), axes=-2
    )
    cropped = remove_readout_oversampling(k, 16)
    back = np.fft.fftshift(
        np.fft.ifft(np.fft.ifftshift(cropped, axes=-2), axis=-2, norm="ortho"), axes=-2
    )
    np.testing.assert_allclose(back, image[:, 8:24], atol=1e-5)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (
            ("<trajectory>cartesian</trajectory>", "<trajectory>radial</trajectory>"),
            "trajectory 'radial'",
        ),
        (("<z>1</z>", "<z>16</z>"), "3D encoding (encoded matrix z = 16)"),
    ],
)
def test_non_cartesian_ismrmrd_refused(tmp_path, edit, reason):
    import ismrmrd

    raw = tmp_path / "scan.h5"
    run(
        [need("ismrmrd_generate_cartesian_shepp_logan"), "-m", "16", "-c", "2", "-o", raw], tmp_path
    )
    dset = ismrmrd.Dataset(str(raw), "dataset", create_if_needed=False)
    xml = dset.read_xml_header().decode()
    assert edit[0] in xml
    dset.write_xml_header(xml.replace(edit[0], edit[1], 1).encode())
    dset.close()
    with pytest.raises(RefusedScan) as e:
        plan_conversion(raw)
    assert str(e.value) == f"{raw}: not 2D Cartesian, refused: {reason}"
    with h5py.File(raw) as f:
        assert "kspace" not in f
