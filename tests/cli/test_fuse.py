"""unrolled-fuse as a user runs it, on acquisitions with simulated motion.

The inputs are the tiny test volume (2 slices, 4 coils, 64 x 64) sampled three
times with known rigid motion, different 4x masks and independent noise, once
as three test-set-style fastMRI files (undersampled k-space plus ``mask``) and
once as one file with an acquisition axis. Runs go through the entry point in
this process (no import cost) except one that checks the installed script.
"""

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from helpers.common import run_cli

from unrolled.data.acquisitions import open_acquisitions, read_acquisitions
from unrolled.data.errors import DataError
from unrolled.methods.fusion import object_and_maps
from unrolled.physics.masks import RandomMaskFunc
from unrolled.physics.motion import simulate_acquisitions

BIN = Path(sys.executable).parent / "unrolled-fuse"
MOTION = torch.tensor([[0.0, 0.0, 0.0], [2.0, -1.5, 2.5], [-1.0, 2.5, -2.0]])
N = MOTION.shape[0]


pytestmark = pytest.mark.usefixtures("one_thread_module")


def _simulate(source):
    """Masked k-space ``(N, S, C, H, W)`` and masks ``(N, W)`` of the moving volume."""
    with h5py.File(source) as hf:
        full = torch.from_numpy(hf["kspace"][()])  # (S, C, H, W)
    s, c, h, w = full.shape
    masks = torch.stack(
        [RandomMaskFunc([0.16], [4])((c, h, w), None, (1, n))[0].reshape(w) for n in range(N)]
    )  # (N, W)
    sigma = float(full[:, :, :4].abs().pow(2).mean().sqrt())
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(s):
        image, maps = object_and_maps(full[i])
        m = masks.reshape(1, N, 1, 1, w)
        out.append(simulate_acquisitions(image[None], maps[None], m, MOTION[None], sigma, g)[0])
    return torch.stack(out, 1).numpy().astype(np.complex64), masks.numpy()  # (N, S, C, H, W)


def _copy_meta(src, dst):
    dst.create_dataset("ismrmrd_header", data=src["ismrmrd_header"][()])
    for k, v in src.attrs.items():
        dst.attrs[k] = v


