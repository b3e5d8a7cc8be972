"""VolumeZeroShot: warm start along a volume, and never below its classical candidate."""

import copy
import logging
import math

import pytest
import torch

from unrolled.losses import KSpaceL1L2Loss
from unrolled.methods.classical import CGSense
from unrolled.methods.zeroshot import ZeroShot, log
from unrolled.methods.zeroshot_volume import VolumeZeroShot
from unrolled.models.dc import HardDC
from unrolled.models.denoisers import ComplexDenoiser, ResNet
from unrolled.models.sensitivity import EspiritSensitivity
from unrolled.models.unrolled import UnrolledNet
from unrolled.physics.fft import fft2c, ifft2c


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_net():
    return UnrolledNet(ComplexDenoiser(ResNet(2, 2, 4, 1)), HardDC(), EspiritSensitivity(), 1)


def smooth(gen, shape, size):
    low = torch.randn(*shape, size // 4, size // 4, generator=gen)
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear")


def sense_scan(batch=3, size=32, coils=4, acc=4, nlf=8, seed=0, noise=0.0):
    """Coil images = smooth maps x one smooth image per slice (slices alike), masked k-space."""
    g = torch.Generator().manual_seed(seed)
    m = smooth(g, (1, 2 * coils), size)
    maps = torch.complex(m[:, :coils], m[:, coils:]) + 1.0  # (1, C, H, W), shared by the slices
    base = smooth(g, (1, 2), size)
    drift = 0.2 * smooth(g, (batch, 2), size)  # neighbouring slices differ a little
    x = base + drift.cumsum(0)
    img = torch.complex(x[:, :1], x[:, 1:])  # (B, 1, H, W)
    full = fft2c(maps * img)
    full = full + noise * torch.randn(full.shape, dtype=full.dtype, generator=g)
    cols = torch.zeros(size)
    cols[::acc] = 1
    cols[size // 2 - nlf // 2 : size // 2 + nlf // 2] = 1
    mask = cols.reshape(1, 1, 1, size).expand(batch, 1, size, size).contiguous()
    return full * mask, mask, torch.full((batch,), nlf)


OPTS = dict(max_steps=8, warmup_steps=2, val_every=2, patience=50, time_budget_s=None, lr=3e-3)


class Spy:
    """Records the weights each fit starts from and the weights it returns."""

    def __init__(self, monkeypatch):
        self.calls = []
        original = ZeroShot.fit_scan

        def fit_scan(method, *args, init=None, **kwargs):
            start = None if init is None else copy.deepcopy(init.state_dict())
            net, hist = original(method, *args, init=init, **kwargs)
            self.calls.append((start, copy.deepcopy(net.state_dict()), method.max_steps))
            return net, hist

        monkeypatch.setattr(ZeroShot, "fit_scan", fit_scan)


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a) and a.keys() == b.keys()


def test_each_slice_starts_from_the_previous_slice_fit_of_its_volume(monkeypatch):
    spy = Spy(monkeypatch)
    kspace, mask, nlf = sense_scan(batch=3)
    method = VolumeZeroShot(tiny_net(), warm_steps=3, warm_lr=1e-3, warm_warmup_steps=1, **OPTS)
    keys = [("a.h5", 0), ("a.h5", 1), ("b.h5", 0)]
    with torch.no_grad():
        first = method(kspace[:2], mask[:2], nlf[:2], keys=keys[:2])
        second = method(kspace[2:], mask[2:], nlf[2:], keys=keys[2:])  # next batch, next file
    assert first.image.shape == (2, 32, 32) and second.image.shape == (1, 32, 32)
    h = method.histories
    assert [x.start for x in h] == [None, ("a.h5", 0), None]
    assert [x.last_step for x in h] == [8, 3, 8]  # warm slice: the short schedule
    assert [c[2] for c in spy.calls] == [8, 3, 8] and method.max_steps == 8  # restored
    assert spy.calls[0][0] is None and spy.calls[2][0] is None  # volume starts: from `net`
    assert same(spy.calls[1][0], spy.calls[0][1])  # slice 1 starts from slice 0's kept fit
    assert max(r.lr for r in h[1].records) <= 1e-3 + 1e-12 < max(r.lr for r in h[0].records)
    # the warm-started slice's held-out loss before any step is that of slice 0's network
    assert h[1].best_val_loss <= h[1].initial_val_loss


def test_warm_start_off_fits_every_slice_from_the_same_initial_weights(monkeypatch):
    spy = Spy(monkeypatch)
    kspace, mask, nlf = sense_scan(batch=2)
    method = VolumeZeroShot(tiny_net(), warm_start=False, **OPTS)
    with torch.no_grad():
        method(kspace, mask, nlf, keys=[("a.h5", 0), ("a.h5", 1)])
    assert [x.start for x in method.histories] == [None, None]
    assert [x.last_step for x in method.histories] == [8, 8]
    assert [c[0] for c in spy.calls] == [None, None]


def held_out_losses(method, kspace, mask, nlf):
    """Independently: CG-SENSE (its own one-set ESPIRiT, as the net's) from Omega minus Gamma."""
    out = []
    for i in range(kspace.shape[0]):
        gamma = method.split(mask[i : i + 1], int(nlf[i]))[0]
        train = mask[i : i + 1] - gamma
        cg = CGSense(lam=0.0172, max_iter=30, espirit=EspiritSensitivity())(
            kspace[i : i + 1] * train, train, nlf[i : i + 1]
        )
        out.append(float(KSpaceL1L2Loss()(cg.kspace, kspace[i : i + 1], gamma)))
    return out


def brain_scan(images, size=64, acc=4, nlf=8):
    """The real brain, low-pass to ``size`` x ``size`` (its k-space centre), 2 slices alike."""
    full = fft2c(images)  # (C, 256, 256)
    c = full.shape[-1] // 2
    full = full[:, c - size // 2 : c + size // 2, c - size // 2 : c + size // 2]
    full = torch.stack([full, full.flip(-2).conj().flip(-1)])  # a mirror-image neighbour
    cols = torch.zeros(size)
    cols[1::acc] = 1
    cols[size // 2 - nlf // 2 : size // 2 + nlf // 2] = 1
    mask = cols.reshape(1, 1, 1, size).expand(2, 1, size, size).contiguous()
    return full * mask, mask, torch.full((2,), nlf)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # smooth random coil images: no single set of ESPIRiT maps fits them, the net wins
        ("synthetic", "network"),
        # the real brain at 64 x 64: CG-SENSE predicts the held-out samples better than an
        # 8-step fit from scratch does, so CG-SENSE's image is what comes out
        ("brain", "classical"),
    ],
)
def test_the_result_is_never_worse_on_held_out_data_than_cg_sense(data, expected, request):
    if data == "brain":
        kspace, mask, nlf = brain_scan(request.getfixturevalue("real_brain_images"))
    else:
        kspace, mask, nlf = sense_scan(batch=2, noise=0.02)
    method = VolumeZeroShot(tiny_net(), classical=CGSense(lam=0.0172, max_iter=30), **OPTS)
    with torch.no_grad():
        out = method(kspace, mask, nlf, keys=[("a.h5", 0), ("a.h5", 1)], return_cascades=True)
    classical = held_out_losses(method, kspace, mask, nlf)
    for i, h in enumerate(method.histories):
        assert h.classical_val_loss == pytest.approx(classical[i], rel=1e-4)
        assert h.chosen == expected
        if h.chosen == "network":
            assert h.best_val_loss < classical[i]
        else:
            assert h.best_val_loss >= classical[i]
            one = slice(i, i + 1)
            cg = CGSense(lam=0.0172, max_iter=30, espirit=EspiritSensitivity())(
                kspace[one], mask[one], nlf[one]
            )
            torch.testing.assert_close(out.image[i], cg.image[0], rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(out.cascades[0][i], out.image[i])


def test_rejects_bad_warm_start_options():
    with pytest.raises(ValueError, match="warm_steps and warm_lr must be positive"):
        VolumeZeroShot(tiny_net(), warm_steps=0)
    with pytest.raises(ValueError, match="warm_steps and warm_lr must be positive"):
        VolumeZeroShot(tiny_net(), warm_lr=0.0)


def test_a_warm_slice_has_its_own_time_budget_and_the_configured_one_comes_back():
    kspace, mask, nlf = sense_scan(batch=2)
    opts = {**OPTS, "time_budget_s": 600.0}
    method = VolumeZeroShot(tiny_net(), warm_steps=5, warm_time_budget_s=1e-9, **opts)
    with torch.no_grad():
        method(kspace, mask, nlf, keys=[("a.h5", 0), ("a.h5", 1)])
    first, warm = method.histories
    assert (first.last_step, first.stop_reason) == (8, "max_steps")
    assert (warm.last_step, warm.stop_reason) == (1, "time_budget")
    assert method.time_budget_s == 600.0 and method.max_steps == 8 and method.lr == 3e-3


def test_an_oversampled_readout_is_fitted_on_half_the_rows_and_padded_back():
    kspace, mask, nlf = sense_scan(batch=1, size=32)
    images = torch.zeros(1, 4, 64, 32, dtype=kspace.dtype)  # the same scan, 2x readout
    images[..., 16:48, :] = ifft2c(kspace)
    full = fft2c(images) * mask[..., :1, :]
    mask2 = mask[..., :1, :].expand(1, 1, 64, 32)
    method = VolumeZeroShot(tiny_net(), **OPTS)
    out = method(full, mask2, nlf)
    (hist,) = method.histories
    assert hist.readout_rows == 32
    assert out.image.shape == (1, 64, 32) and out.kspace.shape == full.shape
    assert out.image[:, :16].abs().max() == 0 and out.image[:, 48:].abs().max() == 0
    # hard data consistency survives the crop and the padding back
    acquired = mask2.expand_as(full) != 0
    assert torch.allclose(out.kspace[acquired], full[acquired], atol=1e-4 * full.abs().max())
    off = VolumeZeroShot(tiny_net(), readout_oversampling=1, **OPTS)
    off(full, mask2, nlf)
    assert off.histories[0].readout_rows is None


def test_the_configured_method_starts_from_cg_sense_or_weighs_it_as_a_candidate_when_asked(
    caplog,
):
    """``method=zeroshot`` as configured starts every fit from conf/method/cg_sense.yaml's
    reconstruction (the held-out loss before the first step is CG-SENSE's); with
    ``method.classical_start=false`` CG-SENSE is instead weighed as a candidate on the held-out
    samples; with ``method.classical=null`` as well, neither (the zero-filled start). The log
    line of each slice says which."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from unrolled.cli.compose import compose_option

    cfg = compose_option("method", "zeroshot")
    assert cfg.classical_start is True
    assert cfg.classical._target_ == "unrolled.methods.classical.CGSense"
    cfg.net.num_cascades, cfg.net.denoiser.cnn.channels, cfg.net.denoiser.cnn.num_blocks = 1, 4, 1
    kspace, mask, nlf = sense_scan(batch=1, noise=0.02)
    keys = [("a.h5", 0)]
    opts = {**OPTS, "readout_oversampling": 1}
    classical = held_out_losses(method=VolumeZeroShot(tiny_net(), **opts), kspace=kspace,
                                mask=mask, nlf=nlf)  # fmt: skip
    started = instantiate(cfg, **opts)
    assert isinstance(started.classical, CGSense)
    with torch.no_grad(), caplog.at_level(logging.INFO, logger=log.name):
        started(kspace, mask, nlf, keys=keys)
    (hist,) = started.histories
    assert hist.initial_val_loss == pytest.approx(classical[0], rel=1e-4)
    assert hist.chosen == "network" and math.isnan(hist.classical_val_loss)
    (line,) = [r.getMessage() for r in caplog.records if "stopped at step" in r.getMessage()]
    assert "started from CGSense" in line and "chose network" in line
    assert "nan" not in line

    cfg.classical_start = False
    candidate = instantiate(cfg, **opts)
    caplog.clear()
    with torch.no_grad(), caplog.at_level(logging.INFO, logger=log.name):
        candidate(kspace, mask, nlf, keys=keys)
    (hist,) = candidate.histories
    assert hist.classical_val_loss == pytest.approx(classical[0], rel=1e-4)
    (line,) = [r.getMessage() for r in caplog.records if "stopped at step" in r.getMessage()]
    assert "zero-filled input" in line and f"CGSense {hist.classical_val_loss:.4f}" in line
    assert hist.chosen == ("network" if hist.best_val_loss < classical[0] else "classical")
    assert hist.initial_val_loss != pytest.approx(classical[0], rel=1e-2)  # zero-filled start

    cfg.classical = None
    neither = instantiate(cfg, **opts)
    with torch.no_grad():
        neither(kspace, mask, nlf, keys=keys)
    (hist,) = neither.histories
    assert hist.chosen == "network" and math.isnan(hist.classical_val_loss)
    assert hist.initial_val_loss == candidate.histories[0].initial_val_loss
    cfg.classical_start = True
    with pytest.raises(InstantiationException, match="classical_start needs a classical method"):
        instantiate(cfg, **opts)


@pytest.mark.parametrize("data", ["synthetic", "brain"])
def test_a_fit_started_from_cg_sense_is_never_worse_on_held_out_data_than_its_start(data, request):
    """``classical_start``: before any step the network returns CG-SENSE's image made
    data-consistent, so its held-out loss is CG-SENSE's (one cascade: exactly); the kept
    step is never worse than that. On the real brain, zero-filled k-space is a worse start."""
    if data == "brain":
        kspace, mask, nlf = brain_scan(request.getfixturevalue("real_brain_images"))
    else:
        kspace, mask, nlf = sense_scan(batch=2, noise=0.02)
    keys = [("a.h5", 0), ("a.h5", 1)]
    opts = {**OPTS, "readout_oversampling": 1}
    cg = CGSense(lam=0.0172, max_iter=30)
    method = VolumeZeroShot(tiny_net(), classical=cg, classical_start=True, **opts)
    with torch.no_grad():
        out = method(kspace, mask, nlf, keys=keys)
    classical = held_out_losses(method, kspace, mask, nlf)
    first, second = method.histories
    assert first.initial_val_loss == pytest.approx(classical[0], rel=1e-4)
    for h in method.histories:
        assert h.best_val_loss <= h.initial_val_loss
        assert h.chosen == "network" and math.isnan(h.classical_val_loss)  # a start, no candidate
    assert second.start == keys[0]  # the volume's warm start still applies
    if first.best_step == 0:  # kept the start: CG-SENSE from all samples, samples put back
        one = slice(0, 1)
        ref = CGSense(lam=0.0172, max_iter=30, espirit=EspiritSensitivity())(
            kspace[one], mask[one], nlf[one]
        )
        dc = torch.where(mask[one].expand_as(ref.kspace) > 0, kspace[one], ref.kspace)
        torch.testing.assert_close(out.kspace[0], dc[0], rtol=1e-4, atol=1e-6)
    if data == "brain":  # where CG-SENSE fits (not the smooth random maps): a better start
        scratch = VolumeZeroShot(tiny_net(), **opts)
        with torch.no_grad():
            scratch(kspace[:1], mask[:1], nlf[:1], keys=keys[:1])
        assert scratch.histories[0].initial_val_loss > 1.5 * first.initial_val_loss  # 1.87


def test_classical_start_needs_a_classical_method_and_a_net_that_takes_a_start():
    with pytest.raises(ValueError, match="classical_start needs a classical method"):
        VolumeZeroShot(tiny_net(), classical_start=True)

    class NoStart(torch.nn.Module):
        def forward(self, kspace, mask, num_low_frequencies, keys=None, return_cascades=False):
            raise AssertionError("not called")

    with pytest.raises(ValueError, match="NoStart cannot start from a given k-space"):
        VolumeZeroShot(NoStart(), classical=CGSense(), classical_start=True)


def test_the_log_line_names_the_weights_each_slice_starts_from(tmp_path, caplog):
    """A checkpoint's file for the first slice of a volume, the previous slice after it."""
    path = tmp_path / "pretrained.pt"
    torch.save(tiny_net().state_dict(), path)
    kspace, mask, nlf = sense_scan(batch=2)
    method = VolumeZeroShot(tiny_net(), checkpoint=path, readout_oversampling=1, **OPTS)
    keys = [("a.h5", 0), ("a.h5", 1)]
    with torch.no_grad(), caplog.at_level(logging.INFO, logger=log.name):
        method(kspace, mask, nlf, keys=keys)
    lines = [r.getMessage() for r in caplog.records if "stopped at step" in r.getMessage()]
    assert len(lines) == 2
    assert lines[0].startswith("zero-shot ('a.h5', 0): weights of pretrained.pt, zero-filled input")
    assert lines[1].startswith("zero-shot ('a.h5', 1): weights of slice ('a.h5', 0), zero-filled")
