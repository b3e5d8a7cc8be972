"""Zero-shot scan-specific reconstruction: splits, stopping, warm start, interface, real brain.

Tiny problems (4 coils, 32 x 32 or 64 x 64, one cascade of a 4-channel CNN) keep
each test well under a second or two; the real-brain test is ``slow``.
"""

import copy
import io
import math

import pytest
import torch

from unrolled.data.errors import DataError
from unrolled.losses import KSpaceL1L2Loss
from unrolled.methods.zeroshot import ZeroShot, load_warm_start
from unrolled.methods.zeroshot_history import history_csv, plot_histories
from unrolled.models.dc import HardDC
from unrolled.models.denoisers import ComplexDenoiser, ResNet
from unrolled.models.reconstructor import Reconstruction as UnrolledOutput
from unrolled.models.sensitivity import EspiritSensitivity, LearnedSensitivity
from unrolled.models.unrolled import UnrolledNet
from unrolled.physics.calibration import calibration_columns
from unrolled.physics.fft import fft2c
from unrolled.physics.masks import EquispacedMaskFractionFunc

pytestmark = pytest.mark.usefixtures("one_thread_test")


def tiny_net(sens=None, cascades=1, channels=4):
    cnn = ResNet(2, 2, channels, 1)
    return UnrolledNet(ComplexDenoiser(cnn), HardDC(), sens or EspiritSensitivity(), cascades)


def tiny_scan(batch=1, size=32, acc=4, nlf=8, seed=0):
    """Smooth random coil images -> undersampled k-space, mask (B, 1, H, W), nlf (B,)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.randn(batch, 8, size // 4, size // 4, generator=g)  # (B, 2C, h, w)
    up = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear")
    img = torch.complex(up[:, :4], up[:, 4:])  # (B, C, H, W)
    full = fft2c(img)  # (B, C, H, W)
    cols = torch.zeros(size)
    cols[::acc] = 1
    cols[size // 2 - nlf // 2 : size // 2 + nlf // 2] = 1
    mask = cols.reshape(1, 1, 1, size).expand(batch, 1, size, size).contiguous()
    return full * mask, mask, torch.full((batch,), nlf)


def zs(net=None, **kw):
    opts = dict(max_steps=6, warmup_steps=2, val_every=2, patience=50, time_budget_s=None)
    return ZeroShot(net or tiny_net(), **{**opts, **kw})


def test_split_partitions_the_samples_and_keeps_gamma_out_of_the_calibration_region():
    _, mask, nlf = tiny_scan(size=64, acc=2)
    method = zs(num_splits=3)
    gamma, pairs = method.split(mask, int(nlf))
    acs = calibration_columns(64, nlf).float()
    assert float((gamma * acs).sum()) == 0
    assert float(gamma.sum()) == pytest.approx(0.2 * float(mask.sum()), abs=1)
    for theta, lam in pairs:
        assert float((theta * lam).sum()) == 0 and float((theta * gamma).sum()) == 0
        torch.testing.assert_close(theta + lam + gamma, mask)
        assert float(lam.sum()) == pytest.approx(0.4 * float((mask - gamma).sum()), abs=1)
    assert not torch.equal(pairs[0][1], pairs[1][1])  # distinct partitions
    again, _ = zs(num_splits=3).split(mask, int(nlf))
    torch.testing.assert_close(gamma, again)  # seeded


class Calls(list):
    """A list that copies of its owner share (the method fits a deep copy of the net)."""

    def __deepcopy__(self, memo):
        return self


class Spy(torch.nn.Module):
    """Records what a wrapped network or loss is given."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.sens = getattr(inner, "sens", None)
        self.calls = Calls()

    def forward(self, *args, **kwargs):
        self.calls.append((args, torch.is_grad_enabled()))
        return self.inner(*args, **kwargs)


def test_held_out_samples_never_reach_the_network_input_or_the_training_loss():
    kspace, mask, nlf = tiny_scan()
    net, loss = Spy(tiny_net()), Spy(KSpaceL1L2Loss())
    method = zs(net, loss=loss)
    gamma, _ = method.split(mask, int(nlf))
    method.fit_scan(kspace, mask, nlf)
    assert len(net.calls) >= 6
    for (k, m, *_), _grad in net.calls:  # every input of the fit
        assert float((m * gamma).sum()) == 0
        assert float((k.abs() * gamma).sum()) == 0
    train = [args for args, grad in loss.calls if grad]
    val = [args for args, grad in loss.calls if not grad]
    assert len(train) == 6 and len(val) == 4  # steps 0 (initial), 2, 4, 6
    for _, _, m in train:
        assert float((m * gamma).sum()) == 0
    for _, _, m in val:
        torch.testing.assert_close(m, gamma)


