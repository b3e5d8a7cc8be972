import pytest
import torch

from unrolled.losses import SSIML1Loss
from unrolled.training.schedules import warmup_cosine, warmup_step


def test_loss_zero_at_target_and_scale_free():
    t = torch.rand(2, 32, 32) + 0.1
    loss = SSIML1Loss()
    assert float(loss(t, t, t.flatten(1).amax(1))) == pytest.approx(0.0, abs=1e-6)
    p = t + 0.05 * torch.randn_like(t)
    a = loss(p, t, t.flatten(1).amax(1))
    b = loss(1e-5 * p, 1e-5 * t, 1e-5 * t.flatten(1).amax(1))
    assert float(a) > 0.01
    assert float(a) == pytest.approx(float(b), rel=1e-3)


def test_loss_rejects_bad_weights():
    with pytest.raises(ValueError):
        SSIML1Loss(0.0, 0.0)


@pytest.mark.parametrize("factory", [warmup_cosine, warmup_step])
def test_schedules_warm_up_then_decay(factory):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = factory(opt, total_steps=100, warmup_steps=10)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] < lrs[5] < lrs[10] == pytest.approx(1.0)
    assert lrs[-1] < 0.2
    assert all(b >= a for a, b in zip(lrs[:10], lrs[1:11], strict=True))
