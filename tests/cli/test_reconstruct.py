"""unrolled-reconstruct as a user runs it, and the inference logic behind it.

The command-line runs are started together by one module fixture (each costs
seconds of imports) and checked by the tests below.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from helpers.common import run_cli, small_train_config
from hydra.utils import instantiate
from omegaconf import OmegaConf

from unrolled.cli.common import CONFIG_DIR
from unrolled.data.errors import DataError
from unrolled.data.fastmri_io import read_volume_info
from unrolled.data.transforms import UnrolledTransform
from unrolled.data.writer import write_reconstruction
from unrolled.inference.checkpoint import load_network
from unrolled.inference.folder import (
    list_volumes,
    reconstruct_volume,
    reconstruct_volumes,
)

BIN = Path(sys.executable).parent / "unrolled-reconstruct"
TEST_SET = "file_test_set.h5"


pytestmark = pytest.mark.usefixtures("one_thread_module")


def _conf(group, name, **overrides):
    return instantiate(OmegaConf.load(Path(CONFIG_DIR) / group / f"{name}.yaml"), **overrides)


def _test_set_mask(width):
    mask = np.zeros(width, np.float32)
    mask[::3] = 1
    mask[width // 2 - 4 : width // 2 + 4] = 1
    return mask


def _make_inputs(tiny_root, directory):
    """The test split's fully sampled file, and a test-set file (stored mask, no reference)."""
    directory.mkdir(parents=True)
    (source,) = sorted((tiny_root / "test").glob("*.h5"))
    shutil.copy(source, directory / source.name)
    with h5py.File(source) as src, h5py.File(directory / TEST_SET, "w") as dst:
        kspace = src["kspace"][()]
        mask = _test_set_mask(kspace.shape[-1])
        dst.create_dataset("kspace", data=(kspace * mask).astype(np.complex64))
        dst.create_dataset("mask", data=mask)
        dst.create_dataset("ismrmrd_header", data=src["ismrmrd_header"][()])
        for k, v in src.attrs.items():
            dst.attrs[k] = v
        dst.attrs["acceleration"] = 3
        dst.attrs["num_low_frequency"] = 8
    return directory


def _checkpoint(tiny_root, out):
    """A network trained for one step, saved the way unrolled-train saves it."""
    from unrolled.cli.train import build

    cfg = small_train_config(tiny_root, out, "trainer.max_steps=1", "trainer.limit_val_batches=0")
    dm, module, trainer = build(cfg)
    trainer.fit(module, datamodule=dm)
    path = out / "net.ckpt"
    trainer.save_checkpoint(path)
    return path


def _start(cwd, name, *overrides):
    # one thread each: the runs share the machine's cores
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [str(BIN), f"hydra.run.dir={cwd / 'hydra' / name}", "progress=false", *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
    )


def _wait(procs):
    """Wait for ``{name: Popen}``; ``{name: (exit status, stdout, stderr)}``."""
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        out[name] = (proc.returncode, stdout, stderr)
    return out


def _stat(directory):
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(directory.glob("*.h5"))}


def _main(cwd, name, *overrides):
    """The entry point in this process (no import cost): ``(exit status, stdout, stderr)``."""
    return run_cli("reconstruct", cwd / "hydra" / name, "progress=false", *overrides)


@pytest.fixture(scope="module")
def runs(tiny_root, tmp_path_factory):
    """Every run of this module: two as subprocesses (at once), the others in process."""
    tmp = tmp_path_factory.mktemp("reconstruct")
    inputs = _make_inputs(tiny_root, tmp / "in")
    common = [f"input_dir={inputs}", "mask.accelerations=[4]", "mask.center_fractions=[0.08]"]
    wide = [f"input_dir={inputs}", "mask.center_fractions=[0.16]"]  # ESPIRiT needs >= 6 columns
    first = {
        "zero_filled": _start(
            tmp, "zero_filled", "method=zero_filled", f"output_dir={tmp / 'zf'}", *common
        ),
        "cg_sense": _start(
            tmp, "cg_sense", "method=cg_sense", f"output_dir={tmp / 'cg'}", "batch_size=1", *wide
        ),
    }
    ckpt = _checkpoint(tiny_root, tmp / "train")  # while those run
    first = _wait(first)
    before = _stat(tmp / "zf")
    second = {
        "again": _main(tmp, "again", "method=zero_filled", f"output_dir={tmp / 'zf'}", *common),
        "unrolled": _main(
            tmp, "unrolled", f"checkpoint={ckpt}", f"output_dir={tmp / 'net'}", *common
        ),
        "no_ckpt": _main(
            tmp, "no_ckpt", f"checkpoint={tmp / 'nope.ckpt'}", f"output_dir={tmp / 'x'}", *common
        ),
    }
    return {"dir": tmp, "inputs": inputs, "ckpt": ckpt, "before": before, **first, **second}


