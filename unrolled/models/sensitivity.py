"""Coil sensitivity estimation inside the network: learned end to end, or ESPIRiT.

Both modules share one call: ``sens(kspace, mask, num_low_frequencies) -> maps``
with ``kspace`` ``(B, C, H, W)`` complex (undersampled), ``mask`` ``(B, 1, H, W)``,
``num_low_frequencies`` ``(B,)`` and ``maps`` ``(B, C, H, W)`` complex with
``sum_c |S_c|^2 = 1`` wherever there is signal.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from unrolled.models.denoisers import ComplexDenoiser, ResNet
from unrolled.physics.calibration import calibration_columns
from unrolled.physics.coils import espirit
from unrolled.physics.fft import ifft2c


def _normalise(maps: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Divide by the root-sum-of-squares over coils, ``(B, C, H, W)``."""
    return maps / (maps.abs().pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class LearnedSensitivity(nn.Module):
    """E2E-VarNet-style maps: low-resolution ACS coil images refined by a small CNN.

    The calibration columns are inverse transformed, each coil image is refined
    by a residual CNN (coils folded into the batch), and the result is
    normalised by its root-sum-of-squares. Trained end to end with the network.

    Args:
        channels: CNN feature channels.
        num_blocks: CNN residual blocks.
    """

    def __init__(self, channels: int = 8, num_blocks: int = 2) -> None:
        super().__init__()
        self.refine = ComplexDenoiser(ResNet(2, 2, channels, num_blocks))

    def forward(
        self, kspace: torch.Tensor, mask: torch.Tensor, num_low_frequencies: torch.Tensor
    ) -> torch.Tensor:
        b, c, h, w = kspace.shape
        acs = kspace * calibration_columns(w, num_low_frequencies)  # (B, C, H, W)
        images = ifft2c(acs).reshape(b * c, h, w)  # coils folded into the batch
        images = self.refine(images).reshape(b, c, h, w)
        return _normalise(images)


class ZeroCalibrationWarning(UserWarning):
    """A slice's calibration region is all zero (a dropped acquisition, a padding slice):
    its coil sensitivities, and so its image, are zero."""


class EspiritSensitivity(nn.Module):
    """ESPIRiT maps from the calibration region, computed without gradients.

    Maps depend only on the fully sampled calibration region, so they are
    cached per (file, slice, calibration width) when keys are passed in,
    which makes repeated epochs cheap. A slice whose calibration region is all
    zero gets zero maps and a :class:`ZeroCalibrationWarning` naming its file
    and slice (``keys[i][:2]``).

    Args:
        kernel_size: ESPIRiT kernel width.
        threshold: singular-value threshold relative to the largest.
        crop: eigenvalue threshold that bounds the support. The default 0 keeps
            unit-norm maps everywhere (BART's ``ecalib -c0``): measured on the
            embedded validation split, cropping at 0.95 cut into the head and
            zeroed the noisy background that RSS references keep, dropping
            CG-SENSE from SSIM 0.68 to 0.49.
        cache_size: number of slices whose maps are kept in memory (0: none).
    """

    def __init__(
        self,
        kernel_size: int = 6,
        threshold: float = 0.02,
        crop: float = 0.0,
        cache_size: int = 4096,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.threshold = threshold
        self.crop = crop
        self.cache_size = cache_size
        self._cache: dict[tuple, torch.Tensor] = {}

    @torch.no_grad()
    def forward(
        self,
        kspace: torch.Tensor,
        mask: torch.Tensor,
        num_low_frequencies: torch.Tensor,
        keys: list[tuple] | None = None,
    ) -> torch.Tensor:
        out: list[torch.Tensor | None] = [None] * kspace.shape[0]
        if keys is not None and self.cache_size:
            for i, key in enumerate(keys):
                hit = self._cache.get((*key, int(num_low_frequencies[i])))
                if hit is not None and hit.shape == kspace.shape[1:]:
                    out[i] = hit.to(kspace.device)
        todo = [i for i, m in enumerate(out) if m is None]
        for i in todo:  # per slice: calibration widths may differ within a batch
            maps = espirit(
                kspace[i : i + 1].to(torch.complex64),
                int(num_low_frequencies[i]),
                kernel_size=self.kernel_size,
                threshold=self.threshold,
                crop=self.crop,
            )[0]
            if not bool(maps.abs().amax() > 0):
                key = tuple(keys[i]) if keys is not None else ()
                where = f"{key[0]} slice {key[1]}" if len(key) >= 2 else f"batch element {i}"
                warnings.warn(
                    f"{where}: the calibration region is all zero, so ESPIRiT finds no "
                    "coil sensitivities: zero maps (and a zero image) for this slice",
                    ZeroCalibrationWarning,
                    stacklevel=2,
                )
            out[i] = maps
            if keys is not None and len(self._cache) < self.cache_size:
                self._cache[(*keys[i], int(num_low_frequencies[i]))] = maps.cpu()
        return torch.stack(out)  # type: ignore[arg-type]