class ScriptedLoss(KSpaceL1L2Loss):
    """The true loss in training; a scripted sequence for the held-out loss."""

    def __init__(self, values):
        super().__init__()
        self.values = list(values)

    def forward(self, pred, target, mask):
        if torch.is_grad_enabled():
            return super().forward(pred, target, mask)
        return torch.tensor(self.values.pop(0))


def test_early_stopping_triggers_and_restores_the_best_weights():
    kspace, mask, nlf = tiny_scan()
    # validations at steps 0, 2, 4, ...: best at step 4, then 3 without improvement
    method = zs(max_steps=100, patience=3, loss=ScriptedLoss([1.0, 0.9, 0.5, 0.6, 0.55, 0.7]))
    states = {}

    def snapshot(step, net):
        states[step] = copy.deepcopy(net.state_dict())
        return {"snapshots": float(len(states))}

    fitted, hist = method.fit_scan(kspace, mask, nlf, key=("f", 0), monitor=snapshot)
    assert hist.stop_reason == "patience" and hist.last_step == 10
    assert hist.best_step == 4 and hist.best_val_loss == pytest.approx(0.5)
    assert hist.initial_val_loss == pytest.approx(1.0)
    assert [r.step for r in hist.records if not math.isnan(r.val_loss)] == [2, 4, 6, 8, 10]
    for name, value in fitted.state_dict().items():
        torch.testing.assert_close(value, states[4][name])
    assert any(not torch.equal(v, states[10][k]) for k, v in states[4].items())
    # the template is untouched: the next slice starts afresh
    for name, value in method.net.state_dict().items():
        torch.testing.assert_close(value, states[0][name])


def test_time_budget_stops_and_the_schedule_warms_up_then_decays():
    kspace, mask, nlf = tiny_scan()
    _, hist = zs(max_steps=50, time_budget_s=1e-6).fit_scan(kspace, mask, nlf)
    assert hist.stop_reason == "time_budget" and hist.last_step == 1
    assert not math.isnan(hist.records[-1].val_loss)  # validated before stopping
    method = zs(lr=1.0, max_steps=100, warmup_steps=10, min_lr_ratio=0.01, time_budget_s=10.0)
    lrs = [method.lr_factor(s) for s in range(100)]
    assert lrs[0] < lrs[5] < lrs[9] < 1.0 and max(lrs) == pytest.approx(1.0, abs=1e-3)
    assert all(b <= a for a, b in zip(lrs[10:], lrs[11:], strict=False))
    assert lrs[-1] < 0.02
    # once the budget is half spent, the decay is at least half way, whatever the step
    assert method.lr_factor(20, elapsed=5.0) == pytest.approx(0.505)
    assert method.lr_factor(20, elapsed=20.0) == pytest.approx(0.01)


