"""The typed batch that flows from the data sets into models and metrics."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch


@dataclass(frozen=True)
class Sample:
    """One slice, or a batch of slices of equal k-space shape.

    Shapes are given for a batch; a single slice from a data set has the same
    fields without the leading ``B`` (and ``fname`` a plain string).

    Attributes:
        kspace: undersampled multicoil k-space, zero where not sampled,
            ``(B, C, H, W)`` complex64.
        mask: sampling pattern, 1.0 where sampled, ``(B, 1, H, W)`` float32
            (broadcasts over coils).
        target: fully sampled RSS reference cropped to the recon size,
            ``(B, h, w)`` float32; an empty ``(B, 0, 0)`` tensor for test-set
            files that carry no reference.
        max_value: the volume maximum of the reference (fastMRI's ``max``
            attribute), the data range of SSIM and PSNR, ``(B,)`` float32.
        num_low_frequencies: width of the fully sampled calibration region
            in phase-encoding columns, ``(B,)`` int64.
        crop_size: reconstruction matrix ``(h, w)``, ``(B, 2)`` int64.
        slice_num: slice index within its volume, ``(B,)`` int64.
        fname: file name (no directory) of the volume, one per slice.
    """

    kspace: torch.Tensor
    mask: torch.Tensor
    target: torch.Tensor
    max_value: torch.Tensor
    num_low_frequencies: torch.Tensor
    crop_size: torch.Tensor
    slice_num: torch.Tensor
    fname: tuple[str, ...] | str

    @property
    def has_target(self) -> bool:
        """Whether a fully sampled reference is present."""
        return self.target.numel() > 0

    def to(self, device: torch.device | str) -> Sample:
        """A copy with every tensor moved to ``device``."""
        return replace(
            self,
            **{
                f.name: getattr(self, f.name).to(device)
                for f in fields(self)
                if isinstance(getattr(self, f.name), torch.Tensor)
            },
        )


def collate_samples(samples: list[Sample]) -> Sample:
    """Stack single-slice samples into a batch.

    Raises:
        ValueError: the slices differ in k-space or target shape (use a
            shape-bucketing batch sampler for data sets with mixed widths).
    """
    shapes = {tuple(s.kspace.shape) for s in samples}
    if len(shapes) > 1:
        raise ValueError(
            f"cannot batch slices of different k-space shapes {sorted(shapes)}; "
            "use unrolled.data.dataset.ShapeBucketSampler"
        )
    targets = {tuple(s.target.shape) for s in samples}
    if len(targets) > 1:
        raise ValueError(f"cannot batch slices of different target shapes {sorted(targets)}")
    return Sample(
        kspace=torch.stack([s.kspace for s in samples]),
        mask=torch.stack([s.mask for s in samples]),
        target=torch.stack([s.target for s in samples]),
        max_value=torch.stack([torch.as_tensor(s.max_value, dtype=torch.float32) for s in samples]),
        num_low_frequencies=torch.stack(
            [torch.as_tensor(s.num_low_frequencies, dtype=torch.int64) for s in samples]
        ),
        crop_size=torch.stack([torch.as_tensor(s.crop_size, dtype=torch.int64) for s in samples]),
        slice_num=torch.stack([torch.as_tensor(s.slice_num, dtype=torch.int64) for s in samples]),
        fname=tuple(str(s.fname) for s in samples),
    )
