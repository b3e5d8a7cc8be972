"""The calibration region is defined once (unrolled.physics.calibration): its pieces agree."""

import pytest
import torch

from unrolled.physics.calibration import (
    calibration_block,
    calibration_columns,
    center_mask_1d,
    center_run_length,
)


@pytest.mark.parametrize("width, n", [(10, 4), (11, 4), (11, 3), (368, 26), (640, 1), (7, 7)])
def test_columns_mask_and_run_length_agree(width, n):
    """The boolean columns of a batch, fastMRI's centre mask and the measured run length."""
    cols = calibration_columns(width, torch.tensor([n, n]))
    assert cols.shape == (2, 1, 1, width)
    mask = torch.from_numpy(center_mask_1d(width, n))
    assert torch.equal(cols[0, 0, 0], mask.bool())
    assert mask[width // 2] == 1  # contains the DC column
    assert center_run_length(mask) == n


def test_espirit_block_rows():
    """At least 24 rows (but never more than H), as many columns as the region."""
    assert calibration_block(320, 8) == (24, 8)
    assert calibration_block(16, 8) == (16, 8)
    assert calibration_block(320, 30) == (30, 30)
