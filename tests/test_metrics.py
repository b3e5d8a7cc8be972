"""Our metrics equal fastMRI's evaluate.py on the same volumes."""

import numpy as np
import pytest
import torch

from unrolled.metrics import VolumeMetricAccumulator, nmse, psnr, ssim, volume_metrics


def _volumes(seed, shape=(5, 40, 33)):
    rng = np.random.default_rng(seed)
    gt = np.abs(rng.normal(size=shape)).cumsum(-1).astype(np.float32)
    pred = (gt + rng.normal(scale=0.3 * gt.std(), size=shape)).astype(np.float32)
    return gt, pred


@pytest.mark.parametrize("seed", range(4))
def test_metrics_match_fastmri_evaluate(seed):
    evaluate = pytest.importorskip("fastmri.evaluate")
    gt, pred = _volumes(seed)
    tg, tp = torch.from_numpy(gt), torch.from_numpy(pred)
    assert abs(float(nmse(tg, tp)) - float(evaluate.nmse(gt, pred))) < 1e-6
    assert abs(float(psnr(tg, tp)) - float(evaluate.psnr(gt, pred))) < 1e-6
    theirs = evaluate.ssim(gt, pred)
    theirs = theirs.item() if hasattr(theirs, "item") else theirs
    assert abs(float(ssim(tg, tp)) - theirs) < 1e-6


def test_accumulator_gives_volume_metrics_regardless_of_slice_order():
    gt, pred = _volumes(7)
    tg, tp = torch.from_numpy(gt), torch.from_numpy(pred)
    acc = VolumeMetricAccumulator()
    maxval = float(tg.max())
    for i in [3, 0, 4, 1, 2, 0]:  # any order, one duplicate
        acc.update("vol.h5", i, tp[i], tg[i], maxval)
    got = acc.volumes()["vol.h5"]
    want = volume_metrics(tg, tp)
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-9)


def test_perfect_reconstruction_scores():
    gt, _ = _volumes(1)
    t = torch.from_numpy(gt)
    assert float(ssim(t, t)) == pytest.approx(1.0)
    assert float(nmse(t, t)) == 0.0


def test_merging_rank_accumulators_counts_a_duplicated_volume_once():
    gt, pred = _volumes(3)
    tg, tp = torch.from_numpy(gt), torch.from_numpy(pred)
    maxval = float(tg.max())

    def acc_of(fname, slices):
        acc = VolumeMetricAccumulator()
        for i in slices:
            acc.update(fname, i, tp[i], tg[i], maxval)
        return acc

    merged = acc_of("a.h5", range(5))
    merged.merge(acc_of("b.h5", range(5)))
    merged.merge(acc_of("a.h5", range(5)))  # an idle rank's copy
    assert set(merged.volumes()) == {"a.h5", "b.h5"}
    assert merged.volumes()["a.h5"] == acc_of("a.h5", range(5)).volumes()["a.h5"]
    with pytest.raises(ValueError, match="split"):
        acc_of("c.h5", [0, 1]).merge(acc_of("c.h5", [2, 3]))
