"""Scan-specific zero-shot self-supervised reconstruction (ZS-SSL, Yaman et al., ICLR 2022).

:class:`ZeroShot` fits a fresh copy of an unrolled network to each slice
alone, from nothing but its own undersampled k-space, then reconstructs the
slice with the fitted network. The acquired locations ``Omega`` are divided
once per slice into

- ``Gamma``: a held-out validation set (``val_ratio`` of ``Omega``, drawn
  outside the calibration region), never shown to the network and never in
  the training loss; its k-space loss, with the network given
  ``Omega \\ Gamma``, only decides when to stop;
- ``Omega \\ Gamma``, split SSDU-style into ``Theta`` (the network's input,
  its data consistency) and ``Lambda`` (the training loss), ``num_splits``
  such partitions drawn once and cycled through.

The training loss keeps falling as the network overfits its own samples;
the held-out loss turns up when the image starts to degrade. Training stops
when the held-out loss has not improved for ``patience`` validations, when
``max_steps`` or the wall-time budget is reached, and the weights of the best
validation are restored. The final image uses all of ``Omega``.

Coil maps: an ESPIRiT ``sens`` is computed once per slice from the k-space
``Omega \\ Gamma``, whose calibration region is complete (``Gamma`` avoids
it), and reused for every step, the validation and the final image; learned
maps are trained end to end from what the network sees.

``ZeroShot`` has the call signature of :class:`~unrolled.models.unrolled.UnrolledNet`
(it is a reconstruction *method*, usable by ``unrolled-reconstruct``); it
fits with gradients enabled even when called under ``torch.no_grad()``. The
per-slice training curves are kept in :attr:`ZeroShot.histories`.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from os import PathLike
from pathlib import Path

import torch
from torch import nn

from unrolled.data.checkpoint import network_state, read_checkpoint
from unrolled.losses import KSpaceL1L2Loss
from unrolled.methods.zeroshot_history import ScanHistory, StepRecord
from unrolled.models.reconstructor import Reconstruction
from unrolled.models.sensitivity import EspiritSensitivity
from unrolled.physics.calibration import calibration_columns
from unrolled.physics.splitting import split_mask

log = logging.getLogger(__name__)

Monitor = Callable[[int, nn.Module], dict[str, float]]
"""``monitor(step, net)`` -> extra values to record (benchmarks: e.g. PSNR of the current net)."""


class ZeroShot(nn.Module):
    """Fit a copy of ``net`` to each slice from its own k-space, then reconstruct it.

    Args:
        net: the network to fit (``UnrolledNet`` call signature); every slice
            starts from a copy of its initial (or warm-started) weights.
        checkpoint: warm start: an ``unrolled-train`` checkpoint (its
            ``net.*`` weights) or a plain state dict, loaded into ``net``.
        strict: warm start only if every weight matches; otherwise load the
            tensors whose name and shape match (e.g. the denoisers of a
            network trained with learned maps into one using ESPIRiT), and at
            least one must.
        lr: peak Adam learning rate.
        max_steps: optimisation steps at most.
        warmup_steps: linear warm-up of the learning rate, then cosine decay
            (see :meth:`lr_factor`: it ends at ``max_steps`` or at the time
            budget, whichever comes first).
        min_lr_ratio: final learning rate relative to ``lr``.
        weight_decay: Adam weight decay.
        grad_clip: gradient-norm clipping (``None``: none).
        val_ratio: fraction of the acquired points held out (``Gamma``).
        val_selection: ``"uniform"`` or ``"gaussian"`` selection of ``Gamma``.
        loss_ratio: fraction of ``Omega \\ Gamma`` in each loss set ``Lambda`` (SSDU's rho).
        loss_selection: selection of ``Lambda``.
        keep_center: central ``(rows, cols)`` block always in ``Theta``.
        std_scale: width of the Gaussian selection (``std = size / std_scale``).
        num_splits: ``(Theta, Lambda)`` partitions drawn per slice, cycled through.
        val_every: validate every so many steps.
        patience: stop after this many validations without improvement.
        min_delta: relative improvement that counts as one.
        time_budget_s: wall-time budget of one slice's fit (``None``: none).
        seed: seeds the splits (the same for every slice) and, without a
            checkpoint, the network's initial weights, so that runs repeat.
        loss: k-space loss ``loss(pred, target, mask)`` (default SSDU's L1-L2).

    Raises:
        ValueError: if ``max_steps``, ``val_every``, ``patience`` or ``num_splits`` is
            not positive, or ``val_ratio`` or ``loss_ratio`` is outside ``(0, 1)``.
    """

    def __init__(
        self,
        net: nn.Module,
        checkpoint: str | PathLike[str] | None = None,
        strict: bool = False,
        lr: float = 1e-3,
        max_steps: int = 300,
        warmup_steps: int = 20,
        min_lr_ratio: float = 0.05,
        weight_decay: float = 0.0,
        grad_clip: float | None = 1.0,
        val_ratio: float = 0.2,
        val_selection: str = "uniform",
        loss_ratio: float = 0.4,
        loss_selection: str = "gaussian",
        keep_center: Sequence[int] = (4, 4),
        std_scale: float = 4.0,
        num_splits: int = 8,
        val_every: int = 5,
        patience: int = 10,
        min_delta: float = 1e-3,
        time_budget_s: float | None = 480.0,
        seed: int = 0,
        loss: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if max_steps < 1 or val_every < 1 or patience < 1 or num_splits < 1:
            raise ValueError("max_steps, val_every, patience and num_splits must be positive")
        if not 0.0 < val_ratio < 1.0 or not 0.0 < loss_ratio < 1.0:
            raise ValueError(f"val_ratio and loss_ratio must be in (0, 1): {val_ratio, loss_ratio}")
        self.net = net
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        if checkpoint is not None:
            load_warm_start(net, checkpoint, strict=strict)
        else:  # the same initial weights in every run, whatever the global RNG
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                for m in net.modules():
                    if m is not net and hasattr(m, "reset_parameters"):
                        m.reset_parameters()
        self.lr = lr
        self.max_steps = max_steps
        self.warmup_steps = warmup_steps
        self.min_lr_ratio = min_lr_ratio
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.val_ratio = val_ratio
        self.val_selection = val_selection
        self.loss_ratio = loss_ratio
        self.loss_selection = loss_selection
        self.keep_center = (int(keep_center[0]), int(keep_center[1]))
        self.std_scale = std_scale
        self.num_splits = num_splits
        self.val_every = val_every
        self.patience = patience
        self.min_delta = min_delta
        self.time_budget_s = time_budget_s
        self.seed = seed
        self.loss = loss or KSpaceL1L2Loss()
        self.histories: list[ScanHistory] = []

    # --- splitting ---------------------------------------------------------------

    def split(
        self, mask: torch.Tensor, num_low_frequencies: int
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Partition one slice's acquired points.

        Args:
            mask: ``(1, 1, H, W)`` acquired locations ``Omega``.
            num_low_frequencies: calibration width (columns), kept out of ``Gamma``.

        Returns:
            ``(gamma, [(theta, lam), ...])``, all ``(1, 1, H, W)`` float, disjoint
            within a pair, ``theta + lam + gamma = Omega``.

        Raises:
            ValueError: if ``val_ratio`` of the samples cannot be held out from the
                samples outside the calibration region.
        """
        gen = torch.Generator().manual_seed(self.seed)
        h, w = mask.shape[-2:]
        omega = (mask != 0).float().expand(1, 1, h, w)
        acs = calibration_columns(w, torch.tensor([num_low_frequencies])).to(mask.device)
        outside = omega * ~acs  # Gamma is drawn outside the calibration columns
        ratio = self.val_ratio * float(omega.sum()) / max(float(outside.sum()), 1.0)
        if ratio >= 1.0:
            raise ValueError(
                f"cannot hold out {self.val_ratio:.0%} of the samples outside the calibration "
                "region: lower val_ratio"
            )
        _, gamma = split_mask(outside, ratio, self.val_selection, (0, 0), self.std_scale, gen)
        train = omega - gamma  # (1, 1, H, W): Omega \ Gamma
        pairs = [
            split_mask(
                train, self.loss_ratio, self.loss_selection, self.keep_center, self.std_scale, gen
            )
            for _ in range(self.num_splits)
        ]
        return gamma, pairs

    # --- fitting -----------------------------------------------------------------

    def start_kspace(
        self,
        net: nn.Module,
        kspace: torch.Tensor,
        mask: torch.Tensor,
        nlf: torch.Tensor,
        key: tuple,
    ) -> torch.Tensor | None:
        """Coil k-space the network starts from for this input; ``None``: zero-filled.

        A hook for subclasses (:class:`~unrolled.methods.zeroshot_volume.VolumeZeroShot`
        starts from a classical reconstruction). Called once per distinct input
        of a fit (``Omega \\ Gamma`` first, then each ``Theta``) and for the
        final image, after ``net``'s ESPIRiT maps for ``key`` are cached.
        """
        return None

    def reconstruct(
        self, net: nn.Module, kspace, mask, nlf, key: tuple, return_cascades: bool = False
    ) -> Reconstruction:
        """A fitted ``net``'s output from ``kspace``, from its start (:meth:`start_kspace`)."""
        start = self.start_kspace(net, kspace, mask, nlf, key)
        return run_net(net, kspace, mask, nlf, [key], start, return_cascades)

    def lr_factor(self, step: int, elapsed: float = 0.0) -> float:
        """Learning rate of 0-based ``step``, relative to ``lr``.

        Linear warm-up over ``warmup_steps``, then cosine decay to
        ``min_lr_ratio``. The decay's progress is the larger of the fraction
        of ``max_steps`` done and the fraction of the time budget spent, so
        that the rate has decayed when the budget runs out, however loaded
        the machine is.
        """
        warmup = min(self.warmup_steps, self.max_steps - 1)
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(self.max_steps - warmup, 1)
        if self.time_budget_s:
            progress = max(progress, elapsed / self.time_budget_s)
        progress = min(progress, 1.0)
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * cosine

    def fit_scan(
        self,
        kspace: torch.Tensor,
        mask: torch.Tensor,
        num_low_frequencies: torch.Tensor,
        key: tuple = (0,),
        monitor: Monitor | None = None,
        init: nn.Module | None = None,
    ) -> tuple[nn.Module, ScanHistory]:
        """Fit a fresh copy of the network (or of ``init``) to one slice.

        Args:
            kspace: ``(1, C, H, W)`` measured coil k-space, zero where not sampled.
            mask: ``(1, 1, H, W)`` (or broadcastable) acquired locations.
            num_low_frequencies: ``(1,)`` calibration width.
            key: the slice's name in the history (and the ESPIRiT cache of the copy).
            monitor: called after each validation (no gradients) with the network;
                its time is left off the clock (budget, schedule, ``seconds``).
            init: fit a copy of this network instead (e.g. a neighbouring slice's fit).

        Returns:
            ``(fitted network with the best weights, history)``.
        """
        start = time.perf_counter()
        h, w = kspace.shape[-2:]
        mask = (mask != 0).float().expand(1, 1, h, w)
        nlf = num_low_frequencies.reshape(1)
        gamma, pairs = self.split(mask, int(nlf))
        gamma = gamma.to(kspace.device)
        pairs = [(t.to(kspace.device), lam.to(kspace.device)) for t, lam in pairs]
        train = mask - gamma
        y_train = kspace * train  # (1, C, H, W): Gamma removed

        net = copy.deepcopy(self.net if init is None else init).to(kspace.device).train()
        keys = [tuple(key)]
        # ESPIRiT maps once, from the complete calibration region, cached for every call
        if isinstance(getattr(net, "sens", None), EspiritSensitivity):
            net.sens(y_train, train, nlf, keys=keys)
        # the start of each input (None: zero-filled), computed once: Omega \ Gamma first
        start_train = self.start_kspace(net, y_train, train, nlf, tuple(key))
        starts = [self.start_kspace(net, kspace * t, t, nlf, tuple(key)) for t, _ in pairs]
        params = [p for p in net.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)

        hist = ScanHistory(key=tuple(key))
        monitored = 0.0  # seconds spent in the monitor: not on the clock

        def clock() -> float:
            return time.perf_counter() - start - monitored

        def validate(step: int) -> float:
            nonlocal monitored
            with torch.no_grad():
                out = run_net(net, y_train, train, nlf, keys, start_train)
                val = float(self.loss(out.kspace, kspace, gamma))
                if monitor is not None:
                    t0 = time.perf_counter()
                    extra = monitor(step, net)
                    (hist.records[-1].extra if hist.records else hist.initial_extra).update(extra)
                    monitored += time.perf_counter() - t0
            return val

        with torch.enable_grad():
            hist.initial_val_loss = hist.best_val_loss = validate(0)
            best_state = copy.deepcopy(net.state_dict())
            bad = 0
            for step in range(1, self.max_steps + 1):
                theta, lam = pairs[(step - 1) % len(pairs)]
                start_k = starts[(step - 1) % len(pairs)]
                lr = self.lr * self.lr_factor(step - 1, clock())
                for group in opt.param_groups:
                    group["lr"] = lr
                out = run_net(net, kspace * theta, theta, nlf, keys, start_k)
                loss = self.loss(out.kspace, kspace, lam)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if self.grad_clip is not None:
                    nn.utils.clip_grad_norm_(params, self.grad_clip)
                opt.step()
                record = StepRecord(step, loss.item(), math.nan, lr, 0.0)
                hist.records.append(record)
                over_budget = self.time_budget_s is not None and clock() > self.time_budget_s
                if step % self.val_every == 0 or step == self.max_steps or over_budget:
                    record.val_loss = validate(step)
                    if record.val_loss < hist.best_val_loss * (1 - self.min_delta):
                        hist.best_val_loss, hist.best_step, bad = record.val_loss, step, 0
                        best_state = copy.deepcopy(net.state_dict())
                    else:
                        bad += 1
                    log.info(
                        "zero-shot %s step %d: train %.4f held-out %.4f (best %.4f at %d)",
                        key, step, record.train_loss, record.val_loss,
                        hist.best_val_loss, hist.best_step,
                    )  # fmt: skip
                record.seconds = clock()
                if over_budget:
                    hist.stop_reason = "time_budget"
                    break
                if bad >= self.patience:
                    hist.stop_reason = "patience"
                    break
            else:
                hist.stop_reason = "max_steps"
        net.load_state_dict(best_state)
        hist.seconds = clock()
        return net.eval(), hist

    def forward(
        self,
        kspace: torch.Tensor,
        mask: torch.Tensor,
        num_low_frequencies: torch.Tensor,
        keys: list[tuple] | None = None,
        return_cascades: bool = False,
    ) -> Reconstruction:
        """Fit and reconstruct every slice of the batch, one at a time.

        Args and output as :meth:`UnrolledNet.forward`; each slice's
        :class:`ScanHistory` is appended to :attr:`histories`.
        """
        b = kspace.shape[0]
        mask = mask.expand(b, 1, *kspace.shape[-2:])
        outs = []
        for i in range(b):
            start = time.perf_counter()
            key = tuple(keys[i]) if keys is not None else (i,)
            k, m, n = kspace[i : i + 1], mask[i : i + 1], num_low_frequencies[i : i + 1]
            net, hist = self.fit_scan(k, m, n, key)
            with torch.no_grad():
                outs.append(self.reconstruct(net, k, m, n, key, return_cascades))
            hist.seconds = time.perf_counter() - start
            self.histories.append(hist)
            log.info(
                "zero-shot %s: stopped at step %d (%s), kept step %d (held-out %.4f), %.1f s",
                key, hist.last_step, hist.stop_reason, hist.best_step, hist.best_val_loss,
                hist.seconds,
            )  # fmt: skip
        cascades = [torch.cat(c) for c in zip(*(o.cascades for o in outs), strict=True)]
        return Reconstruction(
            image=torch.cat([o.image for o in outs]),
            kspace=torch.cat([o.kspace for o in outs]),
            maps=torch.cat([o.maps for o in outs]),
            cascades=cascades,
        )


def run_net(
    net: nn.Module,
    kspace: torch.Tensor,
    mask: torch.Tensor,
    nlf: torch.Tensor,
    keys: list[tuple],
    start: torch.Tensor | None = None,
    return_cascades: bool = False,
) -> Reconstruction:
    """``net(kspace, mask, nlf, keys=keys)``, from ``start`` (``initial_kspace``) when given."""
    extra = {} if start is None else {"initial_kspace": start}
    return net(kspace, mask, nlf, keys=keys, return_cascades=return_cascades, **extra)


def load_warm_start(net: nn.Module, checkpoint: str | PathLike[str], strict: bool = False) -> None:
    """Load a checkpoint's network weights into ``net`` (``weights_only``: no code runs).

    Accepts an ``unrolled-train`` checkpoint (weights under ``state_dict``,
    prefixed ``net.``) or a plain state dict. Without ``strict``, tensors
    present on one side only are skipped (e.g. a learned sensitivity CNN when
    ``net`` uses ESPIRiT), but tensors of the same name must have the same shape.

    Raises:
        FileNotFoundError: no such file.
        DataError: not a readable checkpoint.
        RuntimeError: ``strict`` and the names differ.
        ValueError: shapes differ, or no name matches.
    """
    path = Path(checkpoint)
    state = network_state(read_checkpoint(path))
    own = net.state_dict()
    common = [k for k in state if k in own]
    wrong = [k for k in common if own[k].shape != state[k].shape]
    if wrong:
        raise ValueError(f"{path}: the network differs in shape: {', '.join(wrong[:3])}, ...")
    if strict:
        net.load_state_dict(state, strict=True)
    elif not common:
        raise ValueError(f"{path}: no weight of the checkpoint matches the network's names")
    else:
        net.load_state_dict({k: state[k] for k in common}, strict=False)
    log.info("warm start from %s: %d of %d tensors loaded", path, len(common), len(own))
