"""Slice-level data set over fastMRI files, and a shape-bucketing batch sampler.

:class:`SliceDataset` mirrors ``fastmri.data.SliceDataset``: one item per
slice, a pickled metadata cache, slice- or volume-level subsampling and
filters. It keeps no HDF5 handle (each item opens its file), so it works with
``DataLoader(num_workers > 0)``.

fastMRI slices differ in width (and coil count) between volumes, so batches
larger than one need :class:`ShapeBucketSampler`, which only batches slices
of equal k-space shape.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import pickle
import random
from collections.abc import Callable, Iterator, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset, Sampler

from unrolled.data.errors import DataError
from unrolled.data.fastmri_io import (
    VolumeInfo,
    read_reference_max,
    read_slice,
    read_volume_info,
    recon_key_for,
)
from unrolled.data.publish import atomic_path

log = logging.getLogger(__name__)

_CACHE_VERSION = 1
PathType = str | PathLike[str]


class SliceDataset(Dataset):
    """All slices of the fastMRI files under one or more roots.

    Args:
        root: a directory of ``*.h5`` files (hidden files skipped), a single
            file, or a list of either.
        challenge: ``"multicoil"`` (k-space rank 4, reference
            ``reconstruction_rss``) or ``"singlecoil"`` (rank 3,
            ``reconstruction_esc``).
        transform: applied to each :class:`~unrolled.data.fastmri_io.RawSlice`
            (e.g. :class:`~unrolled.data.transforms.UnrolledTransform`);
            ``None`` returns the ``RawSlice``.
        sample_rate: keep this fraction of the slices, in ``(0, 1]``.
        volume_sample_rate: keep this fraction of the volumes, in ``(0, 1]``;
            exclusive with ``sample_rate``.
        use_dataset_cache: read/write volume metadata from/to
            ``dataset_cache_file``.
        dataset_cache_file: pickle with one entry per root; an entry is
            reused for files whose modification time and size are unchanged.
            Relative paths are relative to the working directory, as in fastMRI.
        acquisitions: keep only volumes whose ``acquisition`` attribute is in
            this list (e.g. ``["CORPD_FBK"]``).
        num_coils: keep only volumes with this coil count (or one of these).
        seed: seed of the subsampling; the same seed keeps the same slices.

    Raises:
        DataError: a root is missing or holds no ``.h5`` files, a file is
            invalid or of the other challenge, or nothing is left after
            filtering and subsampling.
    """

    def __init__(
        self,
        root: PathType | Sequence[PathType],
        challenge: str = "multicoil",
        transform: Callable[[Any], Any] | None = None,
        sample_rate: float | None = None,
        volume_sample_rate: float | None = None,
        use_dataset_cache: bool = True,
        dataset_cache_file: PathType = "dataset_cache.pkl",
        acquisitions: Sequence[str] | None = None,
        num_coils: int | Sequence[int] | None = None,
        seed: int = 0,
    ) -> None:
        self.recon_key = recon_key_for(challenge)
        self.challenge = challenge
        if sample_rate is not None and volume_sample_rate is not None:
            raise ValueError("set sample_rate or volume_sample_rate, not both")
        for name, rate in (
            ("sample_rate", sample_rate),
            ("volume_sample_rate", volume_sample_rate),
        ):
            if rate is not None and not 0.0 < rate <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {rate}")
        self.transform = transform
        self.roots = [Path(root)] if isinstance(root, str | PathLike) else [Path(r) for r in root]
        if not self.roots:
            raise ValueError("root is an empty list")

        volumes = self._scan(use_dataset_cache, Path(dataset_cache_file))
        for vol in volumes:
            if (vol.num_coils is None) != (challenge == "singlecoil"):
                raise DataError(
                    vol.path,
                    f"k-space has rank {len(vol.kspace_shape)} but challenge is {challenge!r} "
                    "(expected rank 4 for multicoil, 3 for singlecoil)",
                )
        if acquisitions is not None:
            volumes = [v for v in volumes if v.attrs.get("acquisition") in set(acquisitions)]
        if num_coils is not None:
            wanted = {num_coils} if isinstance(num_coils, int) else set(num_coils)
            volumes = [v for v in volumes if v.num_coils in wanted]

        self.seed = seed
        rng = random.Random(seed)
        if volume_sample_rate is not None:
            names = sorted(v.fname for v in volumes)
            rng.shuffle(names)
            keep = set(names[: round(len(names) * volume_sample_rate)])
            volumes = [v for v in volumes if v.fname in keep]
        examples = [(vi, s) for vi, v in enumerate(volumes) for s in range(v.num_slices)]
        if sample_rate is not None:
            chosen = rng.sample(range(len(examples)), round(len(examples) * sample_rate))
            examples = [examples[i] for i in sorted(chosen)]
            used = sorted({vi for vi, _ in examples})
            renumber = {old: new for new, old in enumerate(used)}
            volumes = [volumes[i] for i in used]
            examples = [(renumber[vi], s) for vi, s in examples]
        if not examples:
            raise DataError(
                ", ".join(map(str, self.roots)),
                f"no slices left (challenge={challenge!r}, acquisitions={acquisitions}, "
                f"num_coils={num_coils}, sample_rate={sample_rate}, "
                f"volume_sample_rate={volume_sample_rate})",
            )
        self.volumes: list[VolumeInfo] = volumes
        self._examples: list[tuple[int, int]] = examples  # (volume index, slice index)

    def __len__(self) -> int:
        return len(self._examples)

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        """Item ``i``; a key ``(i, epoch)`` (from ``ShapeBucketSampler(with_epoch=True)``)
        also passes the mask seed ``(seed, epoch, i)`` to the transform."""
        i, epoch = (key, None) if isinstance(key, int) else key
        vol, slice_num = self.example(i)
        raw = read_slice(vol.path, slice_num, recon_key=self.recon_key)
        if raw.target is not None and "max" not in raw.attrs:
            # the data range of the metrics: the whole reference volume's maximum, as
            # fastMRI's evaluate (and unrolled-evaluate) take it, never the slice's own
            raw = dataclasses.replace(raw, attrs={**raw.attrs, "max": self._reference_max(vol)})
        if self.transform is None:
            return raw
        if epoch is None:
            return self.transform(raw)
        return self.transform(raw, seed=(self.seed, int(epoch), int(i)))

    def _reference_max(self, vol: VolumeInfo) -> float:
        """Maximum of the stored reference volume of a file without a ``max`` attribute
        (read once per volume and process)."""
        cache = self.__dict__.setdefault("_reference_maxima", {})
        if vol.fname not in cache:
            cache[vol.fname] = read_reference_max(vol.path, self.recon_key)
        return cache[vol.fname]

    def example(self, i: int) -> tuple[VolumeInfo, int]:
        """The volume and slice index of item ``i``."""
        vi, slice_num = self._examples[i]
        return self.volumes[vi], slice_num

    def shapes(self) -> list[tuple[int, int, int]]:
        """k-space shape ``(C, H, W)`` of every item, for shape bucketing."""
        return [self.volumes[vi].slice_shape for vi, _ in self._examples]

    # --- metadata cache ----------------------------------------------------

    def _scan(self, use_cache: bool, cache_file: Path) -> list[VolumeInfo]:
        cache = _load_cache(cache_file) if use_cache else {}
        changed = False
        volumes: list[VolumeInfo] = []
        for root in self.roots:
            files = _list_files(root)
            stats = {str(f): _stat(f) for f in files}
            key = str(root.resolve())
            entry = cache.get(key, {})
            old_stats, old_infos = entry.get("stats", {}), entry.get("volumes", {})
            infos = {}
            for f in files:
                name = str(f)
                if name in old_infos and old_stats.get(name) == stats[name]:
                    infos[name] = old_infos[name]
                else:
                    infos[name] = read_volume_info(f)
            if stats != old_stats:
                cache[key] = {"stats": stats, "volumes": infos}
                changed = True
            volumes.extend(infos[str(f)] for f in files)
        if use_cache and changed:
            _save_cache(cache_file, cache)
        return volumes


class ShapeBucketSampler(Sampler[list[int]]):
    """Batch sampler whose batches hold slices of one k-space shape only.

    Use as ``DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_samples)``.
    Call :meth:`set_epoch` each epoch: the order is a function of
    ``(seed, epoch)`` only.

    Args:
        dataset: an object with ``shapes()`` (e.g. :class:`SliceDataset`), or
            the list of per-item shapes itself.
        batch_size: slices per batch.
        shuffle: shuffle within each shape and the order of the batches.
        seed: base seed of the shuffling.
        drop_last: drop each shape's last, incomplete batch.
        num_replicas: number of distributed processes sharing the data.
        rank: this process's index; it gets every ``num_replicas``-th batch
            (batches are repeated so that every rank gets as many).
        with_epoch: yield ``(index, epoch)`` keys instead of indices, so the
            data set can seed random masks by epoch (reproducible across
            workers and resumed runs).
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
        with_epoch: bool = False,
    ) -> None:
        self.with_epoch = with_epoch
        # Lightning sets epochs through ``dataloader.batch_sampler.sampler.set_epoch``.
        self.sampler = self
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} not in [0, {num_replicas})")
        shapes = dataset.shapes() if hasattr(dataset, "shapes") else list(dataset)
        buckets: dict[tuple[int, ...], list[int]] = {}
        for i, shape in enumerate(shapes):
            buckets.setdefault(tuple(shape), []).append(i)
        self.buckets = list(buckets.values())  # in order of first appearance
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffling of epoch ``epoch``."""
        self.epoch = epoch

    def resume(self, epoch: int, batches_done: int) -> None:
        """Continue epoch ``epoch`` after its first ``batches_done`` batches (this rank's),
        once: the next iteration skips them, later ones are whole epochs again."""
        self.epoch = epoch
        self._skip = batches_done

    def _num_batches(self) -> int:
        if self.drop_last:
            return sum(len(b) // self.batch_size for b in self.buckets)
        return sum(math.ceil(len(b) / self.batch_size) for b in self.buckets)

    def __len__(self) -> int:
        return math.ceil(self._num_batches() / self.num_replicas)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        batches: list[list[int]] = []
        for bucket in self.buckets:
            order = [bucket[j] for j in rng.permutation(len(bucket))] if self.shuffle else bucket
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                if len(batch) == self.batch_size or not self.drop_last:
                    batches.append(batch)
        if self.shuffle:
            batches = [batches[j] for j in rng.permutation(len(batches))]
        total = len(self) * self.num_replicas
        while batches and len(batches) < total:  # equal share per rank
            batches.extend(batches[: total - len(batches)])
        mine = batches[self.rank : total : self.num_replicas]
        skip, self._skip = getattr(self, "_skip", 0), 0
        for batch in mine[skip:]:
            yield [(i, self.epoch) for i in batch] if self.with_epoch else batch


def _list_files(root: Path) -> list[Path]:
    if not root.exists():
        raise DataError(root, "data root does not exist")
    root = root.resolve()
    if root.is_file():
        return [root]
    files = sorted(p for p in root.glob("*.h5") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DataError(root, "data root contains no .h5 files")
    return files


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return (st.st_mtime_ns, st.st_size)


def _load_cache(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        with open(path, "rb") as f:
            cache = pickle.load(f)
        if isinstance(cache, dict) and cache.get("version") == _CACHE_VERSION:
            return cache["roots"]
        log.warning("ignoring dataset cache %s of another version", path)
    except Exception as e:  # any unreadable cache is rebuilt
        log.warning("ignoring unreadable dataset cache %s (%s)", path, e)
    return {}


def _save_cache(path: Path, roots: dict[str, Any]) -> None:
    """Write the cache atomically: a temporary file in the same directory, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        pickle.dump({"version": _CACHE_VERSION, "roots": roots}, f)
    log.info("saved dataset cache to %s", path)
