"""SSDU: self-supervised training without fully sampled targets (Yaman et al., MRM 2020).

Each training slice's acquired locations ``Omega`` are split into a
data-consistency set ``Theta`` and a loss set ``Lambda``
(:func:`~unrolled.physics.splitting.split_mask`). The network reconstructs
from ``Theta`` alone -- it gets ``y * Theta`` as its k-space and ``Theta`` as
its mask, so every DC layer enforces consistency with ``Theta`` only -- and
the loss compares its final coil k-space with the measurements on ``Lambda``::

    theta, lam = split(mask)                            # (B, 1, H, W), disjoint
    out = net(y * theta, theta, num_low_frequencies)
    loss = L(out.kspace, y, lam)                        # e.g. KSpaceL1L2Loss

``batch.target`` is never read in training. Validation and test are those of
:class:`~unrolled.training.module.ReconModule` -- the network sees the whole
acquisition, image metrics are scored where references exist -- and the
``val/loss`` (``test/loss``) logged is the same k-space loss on a fixed split
of each slice, which needs no reference and so can drive checkpointing on
data without targets.

Splits are reproducible: each slice's split is drawn from a generator seeded
by ``(seed, file, slice)`` -- and the optimisation step when re-drawn every
step -- so a run repeats, and a resumed run continues, exactly, on any
number of processes.

ESPIRiT sensitivities: the maps are part of the forward operator, not a
learned input, and SSDU computes them from the calibration data of the whole
acquisition. ESPIRiT reads only its calibration block (the
``num_low_frequencies`` centre columns by ``max(num_low_frequencies, 24)``
rows), so by default that block is kept in ``Theta`` whenever the network
uses :class:`~unrolled.models.sensitivity.EspiritSensitivity`: maps computed
from ``y * Theta`` are then identical to those of the full data, and the
per-slice cache, shared with validation, stays consistent. (Without the
protection the maps would come from a calibration region with holes; the
cache keys are then not passed in training, so no such maps are cached.)
Learned sensitivities are trained end to end from what the network sees.

With gradient (soft) DC, ``k - eta * Theta * (k - y)``, the last cascade's
step ``eta`` only moves ``Theta`` samples, which the ``Lambda`` loss never
sees: it receives no gradient and keeps its initial value (as in SSDU, where
the final DC acts on ``Theta`` alone).

Point-wise splits give 2D masks, which fastMRI's VarNet
(``model=varnet_fastmri``) rejects: use :class:`~unrolled.models.unrolled.UnrolledNet`.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from unrolled.data.sample import Sample
from unrolled.losses import SSIML1Loss
from unrolled.models.sensitivity import EspiritSensitivity
from unrolled.physics.calibration import calibration_block
from unrolled.physics.splitting import SELECTIONS, split_mask
from unrolled.training.module import OptimizerFactory, ReconModule, SchedulerFactory, all_ranks

Key = tuple[str, int]


def slice_keys(batch: Sample) -> list[Key]:
    """``(file, slice)`` of each slice of a batch."""
    return [(str(f), int(s)) for f, s in zip(batch.fname, batch.slice_num, strict=True)]


class SSDUSplit:
    """Reproducible per-slice SSDU splits of the acquired locations.

    Args:
        ratio: fraction of each slice's acquired points moved to ``Lambda``
            (SSDU's rho), in ``(0, 1)``.
        selection: ``"uniform"`` or ``"gaussian"`` (centre-weighted).
        keep_center: ``(rows, cols)`` of the central block always kept in ``Theta``.
        std_scale: Gaussian selection width, ``std = size / std_scale`` per axis.
        fixed: one split per slice for the whole run, instead of a new one at
            every optimisation step.
        seed: base seed of all splits.
    """

    def __init__(
        self,
        ratio: float = 0.4,
        selection: str = "gaussian",
        keep_center: Sequence[int] = (4, 4),
        std_scale: float = 4.0,
        fixed: bool = False,
        seed: int = 0,
    ) -> None:
        if not 0.0 < ratio < 1.0:
            raise ValueError(f"ratio must be in (0, 1), got {ratio}")
        if selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
        rows, cols = (int(v) for v in keep_center)
        self.ratio = float(ratio)
        self.selection = selection
        self.keep_center = (rows, cols)
        self.std_scale = float(std_scale)
        self.fixed = fixed
        self.seed = int(seed)

    def generator(self, key: Key, step: int | None) -> torch.Generator:
        """The random source of one slice's split (``step=None``: the fixed split)."""
        tag = f"{self.seed}/{key[0]}/{key[1]}"
        if step is not None and not self.fixed:
            tag += f"/step{step}"
        return torch.Generator().manual_seed(zlib.crc32(tag.encode()))

    def __call__(
        self,
        mask: torch.Tensor,
        keys: Sequence[Key],
        step: int | None = None,
        protect: Sequence[tuple[int, int]] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Split a batch's masks.

        Args:
            mask: acquired locations, ``(B, 1, H, W)``.
            keys: ``(file, slice)`` of each slice, ``B`` of them.
            step: the optimisation step (re-drawn splits); ``None`` gives the
                fixed split of each slice (used for validation).
            protect: per slice, a further ``(rows, cols)`` centre block kept in
                ``Theta`` (the protected block is the larger of it and
                ``keep_center`` along each axis).

        Returns:
            ``(theta, lam)``, float32 ``(B, 1, H, W)``, disjoint, summing to the mask.
        """
        if len(keys) != mask.shape[0]:
            raise ValueError(f"{len(keys)} keys for a batch of {mask.shape[0]} masks")
        thetas, lams = [], []
        for i, key in enumerate(keys):
            rows, cols = self.keep_center
            if protect is not None:
                rows, cols = max(rows, protect[i][0]), max(cols, protect[i][1])
            theta, lam = split_mask(
                mask[i : i + 1],
                ratio=self.ratio,
                selection=self.selection,
                keep_center=(rows, cols),
                std_scale=self.std_scale,
                generator=self.generator(key, step),
            )
            thetas.append(theta)
            lams.append(lam)
        return torch.cat(thetas), torch.cat(lams)  # (B, 1, H, W) each


class SSDUModule(ReconModule):
    """Self-supervised (SSDU) training of a reconstruction network.

    Args:
        net: the network, called as ``net(kspace, mask, num_low_frequencies, keys=...)``
            and returning an object with ``.kspace`` (final coil k-space,
            ``(B, C, H, W)``) and ``.image``.
        loss: ``loss(pred_kspace, measured_kspace, mask) -> scalar`` on coil
            k-space (e.g. :class:`~unrolled.losses.KSpaceL1L2Loss`).
        optimizer: factory ``params -> Optimizer``.
        scheduler: factory ``(optimizer, total_steps) -> LRScheduler``, or ``None``.
        config: the resolved run configuration, stored in every checkpoint.
        split: the ``Theta`` / ``Lambda`` splitter.
        protect_calibration: keep ESPIRiT's calibration block in ``Theta``
            (``None``: exactly when ``net.sens`` is ESPIRiT; see the module notes).

    Raises:
        ValueError: ``loss`` is an image loss.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        config: dict[str, Any] | None = None,
        split: SSDUSplit | None = None,
        protect_calibration: bool | None = None,
    ) -> None:
        if isinstance(loss, SSIML1Loss):
            raise ValueError(
                "SSDU compares k-space, not images: use a k-space loss such as "
                "loss=kspace_l1l2 (training=ssdu selects it by default)"
            )
        super().__init__(net, loss, optimizer, scheduler, config)
        self.split = split if split is not None else SSDUSplit()
        if protect_calibration is None:
            protect_calibration = isinstance(getattr(net, "sens", None), EspiritSensitivity)
        self.protect_calibration = protect_calibration

    def _split(self, batch: Sample, step: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        protect = None
        if self.protect_calibration:
            h = batch.kspace.shape[-2]
            nlf = batch.num_low_frequencies.reshape(-1).tolist()
            # ESPIRiT's calibration block, one row and column wider on each side so that
            # it is covered whichever way an odd-sized block is centred
            blocks = [calibration_block(h, n) for n in nlf]
            protect = [(rows + 2, cols + 2) for rows, cols in blocks]
        return self.split(batch.mask, slice_keys(batch), step, protect)

    def ssdu_loss(self, batch: Sample, step: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The SSDU loss of a batch and the ``Lambda`` masks it was taken on.

        Args:
            batch: k-space, mask and calibration width are read; the target is not.
            step: optimisation step of a re-drawn split, ``None`` for the fixed split.

        Returns:
            ``(scalar loss, lam (B, 1, H, W))``.
        """
        theta, lam = self._split(batch, step)
        # cached ESPIRiT maps are only valid when the calibration block stays whole
        keys = slice_keys(batch) if self.protect_calibration else None
        out = self.net(
            batch.kspace * theta,  # (B, C, H, W): the Lambda samples never reach the network
            theta,
            batch.num_low_frequencies,
            keys=keys,
        )
        return self.loss(out.kspace, batch.kspace, lam), lam

    def training_step(self, batch: Sample, batch_idx: int) -> torch.Tensor:
        loss, _ = self.ssdu_loss(batch, self.global_step)
        # decided by all ranks together: a rank raising alone would leave the others waiting
        # in the gradient all-reduce
        if not all_ranks(self, bool(torch.isfinite(loss))):
            raise FloatingPointError(
                f"non-finite training loss {float(loss)} at step {self.global_step} "
                f"(files {sorted(set(batch.fname))}); the last good checkpoint is kept"
            )
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch.fname))
        return loss

    def eval_loss(self, batch: Sample, pred: torch.Tensor) -> torch.Tensor | None:
        """The SSDU loss on each slice's fixed split: needs no reference image."""
        return self.ssdu_loss(batch, None)[0]