def _zero_filled_oracle(path, mask_seeded_by_name):
    """fastMRI's mask (RandomMaskFunc seeded by the file name) or the stored one, numpy RSS."""
    with h5py.File(path) as hf:
        kspace = hf["kspace"][()]  # (S, C, H, W)
        stored = hf["mask"][()] if "mask" in hf else None
    if mask_seeded_by_name:
        subsample = pytest.importorskip("fastmri.data.subsample")
        func = subsample.RandomMaskFunc(center_fractions=[0.08], accelerations=[4])
        mask, _ = func((*kspace.shape[1:], 2), seed=tuple(map(ord, path.name)))
        mask = mask.numpy().reshape(-1)
    else:
        mask = stored
    axes = (-2, -1)
    image = np.fft.fftshift(
        np.fft.ifft2(np.fft.ifftshift(kspace * mask, axes=axes), axes=axes, norm="ortho"),
        axes=axes,
    )
    return np.sqrt((np.abs(image) ** 2).sum(axis=1)), mask


def _read(path):
    with h5py.File(path) as hf:
        return hf["reconstruction"][()], hf["reconstruction"].dtype, dict(hf.attrs)


def _ok(result):
    rc, out, err = result
    assert rc == 0, err
    assert "slices/s" in out
    return out


def test_zero_filled_masks_like_fastmri_and_keeps_stored_masks(runs):
    out = _ok(runs["zero_filled"])
    assert "reconstructed 2 volumes (4 slices) with zero_filled" in out
    names = sorted(p.name for p in runs["inputs"].glob("*.h5"))
    assert sorted(p.name for p in (runs["dir"] / "zf").iterdir()) == names  # nothing else
    for name in names:
        got, dtype, attrs = _read(runs["dir"] / "zf" / name)
        want, mask = _zero_filled_oracle(
            runs["inputs"] / name, mask_seeded_by_name=name != TEST_SET
        )
        info = read_volume_info(runs["inputs"] / name)
        assert dtype == np.float32 and got.shape == (info.num_slices, *info.crop_size)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * want.max())  # slice order
        assert attrs["acceleration"] == (3 if name == TEST_SET else 4)
        assert attrs["acquisition"] == info.attrs["acquisition"]
        if name == TEST_SET:
            np.testing.assert_array_equal(mask, _test_set_mask(mask.size))


def test_cg_sense_equals_the_method_run_in_process(runs):
    _ok(runs["cg_sense"])
    transform = UnrolledTransform(_conf("mask", "random", center_fractions=[0.16]))
    method = _conf("method", "cg_sense")
    for vol in list_volumes(runs["inputs"]):
        got, dtype, _ = _read(runs["dir"] / "cg" / vol.fname)
        want = reconstruct_volume(method, vol, transform, batch_size=2)
        assert dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * want.max())


def test_unrolled_checkpoint_equals_the_network_run_in_process(runs):
    out = _ok(runs["unrolled"])
    assert "with unrolled" in out
    net, _ = load_network(runs["ckpt"])
    transform = UnrolledTransform(_conf("mask", "random"))
    for vol in list_volumes(runs["inputs"]):
        got, _, _ = _read(runs["dir"] / "net" / vol.fname)
        want = reconstruct_volume(net, vol, transform, batch_size=1)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * want.max())


def test_second_run_refuses_and_leaves_first_outputs_untouched(runs):
    rc, _, err = runs["again"]
    assert rc == 1 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("error: ") and "2 of 2 outputs exist" in line
    assert "file_brain_synth_0003.h5" in line and TEST_SET in line and "overwrite=true" in line
    assert _stat(runs["dir"] / "zf") == runs["before"]


def test_missing_checkpoint_gives_one_line_and_no_output(runs):
    rc, _, err = runs["no_ckpt"]
    assert rc == 1 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("error: ") and line.endswith("nope.ckpt: checkpoint not found")
    assert not (runs["dir"] / "x").exists()


# --- in process --------------------------------------------------------------


def test_a_bad_slice_mid_run_leaves_no_output(tiny_root, tmp_path):
    inputs = _make_inputs(tiny_root, tmp_path / "in")
    with h5py.File(inputs / TEST_SET, "a") as hf:  # sorted last: fails after the first volume
        hf["kspace"][1, 0, 0, 0] = np.nan
    volumes = list_volumes(inputs)
    out = tmp_path / "out" / "deep"
    with pytest.raises(DataError, match=f"{TEST_SET}: kspace\\[1\\] contains NaN"):
        reconstruct_volumes(_conf("method", "zero_filled"), volumes, out)
    assert not (tmp_path / "out").exists()  # the folders it made are gone too


def test_existing_outputs_are_all_named_before_any_work(tiny_root, tmp_path):
    inputs = _make_inputs(tiny_root, tmp_path / "in")
    volumes = list_volumes(inputs)
    out = tmp_path / "out"
    write_reconstruction(out, TEST_SET, np.zeros((1, 2, 2)))
    with pytest.raises(FileExistsError, match=f"1 of 2 outputs exist already \\({TEST_SET}\\)"):
        reconstruct_volumes(_conf("method", "zero_filled"), volumes, out)
    assert sorted(p.name for p in out.iterdir()) == [TEST_SET]
    summary = reconstruct_volumes(_conf("method", "zero_filled"), volumes, out, overwrite=True)
    assert summary.num_slices == 4 and len(summary.paths) == 2
    assert _read(out / TEST_SET)[0].shape == (2, 64, 64)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in inputs.iterdir())


