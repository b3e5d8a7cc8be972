"""Evaluation batch sampler that keeps every volume whole on one process.

fastMRI's metrics are volume-level (PSNR and NMSE over the whole volume, SSIM
with the volume maximum as data range). Under DDP a plain distributed sampler
splits volumes across processes and pads with duplicates, so metrics come out
wrong. :class:`VolumeShardSampler` assigns each volume to exactly one rank,
pads nothing, and may give ranks different numbers of batches: evaluation has
no collective operation per step (metrics are gathered once per epoch), so
nothing waits on a rank that has finished. A rank left without a volume
(more ranks than volumes) scores a copy of the smallest one, because Lightning
skips the epoch-end hooks of a rank with no batches, and those hooks hold the
one collective that gathers the metrics; the merge counts that copy once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch.utils.data import Sampler


class VolumeShardSampler(Sampler[list[int]]):
    """Batches of slices of one volume each; every volume on exactly one rank.

    Volumes are assigned greedily, largest first, to the rank with the fewest
    slices so far (ties: lowest rank), so the split is deterministic and
    balanced. With more ranks than volumes, an idle rank gets a copy of the
    smallest volume (see the module docstring).

    Args:
        dataset: a :class:`~unrolled.data.dataset.SliceDataset` (uses ``example(i)``).
        batch_size: slices per batch (a volume's last batch may be smaller).
        num_replicas: number of processes.
        rank: this process's index.
    """

    def __init__(self, dataset: Any, batch_size: int, num_replicas: int = 1, rank: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} not in [0, {num_replicas})")
        volumes: dict[str, list[tuple[int, int]]] = {}
        for i in range(len(dataset)):
            vol, slice_num = dataset.example(i)
            volumes.setdefault(vol.fname, []).append((slice_num, i))
        load = [0] * num_replicas
        owner: dict[str, int] = {}
        for fname in sorted(volumes, key=lambda f: (-len(volumes[f]), f)):
            r = min(range(num_replicas), key=lambda k: (load[k], k))
            owner[fname] = r
            load[r] += len(volumes[fname])
        mine = sorted(f for f in volumes if owner[f] == rank)
        if not mine and volumes:  # an idle rank scores a copy of the smallest volume
            mine = [min(volumes, key=lambda f: (len(volumes[f]), f))]
        self.batches: list[list[int]] = []
        for fname in mine:
            idx = [i for _, i in sorted(volumes[fname])]  # slice order
            self.batches += [idx[s : s + batch_size] for s in range(0, len(idx), batch_size)]
        self.owner = owner

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)
