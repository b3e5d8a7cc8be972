"""Zero-shot for whole volumes, never below its classical starting point.

:class:`VolumeZeroShot` is :class:`~unrolled.methods.zeroshot.ZeroShot` (ZS-SSL,
Yaman et al., ICLR 2022) with two additions, each an option:

- **Warm start along the volume** (``warm_start``): neighbouring slices look
  alike, so each slice after the first of a volume starts from the network
  fitted to the previous slice (the last one fitted with the same key prefix,
  i.e. the same file) and is fine-tuned on a shorter schedule
  (``warm_steps``, ``warm_lr``, ``warm_warmup_steps``), with its own held-out
  set and early stopping as before. The previous slice's network is itself
  a candidate: the held-out loss before the first step decides whether any
  step is kept. ``warm_start=False`` fits every slice from scratch (the
  method before this option). Measured in ``bench/zeroshot_volume.py``.
- **A classical candidate** (``classical``, e.g. CG-SENSE with the library's
  weight): it reconstructs the slice from the same ``Omega \\ Gamma`` the
  network sees, with the same ESPIRiT maps where it takes an ``espirit``
  attribute; its k-space loss on the held-out ``Gamma`` is compared with the
  network's best. If the network does not do strictly better, the classical
  method reconstructs the slice (from all acquired samples), so the result is
  never worse on held-out data than the classical method. The choice and both
  losses are in each :class:`~unrolled.methods.zeroshot_history.ScanHistory`
  (``chosen``, ``classical_val_loss``, ``best_val_loss``).
- **The fit started from the classical image** (``classical_start``): the
  network's first cascade starts from the classical method's coil k-space
  (``F S x``, reconstructed from the same input as the network: each
  ``Theta``, ``Omega \\ Gamma``, then all of ``Omega``) instead of the
  zero-filled k-space, and the last convolution of every denoiser starts at
  zero, so that before the first step the network returns the classical image
  made data-consistent. That step-0 state is kept unless a later step has a
  lower held-out loss: the result is never worse on held-out data than its
  start (for a slice warm-started from its neighbour, the start is the
  neighbour's network applied to the classical image). Issue 16 §3; measured
  in ``bench/zeroshot_classical_start.py``. The classical method is then a
  start, not a candidate (no separate comparison).
- **Readout oversampling removed** (``readout_oversampling``): when a slice's
  readout is oversampled (a line mask, and the outer rows of the zero-filled
  image hold at most 1 % of its energy: :func:`~unrolled.physics.readout.oversampled_rows`),
  the fit and the reconstruction run on the central ``H / 2`` image rows
  (exact for line masks: :func:`~unrolled.physics.readout.crop_readout`),
  half the cost per step for fastMRI's twice oversampled readout; the output
  is padded back to ``H`` rows with zeros (rows every fastMRI crop discards).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from unrolled.methods.zeroshot import Monitor, ZeroShot, log
from unrolled.methods.zeroshot_history import ScanHistory
from unrolled.models.denoisers import ComplexDenoiser
from unrolled.models.reconstructor import Reconstruction
from unrolled.models.sensitivity import EspiritSensitivity
from unrolled.physics.coils import center_crop_or_pad
from unrolled.physics.readout import crop_readout, oversampled_rows, pad_readout


class VolumeZeroShot(ZeroShot):
    """Zero-shot fits that carry over from slice to slice, with a classical fallback.

    Args:
        net: as :class:`ZeroShot`.
        warm_start: start each slice after the first of a volume from the
            previous slice's fitted network (else from ``net``, every slice).
        warm_steps: ``max_steps`` of a warm-started slice (at most ``max_steps``).
        warm_lr: peak learning rate of a warm-started slice.
        warm_warmup_steps: warm-up steps of a warm-started slice.
        warm_time_budget_s: wall-time budget of a warm-started slice (at most
            ``time_budget_s``; ``None``: ``time_budget_s``), so that a loaded
            machine shortens the following slices as it does the first.
        classical: a method with the ``UnrolledNet`` call signature whose
            ``kspace`` output predicts the held-out samples (e.g.
            :class:`~unrolled.methods.classical.CGSense`, the option
            ``conf/method/zeroshot.yaml`` documents); ``None``: none (its default).
        readout_oversampling: fit on ``H // readout_oversampling`` rows when the
            readout is found oversampled that much (1: always on all ``H`` rows).
        classical_start: start the network from ``classical``'s reconstruction of
            each input instead of the zero-filled k-space, its denoisers' residuals
            zeroed (without a ``checkpoint``), instead of weighing ``classical`` as a
            candidate. ``net`` must take ``initial_kspace`` (as
            :class:`~unrolled.models.unrolled.UnrolledNet`).
        **kwargs: the options of :class:`ZeroShot`.

    Raises:
        ValueError: a non-positive ``warm_steps``, ``warm_lr`` or
            ``readout_oversampling``; ``classical_start`` without ``classical`` or
            with a ``net`` that takes no ``initial_kspace``; or a bad
            :class:`ZeroShot` option.
    """

    def __init__(
        self,
        net: nn.Module,
        warm_start: bool = True,
        warm_steps: int = 150,
        warm_lr: float = 3e-3,
        warm_warmup_steps: int = 10,
        warm_time_budget_s: float | None = None,
        classical: nn.Module | None = None,
        readout_oversampling: int = 2,
        classical_start: bool = False,
        **kwargs,
    ) -> None:
        if classical_start:  # configuration errors before any weight is loaded
            if classical is None:
                raise ValueError(
                    "classical_start needs a classical method (`classical`); "
                    "classical_start=false starts from the zero-filled k-space"
                )
            if "initial_kspace" not in inspect.signature(net.forward).parameters:
                raise ValueError(
                    f"classical_start: {type(net).__name__} cannot start from a given "
                    "k-space (no `initial_kspace` argument)"
                )
        super().__init__(net, **kwargs)
        if warm_steps < 1 or warm_lr <= 0 or warm_warmup_steps < 0:
            raise ValueError(
                f"warm_steps and warm_lr must be positive, warm_warmup_steps not negative: "
                f"{warm_steps, warm_lr, warm_warmup_steps}"
            )
        self.warm_start = warm_start
        self.warm_steps = warm_steps
        self.warm_lr = warm_lr
        self.warm_warmup_steps = warm_warmup_steps
        self.warm_time_budget_s = warm_time_budget_s
        if readout_oversampling < 1:
            raise ValueError(f"readout_oversampling must be >= 1, got {readout_oversampling}")
        self.classical = classical
        self.readout_oversampling = readout_oversampling
        self.classical_start = classical_start
        if classical_start and self.checkpoint is None:  # step 0 = the classical image
            for m in net.modules():
                if isinstance(m, ComplexDenoiser):
                    m.zero_residual_()
        # (volume key, key, fitted network) of the last slice fitted
        self._previous: tuple[tuple, tuple, nn.Module] | None = None

    @contextlib.contextmanager
    def _schedule(self, warm: bool) -> Iterator[None]:
        """The warm-start schedule in place of the configured one, while fitting."""
        if not warm:
            yield
            return
        saved = self.max_steps, self.lr, self.warmup_steps, self.time_budget_s
        budget = self.time_budget_s
        if self.warm_time_budget_s is not None:
            budget = min(self.warm_time_budget_s, budget or math.inf)
        self.max_steps, self.lr, self.warmup_steps, self.time_budget_s = (
            min(self.warm_steps, self.max_steps),  # never longer than a fit from scratch
            self.warm_lr,
            self.warm_warmup_steps,
            budget,
        )
        try:
            yield
        finally:
            self.max_steps, self.lr, self.warmup_steps, self.time_budget_s = saved

    def classical_output(
        self, net: nn.Module, kspace, mask, nlf, key: tuple
    ) -> Reconstruction | None:
        """The classical method's output, with the fitted network's ESPIRiT maps if it can."""
        if self.classical is None:
            return None
        shared = isinstance(getattr(net, "sens", None), EspiritSensitivity) and isinstance(
            getattr(self.classical, "espirit", None), EspiritSensitivity
        )
        saved = self.classical.espirit if shared else None
        try:
            if shared:  # the maps cached for `key` (from Omega \ Gamma): computed once
                self.classical.espirit = net.sens
            with torch.no_grad():
                return self.classical(kspace, mask, nlf, keys=[key])
        finally:
            if shared:
                self.classical.espirit = saved

    def start_kspace(self, net, kspace, mask, nlf, key: tuple) -> torch.Tensor | None:
        """The classical method's coil k-space for this input, with ``classical_start``."""
        if not self.classical_start:
            return None
        return self.classical_output(net, kspace, mask, nlf, key).kspace

    def held_out_loss(self, out: Reconstruction, kspace, gamma) -> float:
        """k-space loss of a prediction on the held-out samples ``gamma``."""
        return float(self.loss(out.kspace, kspace, gamma))

    def fit_slice(
        self, kspace, mask, nlf, key: tuple, monitor: Monitor | None = None
    ) -> tuple[Reconstruction, ScanHistory]:
        """Fit (or warm-start) one slice, choose network or classical, reconstruct.

        Args:
            kspace: ``(1, C, H, W)`` measured k-space; mask ``(1, 1, H, W)``; nlf ``(1,)``.
            key: the slice's key; ``key[:-1]`` names its volume.
            monitor: as :meth:`ZeroShot.fit_scan` (benchmarks).

        Returns:
            ``(output from all acquired samples, history)``.
        """
        start_time = time.perf_counter()
        height, width = kspace.shape[-2:]
        rows = None
        if self.readout_oversampling > 1:
            rows = oversampled_rows(kspace, mask, self.readout_oversampling)
        if rows is not None:  # fit and reconstruct the central rows, pad back at the end
            kspace = crop_readout(kspace, rows)
            mask = center_crop_or_pad(mask.expand(1, 1, height, width), (rows, width))
        out, hist = self._fit_slice(kspace, mask, nlf, key, monitor)
        hist.readout_rows = rows
        if rows is not None:
            out = Reconstruction(
                image=center_crop_or_pad(out.image, (height, width)),
                kspace=pad_readout(out.kspace, height),
                maps=center_crop_or_pad(out.maps, (height, width)),
                cascades=[center_crop_or_pad(c, (height, width)) for c in out.cascades],
            )
        hist.seconds = time.perf_counter() - start_time
        return out, hist

    def _fit_slice(
        self, kspace, mask, nlf, key: tuple, monitor: Monitor | None
    ) -> tuple[Reconstruction, ScanHistory]:
        """:meth:`fit_slice` on the k-space as given."""
        volume = tuple(key[:-1])
        prev = self._previous
        warm = self.warm_start and prev is not None and prev[0] == volume
        with self._schedule(warm):
            init = prev[2] if warm else None
            net, hist = self.fit_scan(kspace, mask, nlf, key, monitor=monitor, init=init)
        hist.start = prev[1] if warm else None
        if self.classical is not None and not self.classical_start:
            h, w = kspace.shape[-2:]
            omega = (mask != 0).float().expand(1, 1, h, w)
            gamma = self.split(omega, int(nlf.reshape(-1)[0]))[0].to(kspace.device)
            train = omega - gamma
            out = self.classical_output(net, kspace * train, train, nlf, key)
            hist.classical_val_loss = self.held_out_loss(out, kspace, gamma)
            if not hist.best_val_loss < hist.classical_val_loss:
                hist.chosen = "classical"
        self._previous = (volume, tuple(key), net)
        if hist.chosen == "classical":
            out = self.classical_output(net, kspace, mask, nlf, key)
        else:
            with torch.no_grad():
                out = self.reconstruct(net, kspace, mask, nlf, key, return_cascades=True)
        return out, hist

    def describe(self, hist: ScanHistory) -> str:
        """One line on a slice's fit: where it started, when it stopped, what was kept."""
        weights = "initial weights"
        if hist.start:
            weights = f"weights of slice {hist.start}"
        elif self.checkpoint is not None:
            weights = f"weights of {Path(self.checkpoint).name}"
        start = "zero-filled input"
        if self.classical_start:
            start = f"started from {type(self.classical).__name__}"
        held_out = f"held-out {hist.best_val_loss:.4f}"
        if not math.isnan(hist.classical_val_loss):
            held_out += f", {type(self.classical).__name__} {hist.classical_val_loss:.4f}"
        return (
            f"{weights}, {start}; stopped at step {hist.last_step} ({hist.stop_reason}), "
            f"kept step {hist.best_step} ({held_out}), chose {hist.chosen}, "
            f"{hist.seconds:.1f} s"
        )

    def forward(
        self,
        kspace: torch.Tensor,
        mask: torch.Tensor,
        num_low_frequencies: torch.Tensor,
        keys: list[tuple] | None = None,
        return_cascades: bool = False,
    ) -> Reconstruction:
        """Fit and reconstruct every slice of the batch in order (see :class:`ZeroShot`).

        A slice reconstructed by the classical method repeats its image as
        every cascade, when cascades are requested.
        """
        b = kspace.shape[0]
        mask = mask.expand(b, 1, *kspace.shape[-2:])
        outs = []
        for i in range(b):
            key = tuple(keys[i]) if keys is not None else (i,)
            k, m, n = kspace[i : i + 1], mask[i : i + 1], num_low_frequencies[i : i + 1]
            out, hist = self.fit_slice(k, m, n, key)
            self.histories.append(hist)
            outs.append(out)
            log.info("zero-shot %s: %s", key, self.describe(hist))
        cascades = []
        if return_cascades:
            n = max(len(o.cascades) for o in outs) or getattr(self.net, "num_cascades", 1)
            cascades = [
                torch.cat([o.cascades[c] if o.cascades else o.image for o in outs])
                for c in range(n)
            ]
        return Reconstruction(
            image=torch.cat([o.image for o in outs]),
            kspace=torch.cat([o.kspace for o in outs]),
            maps=torch.cat([o.maps for o in outs]),
            cascades=cascades,
        )

    def reset_volume(self) -> None:
        """Forget the last fitted slice: the next slice starts from ``net``."""
        self._previous = None
