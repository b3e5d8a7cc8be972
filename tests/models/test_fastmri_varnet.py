"""The fastMRI E2E-VarNet adapter: same image as fastmri's VarNet, trains through our loop."""

import sys

import pytest
import torch
from helpers.process_group import run_group
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from unrolled.physics.coils import rss
from unrolled.physics.fft import ifft2c

pytest.importorskip("fastmri")

from unrolled.cli.common import CONFIG_DIR  # noqa: E402
from unrolled.models.fastmri_varnet import FastmriVarNet  # noqa: E402

TINY = {"num_cascades": 2, "chans": 4, "sens_chans": 4, "pools": 2, "sens_pools": 2}


def _inputs(b=2, c=4, h=32, w=24, nlf=(6, 6), seed=0):
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(b, c, h, w, dtype=torch.complex64, generator=g)
    cols = (torch.rand(b, 1, 1, w, generator=g) < 0.4).float()
    for i, n in enumerate(nlf):
        cols[i, ..., (w - n + 1) // 2 : (w - n + 1) // 2 + n] = 1.0
    mask = cols.expand(b, 1, h, w).contiguous()  # (B, 1, H, W), constant over H
    return k * mask, mask, torch.tensor(nlf)


def _direct(net, k, mask, nlf: int):
    """fastmri's VarNet called as fastMRI does: trailing real axis, bool (B, 1, 1, W, 1) mask."""
    m = mask[:, :, :1, :].unsqueeze(-1).bool()
    return net.varnet(torch.view_as_real(k), m, nlf)


def test_same_image_as_fastmri_varnet():
    torch.manual_seed(0)
    net = FastmriVarNet(**TINY).eval()
    k, mask, nlf = _inputs()
    with torch.no_grad():
        out = net(k, mask, nlf, keys=[("a", 0), ("a", 1)], return_cascades=True)
        ref = _direct(net, k, mask, 6)
    assert out.image.shape == (2, 32, 24) and out.image.dtype == torch.float32
    torch.testing.assert_close(out.image, ref, rtol=0, atol=0)
    assert out.cascades == []
    # the final coil k-space and the learned maps are exposed (robustness, SSDU use them)
    assert out.kspace.shape == out.maps.shape == (2, 4, 32, 24)
    assert out.kspace.dtype == torch.complex64
    torch.testing.assert_close(rss(ifft2c(out.kspace), dim=1), ref, rtol=1e-5, atol=1e-6)
    # a (B, 1, 1, W) column mask is accepted as well
    with torch.no_grad():
        cols = net(k, mask[:, :, :1, :], nlf).image
    torch.testing.assert_close(cols, ref, rtol=0, atol=0)


def test_different_calibration_widths_run_per_sample():
    torch.manual_seed(0)
    net = FastmriVarNet(**TINY).eval()
    k, mask, nlf = _inputs(nlf=(4, 8))
    with torch.no_grad():
        out = net(k, mask, nlf).image
        ref = torch.cat([_direct(net, k[i : i + 1], mask[i : i + 1], int(nlf[i])) for i in (0, 1)])
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_checkpointing_gives_the_same_image_and_gradients():
    torch.manual_seed(0)
    plain = FastmriVarNet(**TINY)
    ckpt = FastmriVarNet(**TINY, checkpointing=True)
    ckpt.load_state_dict(plain.state_dict())
    k, mask, nlf = _inputs()
    a, b = plain(k, mask, nlf).image, ckpt(k, mask, nlf).image
    torch.testing.assert_close(a, b)
    a.square().mean().backward()
    b.square().mean().backward()
    for (n, p), q in zip(plain.named_parameters(), ckpt.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=n)


def test_2d_mask_is_refused():
    net = FastmriVarNet(**TINY)
    k, mask, nlf = _inputs()
    mask = mask.clone()
    mask[:, :, 0, 0] = 1.0 - mask[:, :, 1, 0]  # varies along H
    with pytest.raises(ValueError, match="1D"):
        net(k, mask, nlf)


def test_missing_fastmri_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "fastmri.models", None)
    with pytest.raises(ImportError, match="optional `fastmri` package"):
        FastmriVarNet(**TINY)


