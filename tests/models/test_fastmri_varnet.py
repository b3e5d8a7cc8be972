"""The fastMRI E2E-VarNet adapter: same image as fastmri's VarNet, trains through our loop."""

import sys

import pytest
import torch
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