def test_warm_start_loads_weights_strictly_or_where_they_match(tmp_path):
    source = tiny_net(LearnedSensitivity(channels=4, num_blocks=1))
    with torch.no_grad():
        for p in source.parameters():
            p.add_(1.0)
    path = tmp_path / "net.ckpt"
    state = {f"net.{k}": v for k, v in source.state_dict().items()}
    torch.save({"state_dict": state, "unrolled_config": {}}, path)
    same = ZeroShot(tiny_net(LearnedSensitivity(channels=4, num_blocks=1)), checkpoint=path)
    for k, v in source.state_dict().items():
        torch.testing.assert_close(same.net.state_dict()[k], v)
    # learned maps in the checkpoint, ESPIRiT in the zero-shot net: the denoiser is loaded
    partial = ZeroShot(tiny_net(EspiritSensitivity()), checkpoint=path, strict=False)
    for k, v in partial.net.state_dict().items():
        torch.testing.assert_close(v, source.state_dict()[k])
    with pytest.raises(RuntimeError, match="Unexpected key"):
        ZeroShot(tiny_net(EspiritSensitivity()), checkpoint=path, strict=True)
    with pytest.raises(ValueError, match="differs in shape: denoisers.0.cnn.head.weight"):
        load_warm_start(tiny_net(channels=6), path)
    torch.save({"other.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="no weight of the checkpoint matches"):
        load_warm_start(tiny_net(), tmp_path / "other.pt")
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="bad.ckpt: not a readable checkpoint"):
        load_warm_start(tiny_net(), tmp_path / "bad.ckpt")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        ZeroShot(tiny_net(), checkpoint=tmp_path / "nope.ckpt")


def test_seed_fixes_the_initial_weights():
    a, b = zs(tiny_net()).net, zs(tiny_net()).net
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(va, vb, msg=k)


def test_the_method_interface_under_no_grad_keeps_shapes_and_measurements():
    kspace, mask, nlf = tiny_scan(batch=2)
    method = zs().eval()
    with torch.no_grad():
        out = method(kspace, mask, nlf, keys=[("a.h5", 0), ("a.h5", 1)], return_cascades=True)
    assert isinstance(out, UnrolledOutput)
    assert out.image.shape == (2, 32, 32) and out.kspace.shape == kspace.shape
    assert out.maps.shape == kspace.shape and len(out.cascades) == 1
    assert out.cascades[0].shape == (2, 32, 32) and torch.isfinite(out.image).all()
    torch.testing.assert_close(out.kspace * mask, kspace)  # hard DC: all acquired data used
    assert [h.key for h in method.histories] == [("a.h5", 0), ("a.h5", 1)]
    assert all(h.last_step == 6 and h.stop_reason == "max_steps" for h in method.histories)
    assert not any(p.grad is not None for p in method.net.parameters())  # template untouched
    text = history_csv(method.histories)
    lines = text.splitlines()
    assert lines[0] == "key,step,train_loss,val_loss,lr,seconds" and len(lines) == 13
    assert lines[1].startswith("a.h5/0,1,") and lines[-1].startswith("a.h5/1,6,")
    png = io.BytesIO()
    plot_histories(method.histories, png, title="a.h5")
    assert png.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rejects_bad_options():
    with pytest.raises(ValueError, match="must be positive"):
        zs(max_steps=0)
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        zs(val_ratio=1.0)
    _, mask, nlf = tiny_scan(nlf=24)  # 32 columns, 24 of them calibration
    with pytest.raises(ValueError, match="outside the calibration region"):
        zs(val_ratio=0.5).split(mask, int(nlf))


@pytest.mark.slow
def test_zero_shot_beats_cg_sense_on_the_real_brain_at_4x(real_brain_images):
    """The configured method at a reduced budget (60 steps) against CG-SENSE's YAML weights,
    started from CG-SENSE (the default) and from zero-filled k-space (the network alone)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from unrolled.cli.common import CONFIG_DIR
    from unrolled.cli.compose import compose_option
    from unrolled.metrics import psnr, ssim
    from unrolled.physics.coils import rss

    full = fft2c(real_brain_images)[None]  # (1, C, H, W)
    mask, nlf = EquispacedMaskFractionFunc([0.08], [4], seed=0)(full.shape)
    mask = mask.reshape(1, 1, 1, -1).expand(1, 1, *full.shape[-2:]).contiguous()
    kspace, nlf = full * mask, torch.tensor([nlf])
    reference = rss(real_brain_images, dim=0)
    conf = compose_option("method", "zeroshot")
    budget = {"max_steps": 60, "warmup_steps": 10, "time_budget_s": 300}
    methods = {
        "zeroshot": instantiate(conf, **budget),
        "zeroshot_zero_filled_start": instantiate(
            conf, **budget, classical=None, classical_start=False
        ),
        "cg_sense": instantiate(OmegaConf.load(f"{CONFIG_DIR}/method/cg_sense.yaml")),
    }
    scores = {}
    for name, m in methods.items():
        with torch.no_grad():
            image = m(kspace, mask, nlf, keys=[("brain", 0)]).image[0]
        scores[name] = float(psnr(reference, image)), float(ssim(reference, image))
    print(scores)
    for name in ("zeroshot", "zeroshot_zero_filled_start"):
        assert scores[name][0] > scores["cg_sense"][0] + 0.5, name
        assert scores[name][1] > scores["cg_sense"][1] + 0.02, name
