"""Callbacks: image grids of reconstructions, to W&B and as PNGs in the run directory."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from unrolled.data.publish import atomic_path
from unrolled.physics.coils import center_crop, rss
from unrolled.physics.fft import ifft2c


def save_image_grid(
    rows: list[dict[str, torch.Tensor]],
    path: Path,
    title: str = "",
    row_labels: list[str] | None = None,
) -> Path:
    """Write a grid, one row per slice, columns named by the dict keys, as a PNG.

    Images share the gray scale of their row's target (a colour bar per row gives it);
    columns whose name starts with ``error`` show the absolute error on a scale of 0 to a
    fifth of the target's maximum (magma, its own colour bar). Where a row has a ``target``,
    every other image column is titled with its slice PSNR (dB) and SSIM against it
    (fastMRI's definitions, data range: the target's maximum). ``row_labels`` (e.g. file
    and slice) title the first panel of each row.
    """
    from matplotlib.figure import Figure  # no pyplot: leaves the user's backend alone

    from unrolled.metrics import psnr, ssim

    ncols = max(len(r) for r in rows)
    fig = Figure(figsize=(2.2 * ncols + 1.2, 2.5 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for i, row in enumerate(rows):
        target = row.get("target")
        vmax = float((target if target is not None else next(iter(row.values()))).max())
        shown = {}
        for j, (name, img) in enumerate(row.items()):
            ax = axes[i, j]
            img = img.detach().float().cpu()
            label = name
            if name.startswith("error"):
                shown["error"] = ax.imshow(img.numpy(), cmap="magma", vmin=0, vmax=vmax / 5)
            else:
                shown["image"] = ax.imshow(img.numpy(), cmap="gray", vmin=0, vmax=vmax)
                if target is not None and name != "target" and img.shape == target.shape:
                    ref = target.detach().float().cpu()
                    p, q = float(psnr(ref, img, vmax)), float(ssim(ref, img, vmax))
                    label = f"{name}\n{p:.2f} dB, SSIM {q:.3f}"
            if j == 0 and row_labels is not None:
                label = f"{row_labels[i]}\n{label}"
            ax.set_title(label, fontsize=7)
            ax.axis("off")
        for j in range(len(row), ncols):  # a shorter row leaves its last panels empty
            axes[i, j].axis("off")
        if "image" in shown:
            fig.colorbar(shown["image"], ax=list(axes[i]), shrink=0.8, label="intensity")
        if "error" in shown:
            fig.colorbar(shown["error"], ax=list(axes[i]), shrink=0.8, label="|error|")
    if title:
        fig.suptitle(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return path


class ImageLogger(L.Callback):
    """Logs target, zero-filled, reconstruction, error map and selected cascades.

    On the first validation batch every ``every_n_epochs`` epochs, writes
    ``figures/val_epoch{E:03d}.png`` under the trainer's log directory (or
    ``default_root_dir``) and logs it to W&B when a ``WandbLogger`` is attached.

    Args:
        num_images: slices of the first validation batch to show.
        every_n_epochs: how often.
        cascades: indices of cascades whose outputs to show (negative ones
            count from the end).
    """

    def __init__(
        self, num_images: int = 2, every_n_epochs: int = 1, cascades: list[int] | None = None
    ) -> None:
        self.num_images = num_images
        self.every_n_epochs = every_n_epochs
        self.cascades = list(cascades) if cascades is not None else [0]
        self.last_path: Path | None = None
        self._root: Path | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # trainer.log_dir broadcasts rank 0's directory: a collective, so every rank asks for
        # it here, together; asked on rank 0 alone (below), it would hang the other ranks.
        self._root = Path(trainer.log_dir or trainer.default_root_dir)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ):
        # Rank 0 alone from here on: nothing below may synchronise the ranks.
        if batch_idx != 0 or trainer.sanity_checking or not trainer.is_global_zero:
            return
        if trainer.current_epoch % self.every_n_epochs != 0 or not batch.has_target:
            return
        with torch.no_grad():
            pred, out = pl_module(batch, return_cascades=True)
        crop = tuple(int(v) for v in batch.crop_size[0])
        zf = center_crop(rss(ifft2c(batch.kspace), dim=1), crop)
        rows = []
        for i in range(min(self.num_images, len(batch.fname))):
            row = {"target": batch.target[i], "zero-filled": zf[i], "unrolled": pred[i]}
            row["error (x5)"] = (pred[i] - batch.target[i]).abs()
            for c in self.cascades:
                if -len(out.cascades) <= c < len(out.cascades):
                    idx = c % len(out.cascades)
                    row[f"cascade {idx + 1}"] = center_crop(out.cascades[idx][i], crop)
            rows.append(row)
        root = self._root or Path(trainer.default_root_dir)
        path = root / "figures" / f"val_epoch{trainer.current_epoch:03d}.png"
        labels = [f"{batch.fname[i]}, slice {int(batch.slice_num[i])}" for i in range(len(rows))]
        self.last_path = save_image_grid(
            rows, path, f"epoch {trainer.current_epoch}", row_labels=labels
        )
        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger":  # rank-0-only logging, no collective
                logger.log_image(key="val/images", images=[str(path)], step=trainer.global_step)


class ResumeCheckpoint(ModelCheckpoint):
    """The one writer of the resume checkpoint ``last.ckpt``.

    Writes it every ``every_n_train_steps`` optimisation steps and at the end of every
    training epoch (after its validation), so a killed or requeued run that resumes from
    it (``resume=auto``) repeats at most ``every_n_train_steps`` steps, whatever the
    epoch length, and a finished run's ``last.ckpt`` holds its final weights. Other
    checkpoint callbacks (the best model) must not also write a ``last.ckpt``: two
    writers of one name make Lightning version the second (``last-v1.ckpt``).

    Args:
        dirpath: the folder of ``last.ckpt``.
        every_n_train_steps: the period, in optimisation steps.
    """

    def __init__(self, dirpath: str, every_n_train_steps: int = 25) -> None:
        super().__init__(
            dirpath=dirpath, every_n_train_steps=every_n_train_steps, save_top_k=0, save_last=True
        )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if not self._should_skip_saving_checkpoint(trainer):  # not saved at this step yet
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
