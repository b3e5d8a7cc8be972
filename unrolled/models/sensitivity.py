"""Coil sensitivity estimation inside the network: learned end to end, or ESPIRiT.

Both modules share one call: ``sens(kspace, mask, num_low_frequencies) -> maps``
with ``kspace`` ``(B, C, H, W)`` complex (undersampled), ``mask`` ``(B, 1, H, W)``,
``num_low_frequencies`` ``(B,)`` and ``maps`` ``(B, C, H, W)`` complex with
``sum_c |S_c|^2 = 1`` wherever there is signal. ESPIRiT may return ``M`` sets of
maps, ``(B, M, C, H, W)`` (soft-SENSE, for a field of view smaller than the object;
see :class:`EspiritSensitivity`).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from unrolled.models.denoisers import ComplexDenoiser, ResNet
from unrolled.physics.calibration import calibration_columns
from unrolled.physics.coils import MIN_KERNEL_SIZE, espirit
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
    """ESPIRiT maps from the calibration region, computed without gradients; one or more sets.

    Sets of maps (soft-SENSE, Uecker et al. 2014; BART ``ecalib -m``): ``num_maps = 1``
    returns ``(B, C, H, W)``, exactly the single-set maps. ``num_maps = M > 1`` returns
    ``(B, M, C, H, W)`` always (what a network with ``2M`` input channels needs); sets 2..M
    are zero wherever their eigenvalue is ``<= extra_crop``. ``num_maps = None`` (what
    CG-SENSE, CS-wavelet and TV use by default) chooses per slice: the second ESPIRiT
    eigenvector is kept when its eigenvalue exceeds ``extra_crop`` on at least
    ``min_extra_support`` of the pixels, which happens
    where the field of view is smaller than the object (two parts of it fold onto one
    pixel); otherwise the slice gets one set. The batch is ``(B, C, H, W)`` when every
    slice has one set, else ``(B, 2, C, H, W)`` with a zero second set for the others
    (which changes no reconstruction: a zero set adds nothing to ``A``). Measured on the
    synthetic brain (``unrolled-synth``, 8 coils, 4x equispaced): the second eigenvalue
    stays below 0.8 on unfolded slices and exceeds 0.9 on 1-5 % of the pixels of a field
    of view folded to 75 %, with a 16-column calibration region and kernel 6, and with an
    8-column region and kernel 4 (with kernel 6 there, the calibration matrix has 3
    windows across the phase-encoding axis and the second eigenvalue never exceeds 0.8,
    folded or not; hence ``extra_kernel_size``). With 16 columns the second set lies at
    the folded edges of the field of view. With 8 columns and kernel 4 it appeared on a
    128-row test slice (away from the edges), but on the 256-row test volume of
    ``bench/soft_sense_fold.py`` it covers at most 0.012 % of a slice: there the automatic
    choice keeps one set, and ``num_maps=2`` differs from one set mainly by its kernel of 4.

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
        num_maps: sets of maps ``M`` (an int >= 1), or ``None`` to choose 1 or 2 per slice.
            Default 1: what callers that take one set only (motion fusion) rely on.
        extra_crop: eigenvalue threshold for sets 2..M (BART's ``ecalib -c`` applies its
            crop to every set; the first set keeps ``crop``, see above).
        min_extra_support: with ``num_maps=None``, the fraction of pixels the second set
            must cover to be kept.
        extra_kernel_size: ESPIRiT kernel width when more than one set is computed; default
            ``min(kernel_size, max(3, calibration columns // 2))`` (4 for 8 columns, else
            ``kernel_size`` from 12 columns on). With ``num_maps=None`` a slice that keeps
            one set gets the ``kernel_size`` maps, exactly the single-set ones.

    Raises:
        ValueError: ``num_maps`` is not ``None`` or a positive int.
    """

    def __init__(
        self,
        kernel_size: int = 6,
        threshold: float = 0.02,
        crop: float = 0.0,
        cache_size: int = 4096,
        num_maps: int | None = 1,
        extra_crop: float = 0.9,
        min_extra_support: float = 0.001,
        extra_kernel_size: int | None = None,
    ) -> None:
        super().__init__()
        if num_maps is not None and int(num_maps) < 1:
            raise ValueError(f"num_maps must be a positive int or None (automatic), got {num_maps}")
        self.num_maps = num_maps
        self.extra_crop = extra_crop
        self.min_extra_support = min_extra_support
        self.extra_kernel_size = extra_kernel_size
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
                if hit is not None and hit.shape[-3:] == kspace.shape[1:]:
                    out[i] = hit.to(kspace.device)
        todo = [i for i, m in enumerate(out) if m is None]
        for i in todo:  # per slice: calibration widths may differ within a batch
            maps = self._maps(kspace[i : i + 1].to(torch.complex64), int(num_low_frequencies[i]))
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
        return _stack_sets(out)  # type: ignore[arg-type]

    def _maps(self, kspace: torch.Tensor, nlf: int) -> torch.Tensor:
        """One slice ``(1, C, H, W)`` -> ``(C, H, W)`` (one set) or ``(M, C, H, W)``."""
        one = dict(kernel_size=self.kernel_size, threshold=self.threshold, crop=self.crop)
        if self.num_maps == 1 or kspace.shape[1] == 1:
            return espirit(kspace, nlf, **one)[0]
        # Sets 2..M: a kernel at most half the calibration width, so that the calibration
        # matrix has windows enough across the phase-encoding axis to see a fold.
        k = self.extra_kernel_size or min(self.kernel_size, max(MIN_KERNEL_SIZE, nlf // 2))
        num = min(2 if self.num_maps is None else self.num_maps, kspace.shape[1])
        sets = espirit(
            kspace, nlf, **{**one, "kernel_size": k}, num_maps=num, extra_crop=self.extra_crop
        )[0]  # (M, C, H, W)
        if self.num_maps is not None:
            return sets
        support = (sets[1].abs().amax(dim=0) > 0).float().mean()
        if bool(support >= self.min_extra_support):
            return sets
        return sets[0] if k == self.kernel_size else espirit(kspace, nlf, **one)[0]


def _stack_sets(maps: list[torch.Tensor]) -> torch.Tensor:
    """Per-slice maps ``(C, H, W)`` or ``(M, C, H, W)`` -> ``(B, C, H, W)`` when all have one
    set (given as ``(C, H, W)``), else ``(B, M_max, C, H, W)`` with zero sets appended."""
    if all(m.dim() == 3 for m in maps):
        return torch.stack(maps)  # (B, C, H, W)
    sets = [m if m.dim() == 4 else m[None] for m in maps]
    num = max(m.shape[0] for m in sets)
    pad = [torch.cat([m, m.new_zeros(num - m.shape[0], *m.shape[1:])]) for m in sets]
    return torch.stack(pad)  # (B, M, C, H, W)
