"""SliceDataset, ShapeBucketSampler and UnrolledTransform."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import unrolled.data.dataset as dataset_module
from unrolled.data.dataset import ShapeBucketSampler, SliceDataset
from unrolled.data.errors import DataError
from unrolled.data.fastmri_io import RawSlice, read_slice
from unrolled.data.sample import Sample, collate_samples
from unrolled.data.transforms import UnrolledTransform
from unrolled.physics.calibration import center_run_length


def fake_mask_func(shape, offset=None, seed=None):
    """A 1D random column mask with a 2-column centre, fastMRI-style seeding."""
    width = shape[-1]
    mask = (np.random.RandomState(seed).rand(width) < 0.4).astype(np.float32)
    mask[width // 2 - 1 : width // 2 + 1] = 1
    return torch.from_numpy(mask).reshape(1, width), 2


@pytest.fixture
def cache_file(tmp_path):
    return tmp_path / "cache" / "dataset_cache.pkl"


def make_dataset(root, cache_file, **kwargs):
    return SliceDataset(root, dataset_cache_file=cache_file, **kwargs)


# --- SliceDataset -------------------------------------------------------------


def test_dataset_items_volumes_shapes(mixed_root, cache_file):
    ds = make_dataset(mixed_root, cache_file)
    assert len(ds) == 7 and [v.fname for v in ds.volumes] == ["file_a.h5", "file_b.h5", "file_c.h5"]
    assert ds.shapes() == [(4, 16, 12)] * 5 + [(3, 16, 14)] * 2
    raw = ds[3]
    assert isinstance(raw, RawSlice) and (raw.fname, raw.slice_num) == ("file_b.h5", 1)
    assert torch.equal(raw.kspace, read_slice(mixed_root / "file_b.h5", 1).kspace)
    assert ds.example(6)[0].fname == "file_c.h5" and ds.example(6)[1] == 1
    sample = SliceDataset(mixed_root, transform=UnrolledTransform(), use_dataset_cache=False)[0]
    assert isinstance(sample, Sample) and sample.kspace.shape == (4, 16, 12)


def test_roots_list_and_single_file(mixed_root, make_fastmri_file, tmp_path, cache_file):
    other = make_fastmri_file("file_z.h5", directory=tmp_path / "other", num_slices=4)
    ds = make_dataset([mixed_root, other], cache_file)
    assert len(ds) == 11 and ds.volumes[-1].fname == "file_z.h5"
    assert len(make_dataset(str(other), cache_file)) == 4


def test_root_errors(tmp_path, mixed_root, cache_file):
    with pytest.raises(DataError, match="does not exist") as excinfo:
        make_dataset(tmp_path / "missing", cache_file)
    assert str(excinfo.value).startswith(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no data")
    with pytest.raises(DataError, match="no .h5 files"):
        make_dataset(tmp_path / "empty", cache_file)
    with pytest.raises(DataError, match="challenge is 'singlecoil'") as excinfo:
        make_dataset(mixed_root, cache_file, challenge="singlecoil")
    assert str(excinfo.value).startswith(str(mixed_root / "file_a.h5"))
    with pytest.raises(ValueError, match="challenge"):
        make_dataset(mixed_root, cache_file, challenge="triplecoil")
    with pytest.raises(ValueError, match="not both"):
        make_dataset(mixed_root, cache_file, sample_rate=0.5, volume_sample_rate=0.5)
    with pytest.raises(ValueError, match="sample_rate"):
        make_dataset(mixed_root, cache_file, sample_rate=1.5)


def test_filters(mixed_root, cache_file):
    ds = make_dataset(mixed_root, cache_file, acquisitions=["CORPD_FBK"])
    assert [v.fname for v in ds.volumes] == ["file_a.h5", "file_c.h5"] and len(ds) == 4
    assert [v.fname for v in make_dataset(mixed_root, cache_file, num_coils=3).volumes] == [
        "file_c.h5"
    ]
    assert len(make_dataset(mixed_root, cache_file, num_coils=[3, 4])) == 7
    with pytest.raises(DataError, match="no slices left"):
        make_dataset(mixed_root, cache_file, num_coils=8)


def test_sample_rates_deterministic(mixed_root, cache_file):
    def slices(**kw):
        ds = make_dataset(mixed_root, cache_file, **kw)
        return [(ds.example(i)[0].fname, ds.example(i)[1]) for i in range(len(ds))]

    half = slices(sample_rate=0.5, seed=1)
    assert len(half) == 4 and half == slices(sample_rate=0.5, seed=1)
    assert len({tuple(slices(sample_rate=0.5, seed=s)) for s in range(8)}) > 1
    vols = slices(volume_sample_rate=0.67, seed=3)
    names = {f for f, _ in vols}
    assert len(names) == 2 and vols == slices(volume_sample_rate=0.67, seed=3)
    full = slices()
    assert sorted(vols) == [s for s in full if s[0] in names]  # whole volumes


def test_cache_reused_and_invalidated(mixed_root, make_fastmri_file, cache_file, monkeypatch):
    make_dataset(mixed_root, cache_file)
    assert cache_file.exists()
    assert list(cache_file.parent.iterdir()) == [cache_file]  # no temporary file left
    calls = []
    original = dataset_module.read_volume_info
    monkeypatch.setattr(
        dataset_module, "read_volume_info", lambda p: calls.append(p.name) or original(p)
    )
    assert len(make_dataset(mixed_root, cache_file)) == 7 and calls == []
    make_fastmri_file("file_b.h5", num_slices=5, width=12, seed=9)  # rewrite: new mtime/size
    make_fastmri_file("file_d.h5", num_slices=1)
    assert len(make_dataset(mixed_root, cache_file)) == 10
    assert sorted(calls) == ["file_b.h5", "file_d.h5"]
    (mixed_root / "file_a.h5").unlink()
    assert len(make_dataset(mixed_root, cache_file)) == 8
    calls.clear()
    assert len(make_dataset(mixed_root, cache_file)) == 8 and calls == []


def test_cache_corrupt_or_disabled(mixed_root, cache_file, monkeypatch):
    import unrolled.data.dataset as dataset_module

    cache_file.parent.mkdir()
    cache_file.write_bytes(b"garbage")
    # record the warning directly: in-process Hydra runs elsewhere may reconfigure logging
    warned = []
    monkeypatch.setattr(dataset_module.log, "warning", lambda msg, *a: warned.append(msg % a))
    assert len(make_dataset(mixed_root, cache_file)) == 7
    assert any("unreadable dataset cache" in w for w in warned)
    assert len(make_dataset(mixed_root, cache_file)) == 7  # rewritten, readable
    other = cache_file.parent / "other.pkl"
    make_dataset(mixed_root, other, use_dataset_cache=False)
    assert not other.exists()


def test_worker_processes(mixed_root, cache_file):
    ds = make_dataset(mixed_root, cache_file, transform=UnrolledTransform(fake_mask_func))
    loader = DataLoader(ds, batch_size=None, num_workers=1)
    fnames = [s.fname for s in loader]
    assert fnames == ["file_a.h5"] * 2 + ["file_b.h5"] * 3 + ["file_c.h5"] * 2


# --- ShapeBucketSampler ---------------------------------------------------------


SHAPES = [(4, 16, 12 + 2 * (i % 3)) for i in range(40)]


def batches(sampler, epoch=0):
    sampler.set_epoch(epoch)
    return list(sampler)


@pytest.mark.parametrize("drop_last", [False, True])
def test_bucket_batches_homogeneous_and_complete(drop_last):
    sampler = ShapeBucketSampler(SHAPES, batch_size=3, shuffle=True, seed=0, drop_last=drop_last)
    out = batches(sampler)
    assert len(out) == len(sampler)
    assert all(len({SHAPES[i] for i in b}) == 1 for b in out)
    flat = sorted(i for b in out for i in b)
    if drop_last:
        assert all(len(b) == 3 for b in out) and len(flat) == 36  # 14, 13, 13 per width
    else:
        assert flat == list(range(40))


def test_bucket_deterministic_per_epoch():
    sampler = ShapeBucketSampler(SHAPES, batch_size=4, seed=7)
    assert batches(sampler, 0) == batches(sampler, 0)
    assert batches(sampler, 0) != batches(sampler, 1)
    assert batches(ShapeBucketSampler(SHAPES, 4, seed=7), 1) == batches(sampler, 1)
    ordered = batches(ShapeBucketSampler(SHAPES, batch_size=4, shuffle=False))
    assert ordered[0] == [0, 3, 6, 9]


def test_bucket_distributed_split():
    parts = [batches(ShapeBucketSampler(SHAPES, 3, seed=1, num_replicas=2, rank=r)) for r in (0, 1)]
    assert len(parts[0]) == len(parts[1]) == ShapeBucketSampler(SHAPES, 3, num_replicas=2).__len__()
    assert {i for p in parts for b in p for i in b} == set(range(40))


def test_bucket_dataloader_mixed_widths(mixed_root, cache_file):
    ds = make_dataset(mixed_root, cache_file, transform=UnrolledTransform(fake_mask_func))
    sampler = ShapeBucketSampler(ds, batch_size=2, shuffle=True, seed=0)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate_samples)
    seen = 0
    for batch in loader:
        b, c, h, w = batch.kspace.shape
        assert batch.mask.shape == (b, 1, h, w) and batch.target.shape == (b, 8, 8)
        assert (c, w) in {(4, 12), (3, 14)} and len(batch.fname) == b
        seen += b
    assert seen == len(ds) and len(loader) == 4  # widths 12: 5 slices -> 3, 14: 2 -> 1


# --- UnrolledTransform ----------------------------------------------------------


def test_transform_sample_fields(make_fastmri_file):
    raw = read_slice(make_fastmri_file(), 1)
    s = UnrolledTransform(fake_mask_func)(raw)
    assert s.kspace.shape == (4, 16, 12) and s.kspace.dtype == torch.complex64
    assert s.mask.shape == (1, 16, 12) and s.mask.dtype == torch.float32
    assert torch.equal(s.mask, s.mask[:, :1].expand(1, 16, 12))  # 1D mask, same in every row
    assert torch.equal(s.kspace, raw.kspace * s.mask)
    assert (s.kspace[:, :, s.mask[0, 0] == 0] == 0).all()
    assert torch.equal(s.target, raw.target) and s.max_value == raw.attrs["max"]
    assert (int(s.num_low_frequencies), int(s.slice_num), s.fname) == (2, 1, "file1000.h5")
    assert s.crop_size.tolist() == [8, 8]


def test_transform_seed_from_fname(make_fastmri_file):
    calls = []

    def recording(shape, offset=None, seed=None):
        calls.append((shape, seed))
        return fake_mask_func(shape, offset, seed)

    raw0, raw2 = (read_slice(make_fastmri_file(), i) for i in (0, 2))
    seeded = UnrolledTransform(recording, use_seed=True)
    assert torch.equal(seeded(raw0).mask, seeded(raw2).mask)
    assert calls[0] == ((4, 16, 12), tuple(map(ord, "file1000.h5")))
    UnrolledTransform(recording, use_seed=False)(raw0)
    assert calls[-1][1] is None


def test_transform_padding_zeroed(make_fastmri_file):
    raw = read_slice(make_fastmri_file(padding=(2, 10)), 0)
    s = UnrolledTransform(lambda shape, offset, seed: (torch.ones(1, shape[-1]), 4))(raw)
    assert s.mask[0, 0].tolist() == [0, 0] + [1] * 8 + [0, 0]
    full = UnrolledTransform()(raw)  # no mask func, no stored mask: fully sampled in padding
    assert torch.equal(full.mask, s.mask) and int(full.num_low_frequencies) == 8


def test_transform_stored_mask(make_fastmri_file):
    raw = read_slice(make_fastmri_file(test_set=True), 0)
    s = UnrolledTransform(fake_mask_func)(raw)  # the stored mask wins over mask_func
    assert torch.equal(s.mask[0, 0], raw.mask) and int(s.num_low_frequencies) == 4
    assert s.target.shape == (0, 0) and not s.has_target and float(s.max_value) == 0.0
    attrs = {k: v for k, v in raw.attrs.items() if k != "num_low_frequency"}
    counted = UnrolledTransform()(replace(raw, attrs=attrs))
    assert int(counted.num_low_frequencies) == center_run_length(raw.mask) == 4


def test_transform_2d_mask_and_singlecoil(make_fastmri_file):
    raw = read_slice(make_fastmri_file(num_coils=None), 0)
    mask2d = (torch.rand(16, 12) < 0.5).float()
    s = UnrolledTransform(lambda shape, offset, seed: (mask2d, 0))(raw)
    assert s.kspace.shape == (1, 16, 12) and torch.equal(s.mask[0], mask2d)
    with pytest.raises(ValueError, match="mask_func returned shape"):
        UnrolledTransform(lambda shape, offset, seed: (torch.ones(5), 0))(raw)


def test_center_run_length():
    assert center_run_length(torch.tensor([1.0, 0, 1, 1, 1, 0, 1])) == 3
    assert center_run_length(torch.tensor([1.0, 1, 0, 1])) == 0
    assert center_run_length(torch.ones(6)) == 6


@pytest.mark.parametrize("kind", ["train", "test"])
def test_transform_matches_fastmri(make_fastmri_file, kind):
    fm = pytest.importorskip("fastmri.data.transforms")
    path = make_fastmri_file(padding=(1, 11), test_set=kind == "test")
    raw = read_slice(path, 1)

    def fastmri_mask_func(shape, offset=None, seed=None):  # fastMRI shape (..., H, W, 2)
        mask, num_low = fake_mask_func(tuple(shape[:-1]), offset, seed)
        return mask.reshape(*[1] * (len(shape) - 2), shape[-2], 1), num_low

    theirs = fm.VarNetDataTransform(fastmri_mask_func if kind == "train" else None)(
        raw.kspace.numpy(),
        None if raw.mask is None else raw.mask.numpy(),
        None if raw.target is None else raw.target.numpy(),
        raw.attrs,
        raw.fname,
        raw.slice_num,
    )
    ours = UnrolledTransform(fake_mask_func if kind == "train" else None)(raw)
    assert torch.equal(torch.view_as_real(ours.kspace), theirs.masked_kspace)
    assert torch.equal(ours.mask[0, 0].bool(), theirs.mask.reshape(-1))
    assert ours.crop_size.tolist() == list(theirs.crop_size)
    assert float(ours.max_value) == pytest.approx(float(theirs.max_value))
    if kind == "train":
        assert int(ours.num_low_frequencies) == theirs.num_low_frequencies
        assert torch.equal(ours.target, theirs.target)
        mask, _ = fastmri_mask_func((4, 16, 12, 2), None, tuple(map(ord, raw.fname)))
        masked, _, _ = fm.apply_mask(
            torch.view_as_real(raw.kspace), lambda *a: (mask.clone(), 2), padding=(1, 11)
        )
        assert torch.equal(torch.view_as_real(ours.kspace), masked)
