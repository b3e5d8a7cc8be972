"""Hold-out folds for k-space cross-validation: never the calibration region, disjoint, exact."""

import pytest
import torch

from unrolled.physics.grid_masks import PoissonDiscMaskFunc
from unrolled.physics.holdout import calibration_region, holdout_folds, is_line_mask
from unrolled.physics.masks import EquispacedMaskFractionFunc


def line_mask(h=64, w=96, acc=4, cf=0.08):
    mask, nlf = EquispacedMaskFractionFunc([cf], [acc], seed=0)((1, 1, h, w))
    return mask.reshape(1, 1, 1, w).expand(1, 1, h, w).contiguous(), int(nlf)


@pytest.mark.parametrize("holdout", ["lines", "points"])
@pytest.mark.parametrize("selection", ["uniform", "gaussian"])
def test_folds_avoid_calibration_are_disjoint_and_sum_to_the_mask(holdout, selection):
    mask, nlf = line_mask()
    gen = torch.Generator().manual_seed(1)
    keep, held = holdout_folds(mask, nlf, 0.1, 3, holdout, gen, selection=selection)
    assert keep.shape == held.shape == (3, 1, 64, 96)
    calib = calibration_region((64, 96), nlf)
    assert int(calib[0].sum()) == nlf
    assert not bool(held[:, 0][:, calib].any())  # never a calibration sample
    assert int(held.sum(dim=0).max()) == 1  # disjoint across folds
    assert torch.equal(keep + held, mask.expand(3, 1, 64, 96))  # nothing lost, nothing added
    outer = int((mask[0, 0].bool() & ~calib).sum())
    per_fold = held.flatten(1).sum(dim=1)
    if holdout == "lines":
        assert is_line_mask(held)  # whole columns
        outer_lines = outer // 64
        assert torch.all(per_fold == 64 * max(1, round(0.1 * outer_lines)))
    else:
        assert torch.all(per_fold == round(0.1 * outer))


def test_points_on_a_2d_mask_and_clear_errors():
    mask, nlf = PoissonDiscMaskFunc([0.08], [4], seed=0)((1, 1, 64, 64))
    mask = mask.reshape(1, 1, 64, 64)
    keep, held = holdout_folds(mask, int(nlf), 0.05, 2, "auto")
    assert not bool(held[:, 0][:, calibration_region((64, 64), int(nlf))].any())
    assert torch.equal(keep + held, mask.expand(2, 1, 64, 64).float())
    with pytest.raises(ValueError, match="1D Cartesian"):
        holdout_folds(mask, int(nlf), 0.05, 2, "lines")
    with pytest.raises(ValueError, match="fraction"):
        holdout_folds(mask, int(nlf), 1.5, 2)
    centre_only = torch.zeros(1, 1, 16, 32)
    centre_only[..., 12:20] = 1
    with pytest.raises(ValueError, match="outside the calibration region"):
        holdout_folds(centre_only, 8, 0.1, 2)


def test_same_seed_same_folds():
    mask, nlf = line_mask()
    a = holdout_folds(mask, nlf, 0.1, 3, "points", torch.Generator().manual_seed(5))
    b = holdout_folds(mask, nlf, 0.1, 3, "points", torch.Generator().manual_seed(5))
    assert torch.equal(a[1], b[1])
