"""SSDU self-supervised training: the split, what the network sees, learning, DC/sens, the CLI."""

import dataclasses
import functools
import json
import math

import lightning as L
import pytest
import torch
from helpers.common import small_train_config
from torch import nn

from unrolled.cli.train import build
from unrolled.losses import KSpaceL1L2Loss, SSIML1Loss
from unrolled.physics.coils import espirit
from unrolled.training.ssdu import SSDUModule, SSDUSplit, slice_keys


def _cfg(root, out, *overrides):
    return small_train_config(root, out, "training=ssdu", *overrides)


def _batch(root, out, *overrides):
    cfg = _cfg(root, out, *overrides)
    dm, module, _ = build(cfg)
    return next(iter(dm.train_dataloader())), module


def _masks(b=3, h=32, w=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    cols = (torch.rand(b, 1, 1, w, generator=g) < 0.35).float()
    cols[..., w // 2 - 2 : w // 2 + 2] = 1
    return cols.expand(b, 1, h, w).contiguous()  # (B, 1, H, W) column masks


KEYS = [("a.h5", 0), ("a.h5", 1), ("b.h5", 0)]


@pytest.mark.parametrize("selection", ["uniform", "gaussian"])
def test_split_partitions_and_fixed_repeats(selection):
    mask = _masks()
    redrawn = SSDUSplit(ratio=0.4, selection=selection, fixed=False, seed=1)
    fixed = SSDUSplit(ratio=0.4, selection=selection, fixed=True, seed=1)
    theta, lam = redrawn(mask, KEYS, step=0)
    assert torch.equal(theta + lam, mask) and not (theta * lam).any()
    assert torch.allclose(lam.sum((1, 2, 3)), 0.4 * mask.sum((1, 2, 3)), atol=1)
    # re-drawn: deterministic per (seed, slice, step), different between steps and slices
    assert torch.equal(redrawn(mask, KEYS, step=0)[1], lam)
    assert not torch.equal(redrawn(mask, KEYS, step=1)[1], lam)
    same = redrawn(mask[:1].expand(3, -1, -1, -1), KEYS, step=0)[1]  # one mask, three slices
    assert not torch.equal(same[0], same[1]) and not torch.equal(same[0], same[2])
    # fixed: the same split at every step, also from a fresh object (a new process)
    first = fixed(mask, KEYS, step=0)[1]
    for step in (1, 7, None):
        assert torch.equal(fixed(mask, KEYS, step=step)[1], first)
    assert torch.equal(SSDUSplit(selection=selection, fixed=True, seed=1)(mask, KEYS, 3)[1], first)
    assert not torch.equal(SSDUSplit(selection=selection, fixed=True, seed=2)(mask, KEYS)[1], first)
    # a slice's split does not depend on its batch neighbours
    assert torch.equal(fixed(mask[1:2], KEYS[1:2])[1], first[1:2])


def test_split_protects_requested_center_block():
    mask = torch.ones(2, 1, 32, 24)
    theta, lam = SSDUSplit(ratio=0.5, selection="gaussian")(mask, KEYS[:2], 0, [(10, 6), (2, 2)])
    assert theta[0, 0, 11:21, 9:15].all() and lam[0].sum() > 0
    assert theta[1, 0, 14:18, 10:14].all()  # keep_center (4, 4) still applies
    with pytest.raises(ValueError, match="keys"):
        SSDUSplit()(mask, KEYS[:1])


class _Spy(nn.Module):
    """Records what the wrapped network is given."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.seen = []

    def forward(self, kspace, mask, num_low_frequencies, keys=None, return_cascades=False):
        self.seen.append((kspace.detach().clone(), mask.detach().clone()))
        return self.net(kspace, mask, num_low_frequencies, keys=keys)


def test_network_sees_only_theta_and_training_reads_no_target(tiny_root, tmp_path):
    batch, built = _batch(tiny_root, tmp_path)
    spy = _Spy(built.net)
    module = SSDUModule(
        spy,
        KSpaceL1L2Loss(),
        functools.partial(torch.optim.Adam, lr=1e-3),
        split=SSDUSplit(ratio=0.4, selection="uniform", seed=5),
    )
    no_target = dataclasses.replace(batch, target=torch.empty(len(batch.fname), 0, 0))
    assert not no_target.has_target
    loss = module.training_step(no_target, 0)
    assert math.isfinite(float(loss))
    loss.backward()
    assert all(p.grad is not None for p in spy.parameters() if p.requires_grad)

    theta, lam = module.split(batch.mask, slice_keys(batch), step=0)
    kspace, mask = spy.seen[-1]
    measured_lam = (batch.kspace.abs() > 0) & (lam > 0)
    assert measured_lam.sum() > 100  # the check below is not vacuous
    assert not kspace[measured_lam].any(), "Lambda samples reached the network"
    torch.testing.assert_close(kspace, batch.kspace * theta)
    assert torch.equal(mask, theta)
    # the loss is taken on Lambda: changing the measurements there changes it
    changed = dataclasses.replace(no_target, kspace=batch.kspace * (1 + lam))
    assert float(module.training_step(changed, 0)) != pytest.approx(float(loss))


def test_image_loss_is_rejected(tiny_root, tmp_path):
    _, built = _batch(tiny_root, tmp_path)
    with pytest.raises(ValueError, match="kspace_l1l2"):
        SSDUModule(built.net, SSIML1Loss(), functools.partial(torch.optim.Adam, lr=1e-3))


def test_espirit_maps_from_theta_equal_those_of_the_full_data(tiny_root, tmp_path):
    batch, module = _batch(tiny_root, tmp_path, "model/sens=espirit")
    assert module.protect_calibration
    nlf = batch.num_low_frequencies
    full = espirit(batch.kspace, nlf, crop=0.0)
    theta, lam = module._split(batch, step=0)
    assert lam.sum() > 0
    torch.testing.assert_close(espirit(batch.kspace * theta, nlf, crop=0.0), full)
    # the protection is what makes them equal: learned maps need none, and without it
    # the calibration block loses samples
    _, learned = _batch(tiny_root, tmp_path, "model/sens=learned")
    assert not learned.protect_calibration
    theta_u, _ = learned._split(batch, step=0)
    unprotected = espirit(batch.kspace * theta_u, nlf, crop=0.0)
    assert not torch.allclose(unprotected, full, atol=1e-3)


@pytest.mark.parametrize("sens", ["learned", "espirit"])
@pytest.mark.parametrize("dc", ["hard", "cg", "gradient"])
def test_one_step_each_dc_and_sens(tiny_root, tmp_path, dc, sens):
    cfg = _cfg(
        tiny_root, tmp_path, f"model/dc={dc}", f"model/sens={sens}", "trainer.fast_dev_run=true"
    )
    dm, module, trainer = build(cfg)
    assert isinstance(module, SSDUModule) and isinstance(module.loss, KSpaceL1L2Loss)
    before = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
    trainer.fit(module, datamodule=dm)
    # gradient DC's last step only moves Theta samples, which the Lambda loss never sees
    exempt = {f"net.dcs.{module.net.num_cascades - 1}.log_step"} if dc == "gradient" else set()
    unchanged = [
        n
        for n, p in module.named_parameters()
        if p.requires_grad and torch.equal(before[n], p) and n not in exempt
    ]
    assert not unchanged, f"parameters not updated by the first step: {unchanged}"
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    for name in ("train/loss", "val/loss", "val/ssim", "val/psnr"):
        assert math.isfinite(metrics[name]), (name, metrics)


def test_ssdu_improves_the_image_without_seeing_it(tiny_root, tmp_path):
    from unrolled.metrics import psnr

    L.seed_everything(0)
    batch, module = _batch(
        tiny_root, tmp_path, "mask.accelerations=[4]", "training.split.fixed=true"
    )
    no_target = dataclasses.replace(batch, target=torch.empty(len(batch.fname), 0, 0))
    opt = torch.optim.Adam(module.parameters(), lr=3e-3)

    def score():
        with torch.no_grad():
            pred, _ = module(batch)  # full acquisition, as in validation
            return float(psnr(batch.target, pred, batch.max_value.max())), float(
                module.eval_loss(batch, pred)
            )

    psnr0, loss0 = score()
    for step in range(40):
        loss = module.training_step(no_target, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    psnr1, loss1 = score()
    assert loss1 < 0.85 * loss0, (loss0, loss1)
    assert psnr1 > psnr0 + 1.0, (psnr0, psnr1)


def test_unrolled_train_job_with_training_ssdu(tiny_root, tmp_path):
    """The whole ``unrolled-train training=ssdu ...`` job (fit, test, baselines), in process."""
    from unrolled.cli.train import run

    cfg = _cfg(
        tiny_root,
        tmp_path,
        "trainer.max_epochs=1",
        "training.split.selection=uniform",
        "training.split.ratio=0.5",
        "cg_sense_lambda_grid=null",
        "~baselines.cg_sense",
    )
    results, best_val_ssim = run(cfg)
    assert {"unrolled", "zero_filled"} <= set(results)
    assert math.isfinite(results["unrolled"]["ssim"]) and math.isfinite(best_val_ssim)
    assert json.loads((tmp_path / "metrics.json").read_text()).keys() == results.keys()
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    config = ckpt["unrolled_config"]
    assert config["training"]["_target_"].endswith("SSDUModule")
    assert config["loss"]["_target_"].endswith("KSpaceL1L2Loss")
    assert config["training"]["split"]["ratio"] == 0.5