def test_list_volumes_rejects_missing_empty_and_corrupt_inputs(tiny_root, tmp_path):
    with pytest.raises(DataError, match="input directory does not exist"):
        list_volumes(tmp_path / "nowhere")
    with pytest.raises(DataError, match="contains no .h5 files"):
        list_volumes(tmp_path)
    inputs = _make_inputs(tiny_root, tmp_path / "in")
    (inputs / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(DataError, match=r"broken\.h5: cannot open as HDF5"):
        list_volumes(inputs)
    with pytest.raises(DataError, match="challenge is 'singlecoil'"):
        list_volumes(tiny_root / "test", challenge="singlecoil")


def test_bf16_autocast_gives_float32_close_to_float32(tiny_root, tmp_path):
    (vol,) = [v for v in list_volumes(_make_inputs(tiny_root, tmp_path / "in")) if v.has_mask]
    transform = UnrolledTransform(None)
    method = _conf("method", "zero_filled")
    full = reconstruct_volume(method, vol, transform, batch_size=2)
    half = reconstruct_volume(method, vol, transform, batch_size=2, dtype=torch.bfloat16)
    assert half.dtype == np.float32
    np.testing.assert_allclose(half, full, rtol=2e-2, atol=2e-2 * full.max())


def test_a_method_rejecting_its_input_names_the_file(tiny_root, tmp_path):
    (vol,) = list_volumes(tiny_root / "test")
    # 2 calibration columns of 64: narrower than ESPIRiT's smallest kernel (3)
    transform = UnrolledTransform(_conf("mask", "random", center_fractions=[0.03]))
    with pytest.raises(DataError, match=r"0003\.h5: cannot reconstruct slices \[0, 1\]: calib"):
        reconstruct_volume(_conf("method", "cg_sense"), vol, transform, batch_size=2)


# --- zero-shot: a method that fits itself to every slice -----------------------------------

ZEROSHOT = [
    "method=zeroshot",
    "method.max_steps=3",
    "method.warmup_steps=1",
    "method.val_every=1",
    "method.net.num_cascades=1",
    "method.net.denoiser.cnn.channels=4",
    "method.net.denoiser.cnn.num_blocks=1",
    "mask.center_fractions=[0.16]",  # 10 calibration columns: ESPIRiT's full 6 x 6 kernel
]


def test_zeroshot_writes_reconstructions_and_training_curves(tiny_root, tmp_path):
    inputs = _make_inputs(tiny_root, tmp_path / "in")
    out = tmp_path / "zs"
    rc, stdout, err = _main(tmp_path, "zs", f"input_dir={inputs}", f"output_dir={out}", *ZEROSHOT)
    assert rc == 0, err
    assert "reconstructed 2 volumes (4 slices) with zeroshot" in stdout
    names = sorted(p.name for p in inputs.glob("*.h5"))
    stems = [Path(n).stem for n in names]
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(
        names + [f"{s}_curves.csv" for s in stems] + [f"{s}_curves.png" for s in stems]
    )
    for name, stem in zip(names, stems, strict=True):
        image, dtype, _ = _read(out / name)
        assert dtype == np.float32 and image.shape == (2, 64, 64) and np.isfinite(image).all()
        rows = (out / f"{stem}_curves.csv").read_text().splitlines()
        assert rows[0].startswith("key,step,train_loss,val_loss,lr,seconds")
        assert [r.split(",")[:2] for r in rows[1:]] == [
            [f"{name}/{s}", str(k)] for s in (0, 1) for k in (1, 2, 3)
        ]
        assert (out / f"{stem}_curves.png").read_bytes()[:4] == b"\x89PNG"
    # the same method in process gives the same reconstructions (seeded splits and weights)
    from hydra.utils import instantiate

    from unrolled.cli.compose import compose_config

    cfg = compose_config("reconstruct", ZEROSHOT, output_dir=tmp_path)
    method = instantiate(cfg.method)
    transform = UnrolledTransform(instantiate(cfg.mask))
    for vol in list_volumes(inputs):
        want = reconstruct_volume(method, vol, transform, batch_size=2)
        np.testing.assert_allclose(_read(out / vol.fname)[0], want, rtol=1e-4, atol=1e-5)
    # existing curves alone are refused before any work
    again = tmp_path / "again"
    again.mkdir()
    (again / f"{stems[0]}_curves.png").write_bytes(b"x")
    rc, _, err = _main(tmp_path, "again", f"input_dir={inputs}", f"output_dir={again}", *ZEROSHOT)
    assert rc == 1 and "training-curve files exist already" in err and "overwrite=true" in err
    assert sorted(p.name for p in again.iterdir()) == [f"{stems[0]}_curves.png"]
