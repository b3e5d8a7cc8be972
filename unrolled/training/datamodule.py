"""The LightningDataModule over fastMRI-layout folders ``train/``, ``val/``, ``test/``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from unrolled.data.dataset import ShapeBucketSampler, SliceDataset
from unrolled.data.sample import collate_samples
from unrolled.data.samplers import VolumeShardSampler
from unrolled.data.transforms import UnrolledTransform


class ResumableDataLoader(DataLoader):
    """A training loader whose position inside an epoch survives a checkpoint.

    Lightning stores ``state_dict()`` in every checkpoint and calls
    ``load_state_dict()`` when resuming, before iterating. We record the epoch
    and the number of batches this rank has already trained on, and the batch
    sampler skips exactly those, so a run killed mid-epoch continues with the
    very next batch (masks are seeded by epoch and index, so they repeat too).

    Args:
        progress: returns the number of batches of the current epoch already
            processed (from the trainer's loop progress).
    """

    def __init__(self, *args, progress, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._progress = progress

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(self.batch_sampler.epoch), "batches_done": int(self._progress())}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.batch_sampler.resume(state["epoch"], state["batches_done"])


class ReconDataModule(L.LightningDataModule):
    """Slices of fastMRI files, batched by k-space shape.

    Training masks are drawn afresh for every slice and epoch, seeded by
    ``(seed, epoch, index)`` so runs repeat exactly (across data-loading
    workers and after resuming); validation and test masks are seeded by file
    name (fastMRI's convention), so every evaluation sees the same undersampling.

    Args:
        root: folder holding the split folders.
        mask_func: training mask function (``(shape, offset, seed) -> (mask, nlf)``).
        val_mask_func: mask for validation and test (default: ``mask_func``).
        challenge: ``"multicoil"`` or ``"singlecoil"``.
        train_split / val_split / test_split: split folder names under ``root``.
        batch_size: slices per batch (one k-space shape per batch).
        num_workers: data-loading worker processes.
        pin_memory: pin host memory for faster GPU transfer.
        sample_rate: fraction of training slices to use.
        val_sample_rate: fraction of validation slices (test uses all).
        volume_sample_rate: fraction of training volumes (instead of ``sample_rate``).
        acquisitions: keep only these ``acquisition`` attributes.
        num_coils: keep only volumes with this coil count.
        cache_file: metadata cache pickle (default ``dataset_cache.pkl`` in the
            working directory, as fastMRI does). Lightning calls the batch
            sampler's ``set_epoch`` each epoch, so shuffles differ per epoch.
        seed: seed of shuffling and subsampling.
    """

    def __init__(
        self,
        root: str,
        mask_func,
        val_mask_func=None,
        challenge: str = "multicoil",
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "test",
        batch_size: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
        sample_rate: float | None = None,
        val_sample_rate: float | None = None,
        volume_sample_rate: float | None = None,
        acquisitions: Sequence[str] | None = None,
        num_coils: int | None = None,
        cache_file: str | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.mask_func = mask_func
        self.val_mask_func = val_mask_func or mask_func
        self.challenge = challenge
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.sample_rate = sample_rate
        self.val_sample_rate = val_sample_rate
        self.volume_sample_rate = volume_sample_rate
        self.acquisitions = acquisitions
        self.num_coils = num_coils
        self.cache_file = cache_file or "dataset_cache.pkl"
        self.seed = seed

    def dataset(self, stage: str) -> SliceDataset:
        """The :class:`SliceDataset` of ``stage`` (``"train"``, ``"val"`` or ``"test"``)."""
        train = stage == "train"
        transform = UnrolledTransform(
            self.mask_func if train else self.val_mask_func, use_seed=not train
        )
        rate = {"train": self.sample_rate, "val": self.val_sample_rate}.get(stage)
        return SliceDataset(
            self.root / self.splits[stage],
            challenge=self.challenge,
            transform=transform,
            sample_rate=rate,
            volume_sample_rate=self.volume_sample_rate if train else None,
            dataset_cache_file=self.cache_file,
            acquisitions=self.acquisitions,
            num_coils=self.num_coils,
            seed=self.seed,
        )

    def check(self, stages=("train", "val", "test")) -> None:
        """Scan the splits now, so bad files fail before any training starts.

        Raises:
            DataError: a split is missing, empty, or holds an unreadable file.
        """
        for stage in stages:
            self.dataset(stage)

    def _loader(self, stage: str, shard: bool = True) -> DataLoader:
        ds = self.dataset(stage)
        trainer = getattr(self, "trainer", None) if shard else None
        replicas = trainer.world_size if trainer is not None else 1
        rank = trainer.global_rank if trainer is not None else 0
        if stage == "train":  # equal batch counts per rank (gradients are synchronised)
            sampler = ShapeBucketSampler(
                ds,
                self.batch_size,
                shuffle=True,
                seed=self.seed,
                num_replicas=replicas,
                rank=rank,
                with_epoch=True,
            )
        else:  # whole volumes per rank, so volume-level metrics are exact under DDP
            sampler = VolumeShardSampler(ds, self.batch_size, num_replicas=replicas, rank=rank)
        extra = {"progress": self._batches_done} if stage == "train" else {}
        return (ResumableDataLoader if stage == "train" else DataLoader)(
            ds,
            batch_sampler=sampler,
            collate_fn=collate_samples,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            **extra,
        )

    def _batches_done(self) -> int:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0
        return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def whole_dataloader(self, stage: str) -> DataLoader:
        """Every volume of ``stage`` (``"val"`` or ``"test"``) in this process, whatever the
        number of DDP ranks: for evaluation outside Lightning's loops (on one rank), where
        the ``*_dataloader`` methods would give this rank's share only."""
        return self._loader(stage, shard=False)