@pytest.fixture(scope="module")
def inputs(tiny_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuse")
    (source,) = sorted((tiny_root / "test").glob("*.h5"))
    kspace, masks = _simulate(source)
    files = []
    with h5py.File(source) as src:
        for n in range(N):  # test-set layout: undersampled k-space and its mask
            files.append(tmp / f"scan{n}.h5")
            with h5py.File(files[-1], "w") as dst:
                dst.create_dataset("kspace", data=kspace[n])
                dst.create_dataset("mask", data=masks[n])
                _copy_meta(src, dst)
        with h5py.File(tmp / "stacked.h5", "w") as dst:
            dst.create_dataset("kspace", data=kspace)
            dst.create_dataset("mask", data=masks)
            _copy_meta(src, dst)
        with h5py.File(tmp / "other_coils.h5", "w") as dst:  # a geometry that does not match
            dst.create_dataset("kspace", data=kspace[1][:, :3])
            dst.create_dataset("mask", data=masks[1])
            _copy_meta(src, dst)
            dst["ismrmrd_header"][()] = src["ismrmrd_header"][()].replace(
                b"receiverChannels>4<", b"receiverChannels>3<"
            )
        with h5py.File(tmp / "nan_slice.h5", "w") as dst:  # fails at slice 1, after slice 0
            bad = kspace[2].copy()
            bad[1, 0, 0, 0] = np.nan
            dst.create_dataset("kspace", data=bad)
            dst.create_dataset("mask", data=masks[2])
            _copy_meta(src, dst)
    (tmp / "corrupt.h5").write_bytes(b"not an HDF5 file at all")
    return {"dir": tmp, "files": files, "stacked": tmp / "stacked.h5"}


def _main(cwd, *overrides):
    """The entry point in this process: ``(exit status, stdout, stderr)``."""
    return run_cli("fuse", cwd / "hydra", "progress=false", *overrides)


def _list(paths):
    return "inputs=[" + ",".join(str(p) for p in paths) + "]"


@pytest.fixture(scope="module")
def runs(inputs):
    d = inputs["dir"]
    # The installed script, on bad input (cheap), while the fusions run here.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    script = subprocess.Popen(
        [str(BIN), f"hydra.run.dir={d / 'hydra'}", _list([d / "corrupt.h5", inputs["files"][0]])]
        + [f"output={d / 'script.h5'}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    quick = "fusion.lowpass=[0.04,null]"  # two motion rounds of the default four
    out = {
        "files": _main(d, _list(inputs["files"]), f"output={d / 'out' / 'files.h5'}", quick),
        "stacked": _main(
            d, _list([inputs["stacked"]]), f"output={d / 'out' / 'stacked.h5'}", quick
        ),
    }
    out["script"] = (script.wait(timeout=300), script.stdout.read(), script.stderr.read())
    return out


def test_fuses_files_into_the_submission_layout_with_motion(runs, inputs):
    code, stdout, stderr = runs["files"]
    assert code == 0, stderr
    path = inputs["dir"] / "out" / "files.h5"
    assert "fused 3 acquisitions x 2 slices" in stdout and "\n  scan1.h5: +" in stdout
    with h5py.File(path) as hf:
        recon = hf["reconstruction"][()]
        motion = hf.attrs["motion"]
        assert list(hf.keys()) == ["reconstruction"]
        assert [str(a) for a in hf.attrs["acquisitions"]] == ["scan0.h5", "scan1.h5", "scan2.h5"]
        assert hf.attrs["acquisition"] == "AXT1" and hf.attrs["motion_estimated"]
    assert recon.shape == (2, 64, 64) and recon.dtype == np.float32 and np.isfinite(recon).all()
    assert motion.shape == (2, N, 3)
    err = np.abs(motion - MOTION.numpy()[None])
    assert err[..., :2].max() < 0.25 and err[..., 2].max() < 0.5, motion


def test_one_file_with_an_acquisition_axis_gives_the_same_result(runs, inputs):
    code, _, stderr = runs["stacked"]
    assert code == 0, stderr
    with (
        h5py.File(inputs["dir"] / "out" / "files.h5") as a,
        h5py.File(inputs["dir"] / "out" / "stacked.h5") as b,
    ):
        np.testing.assert_allclose(b["reconstruction"][()], a["reconstruction"][()], rtol=1e-5)
        np.testing.assert_allclose(b.attrs["motion"], a.attrs["motion"], atol=1e-4)
        assert [str(x) for x in b.attrs["acquisitions"]][1] == "stacked.h5[1]"


def test_refuses_to_overwrite_then_overwrites_on_request(runs, inputs):
    d = inputs["dir"]
    target = d / "out" / "files.h5"
    before = (target.stat().st_mtime_ns, target.read_bytes())
    code, _, stderr = _main(d, _list(inputs["files"]), f"output={target}")
    assert code == 1 and stderr.strip().count("\n") == 0
    assert "exists" in stderr and "overwrite=true" in stderr
    assert (target.stat().st_mtime_ns, target.read_bytes()) == before
    overrides = ["overwrite=true", "fusion.estimate_motion=false"]
    code, _, stderr = _main(d, _list(inputs["files"][:2]), f"output={target}", *overrides)
    assert code == 0, stderr
    with h5py.File(target) as hf:
        assert hf.attrs["motion"].shape == (2, 2, 3) and not hf.attrs["motion"].any()
        assert not hf.attrs["motion_estimated"]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["corrupt.h5", "scan1.h5"], "corrupt.h5: cannot open as HDF5"),
        (["scan0.h5", "other_coils.h5"], "other_coils.h5: kspace (2, 3, 64, 64)"),
        (["scan0.h5"], "scan0.h5: holds a single acquisition"),
        (["scan0.h5", "scan0.h5"], "scan0.h5: listed twice"),
        (["scan0.h5", "missing.h5"], "missing.h5: no such file"),
        (["scan0.h5", "nan_slice.h5"], "nan_slice.h5: kspace[1] contains NaN"),
    ],
)
def test_bad_input_is_one_line_exit_1_and_no_output(inputs, names, message):
    d = inputs["dir"]
    target = d / "bad" / "fused.h5"
    extra = ["fusion.lowpass=[null]", "fusion.final_cg_iterations=5"]  # the NaN case fuses one
    code, stdout, stderr = _main(d, _list([d / n for n in names]), f"output={target}", *extra)
    assert code == 1, (stdout, stderr)
    assert stderr.startswith("error: ") and stderr.strip().count("\n") == 0
    assert message in stderr
    assert not target.exists()
    assert not target.parent.exists() or not any(target.parent.iterdir())  # no temp files


