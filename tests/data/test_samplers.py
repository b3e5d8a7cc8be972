"""Evaluation sampling under DDP: whole volumes per rank, every slice exactly once."""

import pytest

from unrolled.data.dataset import SliceDataset
from unrolled.data.samplers import VolumeShardSampler


class _Vol:
    def __init__(self, fname):
        self.fname = fname


class _FakeDataset:
    """Volumes of 5, 3, 3 and 1 slices, items listed in a shuffled order."""

    def __init__(self):
        sizes = {"a.h5": 5, "b.h5": 3, "c.h5": 3, "d.h5": 1}
        items = [(f, s) for f, n in sizes.items() for s in range(n)]
        self.items = items[::2] + items[1::2]

    def __len__(self):
        return len(self.items)

    def example(self, i):
        f, s = self.items[i]
        return _Vol(f), s


@pytest.mark.parametrize("replicas", [1, 2, 3, 4, 6])
def test_every_slice_once_and_volumes_whole(replicas):
    ds = _FakeDataset()
    seen, owners = [], {}
    for rank in range(min(replicas, 4)):  # ranks beyond 4 (the volume count) only get copies
        for batch in VolumeShardSampler(ds, batch_size=2, num_replicas=replicas, rank=rank):
            fnames = {ds.items[i][0] for i in batch}
            assert len(fnames) == 1  # one volume per batch
            (f,) = fnames
            assert owners.setdefault(f, rank) == rank  # one rank per volume
            seen += batch
    assert sorted(seen) == list(range(len(ds)))  # nothing missing, nothing duplicated


def test_slices_in_order_and_balanced():
    ds = _FakeDataset()
    r0 = VolumeShardSampler(ds, batch_size=10, num_replicas=2, rank=0)
    r1 = VolumeShardSampler(ds, batch_size=10, num_replicas=2, rank=1)
    for sampler in (r0, r1):
        for batch in sampler:
            assert [ds.items[i][1] for i in batch] == sorted(ds.items[i][1] for i in batch)
    loads = [sum(len(b) for b in s) for s in (r0, r1)]
    assert sorted(loads) == [6, 6]  # 5+1 and 3+3


def test_idle_rank_scores_a_copy_of_the_smallest_volume():
    ds = _FakeDataset()
    (batch,) = list(VolumeShardSampler(ds, 2, num_replicas=6, rank=5))
    assert [ds.items[i] for i in batch] == [("d.h5", 0)]


def test_on_real_files(tiny_root):
    ds = SliceDataset(tiny_root / "train", use_dataset_cache=False)
    batches = list(VolumeShardSampler(ds, batch_size=4, num_replicas=2, rank=0)) + list(
        VolumeShardSampler(ds, batch_size=4, num_replicas=2, rank=1)
    )
    assert sorted(i for b in batches for i in b) == list(range(len(ds)))