def _cfg(root, out, *overrides):
    """``unrolled-train model=varnet_fastmri`` with the default experiment (embedded)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
        cfg = compose(
            "train",
            [
                "model=varnet_fastmri",
                "synth=null",
                "logger=csv",
                "model.num_cascades=2",
                "model.chans=4",
                "model.sens_chans=4",
                "model.pools=2",
                "model.sens_pools=2",
                "mask.center_fractions=[0.16]",
                "data.batch_size=2",
                "trainer.enable_progress_bar=false",
                "scheduler.warmup_steps=2",
                "~callbacks",
                *overrides,
            ],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.root_dir = str(out)
        cfg.paths.output_dir = str(out)
        cfg.data.root = str(root)
        del cfg.hydra
    return cfg


def test_one_training_step_through_our_loop_changes_parameters(tiny_root, tmp_path):
    from unrolled.cli.train import build

    cfg = _cfg(tiny_root, tmp_path, "trainer.max_steps=1", "trainer.limit_val_batches=0")
    dm, module, trainer = build(cfg)
    assert isinstance(module.net, FastmriVarNet) and module.net.num_cascades == 2
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 1
    unchanged = [n for n, p in module.named_parameters() if torch.equal(before[n], p)]
    # VarNet's first cascade starts from the measured k-space itself, so its soft-DC term
    # (k - y) * w is zero and w gets no gradient; every other parameter must move.
    assert unchanged == ["net.varnet.cascades.0.dc_weight"], unchanged


# ---- fastMRI's published weights -------------------------------------------------------

PUBLISHED = {"num_cascades": 12, "pools": 4, "chans": 18, "sens_pools": 4, "sens_chans": 8}
"""fastMRI's E2E-VarNet sizes (its run_pretrained_varnet_inference.py)."""


def _published_state_dict(path, seed=0):
    """What fastMRI distributes: ``torch.save(VarNet(...published sizes).state_dict())``."""
    from fastmri.models import VarNet

    torch.manual_seed(seed)
    ref = VarNet(**PUBLISHED).eval()
    torch.save(ref.state_dict(), path)
    return ref


def _run_cli(cwd, *overrides, timeout=600):
    """``unrolled-reconstruct`` in its own process group, killed on a timeout."""
    import os
    from pathlib import Path

    exe = Path(sys.executable).parent / "unrolled-reconstruct"
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    cmd = [exe, "progress=false", f"hydra.run.dir={cwd / 'hydra'}", *overrides]
    proc = run_group(cmd, timeout, env=env, cwd=cwd)
    return proc.returncode, proc.stdout, proc.stderr


def _fastmri_reference(ref, path):
    """fastMRI's own pipeline on a file: VarNetDataTransform (its RandomMaskFunc, 4x, 0.08,
    seeded by the file name), VarNet, centre crop to the recon size. ``(S, h, w)``."""
    import h5py
    from fastmri.data.subsample import RandomMaskFunc
    from fastmri.data.transforms import VarNetDataTransform, center_crop

    from unrolled.data.fastmri_io import read_volume_info

    info = read_volume_info(path)
    transform = VarNetDataTransform(RandomMaskFunc([0.08], [4]), use_seed=True)
    images = []
    with h5py.File(path) as f, torch.no_grad():
        for s in range(f["kspace"].shape[0]):
            sample = transform(
                f["kspace"][s], None, f["reconstruction_rss"][s], info.metadata(), path.name, s
            )
            out = ref(sample.masked_kspace[None], sample.mask[None], sample.num_low_frequencies)
            images.append(center_crop(out, sample.crop_size)[0])
    return torch.stack(images)


def test_published_weights_reconstruct_as_fastmri_does(tiny_root, tmp_path):
    """unrolled-reconstruct method=varnet_fastmri weights=PATH loads a state dict saved from
    fastmri.models.VarNet at the published sizes and gives fastMRI's own output."""
    import h5py

    (source,) = sorted((tiny_root / "val").glob("*.h5"))
    weights = tmp_path / "varnet_state_dict.pt"
    ref = _published_state_dict(weights)
    code, out, err = _run_cli(
        tmp_path,
        "method=varnet_fastmri",
        f"weights={weights}",
        f"input_dir={source}",
        f"output_dir={tmp_path / 'out'}",
        "mask.accelerations=[4]",
        "mask.center_fractions=[0.08]",
        "batch_size=1",  # one slice per call, as fastMRI's run_pretrained_varnet_inference.py
    )
    assert code == 0, err
    with h5py.File(tmp_path / "out" / source.name) as f:
        ours = torch.from_numpy(f["reconstruction"][()])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the command ran: the same arithmetic, bit for bit
    try:
        expected = _fastmri_reference(ref, source)
    finally:
        torch.set_num_threads(threads)
    assert ours.shape == expected.shape == (2, 64, 64)
    rel = ((ours - expected).abs().max() / expected.abs().max()).item()
    print(f"VarNet (published sizes, seeded init): max |ours - fastMRI| / max = {rel:.2e}")
    assert rel < 1e-5


