"""Readout oversampling: found where the outer rows are empty, removed exactly for line masks."""

import pytest
import torch
from helpers.common import crandn

from unrolled.physics.coils import center_crop
from unrolled.physics.fft import fft2c, ifft2c
from unrolled.physics.readout import crop_readout, oversampled_rows, pad_readout


def oversampled_scan(height=64, width=24, coils=3, seed=0):
    """Coil images with signal in the central half of the rows; full k-space, a line mask."""
    images = torch.zeros(1, coils, height, width, dtype=torch.complex64)
    rows = slice(height // 4, height // 4 + height // 2)
    images[..., rows, :] = crandn(1, coils, height // 2, width, seed=seed, dtype=torch.complex64)
    cols = torch.zeros(width)
    cols[::3] = 1
    cols[width // 2 - 3 : width // 2 + 3] = 1
    mask = cols.reshape(1, 1, 1, width).expand(1, 1, height, width)
    return images, fft2c(images), mask


def test_crop_is_the_kspace_of_the_cropped_image_and_pad_undoes_it():
    images, kspace, _ = oversampled_scan()
    cropped = crop_readout(kspace, 32)
    assert cropped.shape == (1, 3, 32, 24)
    expected = fft2c(center_crop(images, (32, 24)))
    assert torch.allclose(cropped, expected, atol=1e-5)
    assert torch.allclose(pad_readout(cropped, 64), kspace, atol=1e-5)


def test_crop_commutes_with_a_line_mask():
    # data consistency on the cropped k-space is exact: an acquired column stays acquired
    _, kspace, mask = oversampled_scan()
    cropped_measured = crop_readout(kspace * mask, 32)
    assert torch.allclose(cropped_measured, crop_readout(kspace, 32) * mask[..., :32, :], atol=1e-5)
    empty = mask[0, 0, 0] == 0
    assert cropped_measured[..., empty].abs().max() == 0


def test_oversampling_is_found_only_where_the_outer_rows_are_empty():
    images, kspace, mask = oversampled_scan()
    assert oversampled_rows(kspace * mask, mask) == 32
    # signal in the outer rows (an object filling the readout field of view): keep every row
    images[..., :4, :] = 1.0
    kspace = fft2c(images)
    assert oversampled_rows(kspace * mask, mask) is None
    assert ifft2c(kspace).shape[-2] == 64


def test_a_2d_mask_is_never_cropped():
    _, kspace, _ = oversampled_scan()
    g = torch.Generator().manual_seed(1)
    mask = (torch.rand(1, 1, 64, 24, generator=g) < 0.3).float()
    assert oversampled_rows(kspace * mask, mask) is None


def test_bad_arguments_raise():
    _, kspace, mask = oversampled_scan()
    with pytest.raises(ValueError, match="factor"):
        oversampled_rows(kspace, mask, factor=0)
    with pytest.raises(ValueError, match="rows"):
        crop_readout(kspace, 65)
    with pytest.raises(ValueError, match="cannot pad"):
        pad_readout(kspace, 10)
