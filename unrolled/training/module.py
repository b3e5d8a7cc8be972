"""The LightningModule: trains any reconstruction network on :class:`Sample` batches.

The network, the loss and the optimizer / scheduler factories are injected;
the hyperparameters live in their constructors (and in the resolved Hydra
config stored in every checkpoint), not in this module.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
import torch
from torch import nn

from unrolled.data.sample import Sample
from unrolled.inference.runner import reconstruct, summarise
from unrolled.metrics import VolumeMetricAccumulator

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


def all_ranks(module: L.LightningModule, decision: bool) -> bool:
    """``decision`` and-ed over the DDP ranks (one all-reduce, every rank must call it);
    ``decision`` itself in one process or without a trainer."""
    trainer = module._trainer  # None outside a trainer (then no other rank exists)
    return trainer.strategy.reduce_boolean_decision(decision) if trainer is not None else decision


class ReconModule(L.LightningModule):
    """Supervised training of a reconstruction network.

    Args:
        net: the network, called as ``net(kspace, mask, num_low_frequencies, keys=...,
            return_cascades=...)`` and returning an object with ``.image`` ``(B, H, W)``.
        loss: ``loss(pred, target, max_value) -> scalar`` on cropped magnitude images.
        optimizer: factory ``params -> Optimizer`` (a Hydra ``_partial_``).
        scheduler: factory ``(optimizer, total_steps) -> LRScheduler`` stepped
            every step, or ``None``.
        config: the resolved run configuration, stored in every checkpoint.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.config = config or {}
        self._metrics: dict[str, VolumeMetricAccumulator] = {}
        # Evaluation keeps volumes whole per rank, so a rank may get no volume at all.
        self.allow_zero_length_dataloader_with_multiple_devices = True

    def forward(self, batch: Sample, return_cascades: bool = False):
        return reconstruct(self.net, batch, return_cascades)

    def training_step(self, batch: Sample, batch_idx: int) -> torch.Tensor:
        if not batch.has_target:
            raise ValueError("supervised training needs fully sampled targets")
        pred, _ = self(batch)
        loss = self.loss(pred, batch.target, batch.max_value)
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
        """The ``val/loss`` (``test/loss``) of a batch: the training loss against the
        reference, or ``None`` without one. ``pred``: the cropped images ``(B, h, w)``."""
        if not batch.has_target:
            return None
        return self.loss(pred, batch.target, batch.max_value)

    def _eval_step(self, batch: Sample, stage: str) -> None:
        pred, _ = self(batch)
        acc = self._metrics.setdefault(stage, VolumeMetricAccumulator())
        loss = self.eval_loss(batch, pred)
        if loss is not None:
            acc.loss_sum += float(loss) * len(batch.fname)
            acc.loss_count += len(batch.fname)
        if not batch.has_target:
            return
        for i, fname in enumerate(batch.fname):
            acc.update(fname, batch.slice_num[i], pred[i], batch.target[i], batch.max_value[i])

    def validation_step(self, batch: Sample, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: Sample, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _eval_epoch_end(self, stage: str) -> None:
        # One collective per epoch, on every rank, whatever each saw (even nothing): per-step
        # synchronisation would hang when ranks hold different numbers of volumes.
        acc = self._metrics.pop(stage, VolumeMetricAccumulator())
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, acc.state())
            acc = VolumeMetricAccumulator()
            for state in gathered:
                acc.merge(VolumeMetricAccumulator.from_state(state))
        self.volume_metrics = getattr(self, "volume_metrics", {})
        self.volume_metrics[stage] = acc.volumes()
        metrics = summarise(acc.volumes())
        if acc.loss_count:
            metrics["loss"] = acc.loss_sum / acc.loss_count
        for name, value in metrics.items():
            # Identical on every rank after the gather: no further reduction needed.
            self.log(f"{stage}/{name}", value, prog_bar=(name == "ssim"), rank_zero_only=False)

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def configure_optimizers(self):
        opt = self.optimizer_factory([p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return opt
        sched = self.scheduler_factory(opt, total_steps=self._total_steps())
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _total_steps(self) -> int:
        """Optimisation steps of the whole run, for the schedule.

        Computed from the data module's loader length rather than Lightning's
        ``estimated_stepping_batches``, which builds the training iterator before
        a checkpoint is restored and so defeats resuming mid-epoch.
        """
        t = self.trainer
        if t.max_steps is not None and t.max_steps > 0:
            return int(t.max_steps)
        dm = t.datamodule
        if dm is None or t.max_epochs is None or t.max_epochs < 0:
            return int(t.estimated_stepping_batches)
        n = len(dm.train_dataloader())
        limit = t.limit_train_batches
        n = min(n, limit) if isinstance(limit, int) else int(n * limit)
        return max(1, math.ceil(n / t.accumulate_grad_batches) * t.max_epochs)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["unrolled_config"] = self.config