def test_published_weights_load_strictly_from_state_dicts_and_checkpoints(tmp_path):
    ref = _published_state_dict(tmp_path / "plain.pt", seed=1)
    state = ref.state_dict()
    # fastMRI's Lightning VarNetModule: "varnet." keys plus the SSIM loss buffer
    torch.save(
        {
            "state_dict": {**{f"varnet.{k}": v for k, v in state.items()}, "loss.w": torch.ones(1)},
            "hyper_parameters": {"num_cascades": 12, "lr": 0.0003},
            "epoch": 3,
        },
        tmp_path / "lightning.ckpt",
    )
    for name in ("plain.pt", "lightning.ckpt"):
        net = FastmriVarNet(**PUBLISHED, weights=tmp_path / name)
        for k, v in state.items():
            assert torch.equal(net.varnet.state_dict()[k], v), (name, k)


def test_wrong_weights_are_one_clear_line(tmp_path):
    small = FastmriVarNet(**TINY)
    torch.save(small.varnet.state_dict(), tmp_path / "tiny.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    torch.save({"a": 1}, tmp_path / "dict.pt")
    cases = {
        "tiny.pt": r"tiny.pt: not a fastMRI VarNet state dict .*shape",
        "text.pt": r"text.pt: not a readable PyTorch weights file",
        "dict.pt": r"dict.pt: holds no state dict",
    }
    for name, match in cases.items():
        with pytest.raises(ValueError, match=match) as info:
            FastmriVarNet(**PUBLISHED, weights=tmp_path / name)
        assert "\n" not in str(info.value)
    with pytest.raises(FileNotFoundError, match="missing.pt: VarNet weights file not found"):
        FastmriVarNet(**TINY, weights=tmp_path / "missing.pt")
    from unrolled.models.fastmri_varnet import pretrained_varnet

    with pytest.raises(FileNotFoundError, match="pass weights=PATH"):
        pretrained_varnet(None)


def test_train_warm_starts_from_weights(tiny_root, tmp_path):
    """unrolled-train model=varnet_fastmri model.weights=PATH starts from those weights."""
    from unrolled.cli.train import build

    torch.manual_seed(5)
    start = FastmriVarNet(**TINY).varnet.state_dict()
    torch.save(start, tmp_path / "start.pt")
    cfg = _cfg(tiny_root, tmp_path / "run", f"model.weights={tmp_path / 'start.pt'}")
    _, module, _ = build(cfg)
    for k, v in start.items():
        assert torch.equal(module.net.varnet.state_dict()[k], v), k


def test_checkpoint_of_a_warm_started_run_loads_without_the_weights_file(tiny_root, tmp_path):
    """The run config keeps model.weights=PATH; rebuilding from the checkpoint must not read it."""
    from unrolled.cli.train import build
    from unrolled.inference.checkpoint import load_network

    torch.manual_seed(5)
    torch.save(FastmriVarNet(**TINY).varnet.state_dict(), tmp_path / "start.pt")
    cfg = _cfg(tiny_root, tmp_path / "run", f"model.weights={tmp_path / 'start.pt'}")
    _, module, _ = build(cfg)
    with torch.no_grad():  # the trained weights differ from the warm start
        for p in module.net.parameters():
            p.add_(0.01)
    ckpt = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(ckpt)  # what Lightning's ModelCheckpoint stores
    assert ckpt["unrolled_config"]["model"]["weights"] == str(tmp_path / "start.pt")
    torch.save(ckpt, tmp_path / "best.ckpt")
    (tmp_path / "start.pt").rename(tmp_path / "moved.pt")  # weights moved away
    net, config = load_network(tmp_path / "best.ckpt")
    assert config["model"]["weights"] == str(tmp_path / "start.pt")  # the record is kept
    for k, v in module.net.state_dict().items():
        assert torch.equal(net.state_dict()[k], v), k
