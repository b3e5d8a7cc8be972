"""The embedded data set generator: fastMRI layout, determinism, SNR, fallback, CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from unrolled.data import anatomy
from unrolled.data.errors import DataError
from unrolled.data.header import parse_ismrmrd_header
from unrolled.data.synth import (
    ensure_dataset,
    generate_dataset,
    split_counts,
    write_volume,
)
from unrolled.data.synth_volume import SIGNAL_LEVEL, synthesize_volume

# Tiny but with 1.5x readout oversampling, so the RSS crop is exercised.
TINY = dict(num_coils=4, height=96, width=64)
SLICES = 2


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, num_volumes=3, slices_per_volume=SLICES, seed=5, progress=False, **TINY)
    return out


def _files(root: Path) -> list[Path]:
    return sorted(root.glob("*/*.h5"), key=lambda p: p.name)


def _rss_numpy(kspace: np.ndarray, h: int, w: int) -> np.ndarray:
    """Independent oracle: numpy centered orthonormal ifft, RSS, fastMRI centre crop."""
    img = np.fft.fftshift(
        np.fft.ifft2(np.fft.ifftshift(kspace, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
    )
    rss = np.sqrt((np.abs(img) ** 2).sum(1))
    top, left = (rss.shape[-2] - h) // 2, (rss.shape[-1] - w) // 2
    return rss[:, top : top + h, left : left + w]


def test_files_have_fastmri_multicoil_layout(root):
    assert [p.parent.name for p in _files(root)] == ["train", "val", "test"]  # (10,3,3) of 3
    assert [p.name for p in _files(root)] == [f"file_brain_synth_{i:04d}.h5" for i in range(3)]
    acquisitions = []
    for path in _files(root):
        with h5py.File(path, "r") as f:
            assert set(f.keys()) == {"kspace", "ismrmrd_header", "reconstruction_rss"}
            assert f["kspace"].dtype == np.complex64
            assert f["kspace"].shape == (SLICES, 4, 96, 64)
            assert f["reconstruction_rss"].dtype == np.float32
            assert f["reconstruction_rss"].shape == (SLICES, 64, 64)
            info = parse_ismrmrd_header(f["ismrmrd_header"][()])
            assert info.encoding_size == (96, 64, 1)
            assert info.recon_size == (64, 64, 1)
            assert (info.padding_left, info.padding_right, info.num_coils) == (0, 64, 4)
            attrs = dict(f.attrs)
            assert set(attrs) == {
                "max",
                "norm",
                "acquisition",
                "patient_id",
                "padding_left",
                "padding_right",
            }
            target = f["reconstruction_rss"][()]
            assert attrs["max"] == pytest.approx(float(target.max()))
            assert attrs["norm"] == pytest.approx(float(np.linalg.norm(target)), rel=1e-5)
            assert (attrs["padding_left"], attrs["padding_right"]) == (0, 64)
            assert isinstance(attrs["patient_id"], str) and len(attrs["patient_id"]) == 64
            acquisitions.append(attrs["acquisition"])
    assert acquisitions == ["AXT1", "AXT2", "AXPD"]
    assert not list(root.rglob("*.tmp"))


def test_reconstruction_rss_is_cropped_rss_of_kspace(root):
    for path in _files(root):
        with h5py.File(path, "r") as f:
            expected = _rss_numpy(f["kspace"][()].astype(np.complex128), 64, 64)
            np.testing.assert_allclose(f["reconstruction_rss"][()], expected, rtol=1e-4, atol=0)


def test_fastmri_slice_dataset_loads_files_unchanged(root):
    fastmri_data = pytest.importorskip("fastmri.data")
    ds = fastmri_data.SliceDataset(root / "train", challenge="multicoil", transform=None)
    assert len(ds) == SLICES
    with h5py.File(_files(root)[0], "r") as f:
        for i in range(SLICES):
            kspace, mask, target, attrs, fname, slice_num = ds[i]
            assert (fname, slice_num, mask) == ("file_brain_synth_0000.h5", i, None)
            np.testing.assert_array_equal(kspace, f["kspace"][i])
            np.testing.assert_array_equal(target, f["reconstruction_rss"][i])
    assert attrs["encoding_size"] == (96, 64, 1)
    assert attrs["recon_size"] == (64, 64, 1)
    assert (attrs["padding_left"], attrs["padding_right"]) == (0, 64)
    assert attrs["acquisition"] == "AXT1"


def test_deterministic_for_a_seed_and_different_across_seeds():
    kwargs = dict(num_slices=2, recon_height=64, recon_width=64, **TINY)
    a, _ = synthesize_volume(np.random.default_rng([0, 1]), **kwargs)
    b, _ = synthesize_volume(np.random.default_rng([0, 1]), **kwargs)
    c, _ = synthesize_volume(np.random.default_rng([1, 1]), **kwargs)
    assert a.dtype == np.complex64 and a.shape == (2, 4, 96, 64)
    assert a.tobytes() == b.tobytes()
    assert not np.allclose(a, c)


def test_generated_files_are_byte_identical_for_a_seed(tmp_path):
    kwargs = dict(num_volumes=1, slices_per_volume=1, split=(1, 0, 0), progress=False, **TINY)
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        generate_dataset(tmp_path / name, seed=seed, **kwargs)
    data = {}
    for name in "abc":
        with h5py.File(tmp_path / name / "train" / "file_brain_synth_0000.h5", "r") as f:
            data[name] = f["kspace"][()].tobytes()
    assert data["a"] == data["b"] != data["c"]


def test_snr_sets_the_per_coil_noise_level():
    kwargs = dict(num_slices=2, num_coils=4, height=128, width=128, acquisition="AXT2")
    noisy, meta = synthesize_volume(np.random.default_rng(3), snr=20.0, **kwargs)
    clean, clean_meta = synthesize_volume(np.random.default_rng(3), snr=None, **kwargs)
    assert clean_meta.noise_std == 0.0
    sigma = SIGNAL_LEVEL / 20.0
    assert meta.noise_std == pytest.approx(sigma)

    noise = noisy.astype(np.complex128) - clean  # same stream up to the noise draw
    per_coil = np.sqrt(np.mean(np.abs(noise) ** 2, axis=(0, 2, 3)))
    np.testing.assert_allclose(per_coil, sigma, rtol=0.03)
    corners = np.concatenate(
        [
            noisy[..., :16, :16],
            noisy[..., :16, -16:],
            noisy[..., -16:, :16],
            noisy[..., -16:, -16:],
        ],
        axis=-1,
    )
    assert np.sqrt(np.mean(np.abs(corners) ** 2)) == pytest.approx(sigma, rel=0.15)

    # The signal side of the definition: mean noise-free RSS over the head.
    rss = _rss_numpy(clean.astype(np.complex128), 128, 128)
    head = rss > 0.1 * np.quantile(rss, 0.99)
    assert rss[head].mean() / sigma == pytest.approx(20.0, rel=0.03)


def test_procedural_fallback_warns_and_works(monkeypatch):
    monkeypatch.setattr(anatomy, "template_dir", lambda: None)
    with pytest.warns(UserWarning, match="procedural"):
        kspace, meta = synthesize_volume(
            np.random.default_rng(0), num_slices=2, recon_height=64, recon_width=64, **TINY
        )
    assert meta.source == "procedural"
    assert kspace.shape == (2, 4, 96, 64) and np.isfinite(kspace).all()
    rss = _rss_numpy(kspace.astype(np.complex128), 64, 64)
    assert (rss > 0.2 * rss.max()).mean() > 0.2  # a head, not an empty frame


def test_templates_are_found_without_importing_nilearn():
    if anatomy.template_dir() is None:
        pytest.skip("nilearn is not installed")
    assert "nilearn" not in sys.modules or "nilearn.datasets" not in sys.modules
    _, meta = synthesize_volume(
        np.random.default_rng(0), num_slices=1, recon_height=64, recon_width=64, **TINY
    )
    assert meta.source == "mni152"


def test_refuses_existing_files_unless_overwrite(tmp_path):
    kwargs = dict(num_volumes=2, slices_per_volume=1, split=(1, 1, 0), progress=False, **TINY)
    generate_dataset(tmp_path, **kwargs)
    with pytest.raises(DataError, match="overwrite"):
        generate_dataset(tmp_path, **kwargs)
    (tmp_path / "test" / "file_brain_synth_0099.h5").write_bytes(b"stale")
    summary = generate_dataset(tmp_path, overwrite=True, **kwargs)
    assert summary["files"] == {"train": 1, "val": 1, "test": 0}
    assert len(_files(tmp_path)) == 2  # the stale file went


def test_bad_options_fail_before_writing(tmp_path):
    with pytest.raises(ValueError, match="snr"):
        generate_dataset(tmp_path / "x", snr=-1.0, progress=False)
    with pytest.raises(ValueError, match="recon size"):
        generate_dataset(tmp_path / "x", height=64, width=64, recon_height=80, progress=False)
    assert not (tmp_path / "x").exists()


def test_ensure_dataset_generates_only_when_missing(tmp_path):
    kwargs = dict(num_volumes=3, slices_per_volume=1, progress=False, **TINY)
    assert ensure_dataset(tmp_path, **kwargs)["files"] == {"train": 1, "val": 1, "test": 1}
    assert ensure_dataset(tmp_path, **kwargs) is None


def test_write_is_atomic(tmp_path, monkeypatch):
    kspace, meta = synthesize_volume(
        np.random.default_rng(0), num_slices=1, recon_height=64, recon_width=64, **TINY
    )

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr("unrolled.data.synth.os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_volume(tmp_path / "file.h5", kspace, (64, 64), meta, "id")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "split, n, expected",
    [
        ((10, 3, 3), 16, (10, 3, 3)),
        ((10, 3, 3), 3, (1, 1, 1)),
        ((10, 3, 3), 20, (12, 4, 4)),
        ((0.8, 0.1, 0.1), 10, (8, 1, 1)),
        ((1, 0, 0), 5, (5, 0, 0)),
        ((1, 1, 1), 1, (1, 0, 0)),
    ],
)
def test_split_counts(split, n, expected):
    assert split_counts(split, n) == expected
    assert sum(expected) == n


def test_cli_writes_the_data_set_and_refuses_a_second_run(tmp_path):
    exe = Path(sys.executable).parent / "unrolled-synth"
    if not exe.is_file():
        pytest.skip("unrolled-synth is not installed in this environment")
    out = tmp_path / "embedded"
    args = [str(exe), f"output_dir={out}", "num_volumes=3", "slices_per_volume=2"]
    args += ["num_coils=4", "height=64", "width=64", "seed=1"]
    first = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "wrote 3 volumes" in first.stdout
    assert len(_files(out)) == 3 and not list(out.rglob("*.tmp"))
    assert (out / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    second = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert second.returncode != 0
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "overwrite=true" in lines[0], second.stderr
