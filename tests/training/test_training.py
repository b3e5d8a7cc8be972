"""Training end to end on a tiny embedded data set: DC variants, learning, determinism, resume."""

import math
import re

import lightning as L
import pytest
import torch
from helpers.common import small_train_config
from omegaconf import open_dict

from unrolled.cli.train import build
from unrolled.inference.checkpoint import load_network

_cfg = small_train_config


@pytest.mark.parametrize("dc", ["hard", "cg", "gradient"])
def test_fast_dev_run_each_dc(tiny_root, tmp_path, dc):
    cfg = _cfg(tiny_root, tmp_path, f"model/dc={dc}", "trainer.fast_dev_run=true")
    dm, module, trainer = build(cfg)
    trainer.fit(module, datamodule=dm)
    assert trainer.state.finished
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))


def test_bf16_mixed_precision_keeps_physics_in_float32(tiny_root, tmp_path):
    cfg = _cfg(
        tiny_root,
        tmp_path,
        "model/dc=cg",
        "trainer.precision=bf16-mixed",
        "trainer.fast_dev_run=true",
    )
    dm, module, trainer = build(cfg)
    trainer.fit(module, datamodule=dm)
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    batch = next(iter(dm.val_dataloader()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module.net(batch.kspace, batch.mask, batch.num_low_frequencies)
    assert out.kspace.dtype == torch.complex64 and out.image.dtype == torch.float32


@pytest.mark.parametrize(
    "dc,sens", [("cg", "learned"), ("gradient", "learned"), ("hard", "espirit")]
)
def test_one_step_changes_every_trainable_parameter(tiny_root, tmp_path, dc, sens):
    cfg = _cfg(
        tiny_root,
        tmp_path,
        f"model/dc={dc}",
        f"model/sens={sens}",
        "trainer.max_steps=1",
        "trainer.limit_val_batches=0",
    )
    dm, module, trainer = build(cfg)
    before = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
    assert any("log_" in n for n in before) or dc == "hard"
    trainer.fit(module, datamodule=dm)
    unchanged = [
        n for n, p in module.named_parameters() if p.requires_grad and torch.equal(before[n], p)
    ]
    assert not unchanged, f"parameters not updated by the first step: {unchanged}"


def test_overfitting_one_slice_raises_psnr(tiny_root, tmp_path):
    from unrolled.metrics import psnr

    cfg = _cfg(tiny_root, tmp_path, "mask.accelerations=[4]")
    L.seed_everything(0)
    dm, module, _ = build(cfg)
    batch = next(iter(dm.train_dataloader()))
    opt = torch.optim.Adam(module.parameters(), lr=3e-3)

    def score():
        with torch.no_grad():
            pred, _ = module(batch)
        return float(psnr(batch.target, pred, batch.max_value.max()))

    start = score()
    for _ in range(40):
        pred, _ = module(batch)
        loss = module.loss(pred, batch.target, batch.max_value)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert score() > start + 3.0, (start, score())


class _StopAfterFirstEpoch(L.Callback):
    """Simulates an interruption: the run ends after epoch 0 with its schedule intact."""

    def on_train_epoch_end(self, trainer, pl_module):
        trainer.should_stop = True


def _losses(root, out, *extra, interrupt=False):
    cfg = _cfg(root, out, "trainer.max_epochs=2", "trainer.log_every_n_steps=1", *extra)
    L.seed_everything(cfg.seed, workers=True)
    dm, module, trainer = build(cfg)
    seen = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.append(float(outputs["loss"]))

    trainer.callbacks.append(Record())
    if interrupt:
        trainer.callbacks.append(_StopAfterFirstEpoch())
    ckpt = extra[-1].split("=", 1)[1] if extra and extra[-1].startswith("+ckpt=") else None
    if ckpt:
        with open_dict(cfg):
            del cfg.ckpt
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt)
    return seen, module, trainer


def test_same_seed_same_losses(tiny_root, tmp_path):
    a, _, _ = _losses(tiny_root, tmp_path / "a")
    b, _, _ = _losses(tiny_root, tmp_path / "b")
    assert len(a) == 4 and a == b  # 2 epochs x 2 batches of 2 slices


def test_resume_continues_exactly(tiny_root, tmp_path):
    full, full_module, _ = _losses(tiny_root, tmp_path / "full")
    first, _, _ = _losses(tiny_root, tmp_path / "part", interrupt=True)
    assert len(first) == 2
    last = tmp_path / "part" / "checkpoints" / "last.ckpt"
    assert last.is_file()
    rest, resumed, _ = _losses(tiny_root, tmp_path / "part", f"+ckpt={last}")
    assert first + rest == full
    for (n, p), q in zip(
        full_module.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=n)


def test_checkpoint_loads_weights_only_with_its_config(tiny_root, tmp_path, monkeypatch):
    import unrolled.training.callbacks as callbacks

    grids = []
    save = callbacks.save_image_grid

    def record(rows, path, title="", row_labels=None):
        grids.append(row_labels)
        return save(rows, path, title, row_labels=row_labels)

    monkeypatch.setattr(callbacks, "save_image_grid", record)
    cfg = _cfg(tiny_root, tmp_path, "trainer.max_epochs=1")
    dm, module, trainer = build(cfg)
    trainer.fit(module, datamodule=dm)
    best = trainer.checkpoint_callback.best_model_path
    assert best
    ckpt = torch.load(best, weights_only=True)
    assert ckpt["unrolled_config"]["model"]["num_cascades"] == 2
    net, config = load_network(best)
    batch = next(iter(dm.val_dataloader()))
    with torch.no_grad():
        a = net(batch.kspace, batch.mask, batch.num_low_frequencies).image
        module.load_state_dict(ckpt["state_dict"])
        b = module.net.eval()(batch.kspace, batch.mask, batch.num_low_frequencies).image
    torch.testing.assert_close(a, b)
    assert (tmp_path / "figures").is_dir() or list(tmp_path.rglob("val_epoch*.png"))
    # the validation grid names the file and slice of each row (issue 15, figures)
    assert grids
    assert all(re.fullmatch(r".+\.h5, slice \d+", label) for label in grids[0])