def test_usage_errors(inputs):
    d = inputs["dir"]
    code, _, stderr = _main(d, f"output={d / 'x.h5'}")
    assert code == 1 and "inputs is not set" in stderr
    code, _, stderr = _main(d, _list(inputs["files"]))
    assert code == 1 and "output is not set" in stderr
    code, _, stderr = _main(d, _list(inputs["files"]), f"output={inputs['files'][1]}")
    assert code == 1 and "is one of the inputs" in stderr


def test_installed_script_reports_bad_input(runs):
    code, _, stderr = runs["script"]
    assert code == 1 and stderr.startswith("error: ") and "corrupt.h5" in stderr
    assert stderr.strip().count("\n") == 0


def test_reading_masks_and_mask_func(inputs, tiny_root):
    aset = open_acquisitions(inputs["files"])
    assert aset.num_acquisitions == N and aset.names[2] == "scan2.h5" and not aset.stacked
    acq = read_acquisitions(aset, 1)
    assert acq.kspace.shape == (N, 4, 64, 64) and acq.masks.shape == (N, 1, 64, 64)
    assert acq.num_low_frequencies >= 10 and acq.target is None
    assert (acq.kspace * (1 - acq.masks)).abs().max() == 0
    # Fully sampled files: mask_func draws one mask per acquisition (file name + index seed).
    (source,) = sorted((tiny_root / "test").glob("*.h5"))
    stacked = inputs["dir"] / "stacked_full.h5"
    with h5py.File(source) as src, h5py.File(stacked, "w") as dst:
        dst.create_dataset("kspace", data=np.stack([src["kspace"][()]] * 2))
        dst.create_dataset("reconstruction_rss", data=src["reconstruction_rss"][()])
        _copy_meta(src, dst)
    aset = open_acquisitions([stacked])
    acq = read_acquisitions(aset, 0, RandomMaskFunc([0.16], [4]))
    assert not torch.equal(acq.masks[0], acq.masks[1])
    assert acq.target is not None and acq.target.shape == (64, 64)
    assert torch.equal(read_acquisitions(aset, 0, RandomMaskFunc([0.16], [4])).masks, acq.masks)
    with pytest.raises(DataError, match="expected \\(2, 64\\)"):
        with h5py.File(stacked, "a") as hf:
            hf.create_dataset("mask", data=np.ones((3, 64), np.float32))
        open_acquisitions([stacked])


def test_config_mirrors_the_constructor(tmp_path):
    import inspect

    from hydra.utils import instantiate

    from unrolled.cli.compose import compose_config
    from unrolled.methods.fusion import MotionFusion

    cfg = compose_config("fuse", [], output_dir=tmp_path)
    fusion = instantiate(cfg.fusion)
    assert isinstance(fusion, MotionFusion)
    defaults = inspect.signature(MotionFusion).parameters
    for key, value in cfg.fusion.items():
        if key != "_target_":
            expected = defaults[key].default
            assert (list(value) if key == "lowpass" else value) == (
                list(expected) if key == "lowpass" else expected
            ), key
