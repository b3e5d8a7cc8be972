"""unrolled-evaluate's logic: fastMRI's evaluate.py numbers, pairing problems, outputs."""

import argparse
import csv
import json

import h5py
import numpy as np
import pytest
import torch

from unrolled.data.errors import DataError
from unrolled.evaluation.scoring import (
    METRICS_CSV,
    METRICS_JSON,
    evaluate_folder,
    score_volume,
    write_results,
)

# (target shape, prediction shape, acquisition): tall targets, a prediction larger than its
# target (fastMRI centre-crops both to (w_t, w_t)), odd size differences.
VOLUMES = {
    "a.h5": ((3, 40, 32), (3, 40, 32), "AXT1"),
    "b.h5": ((2, 37, 30), (2, 45, 39), "AXT2"),
    "c.h5": ((4, 32, 32), (4, 32, 32), "AXT2"),
}


def _write(path, key, array, **attrs):
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as hf:
        hf.create_dataset(key, data=array)
        for k, v in attrs.items():
            hf.attrs[k] = v


def _make(tmp_path, volumes=VOLUMES, seed=0, target_attrs=None, pred_attrs=None):
    """Targets under tmp_path/t (reconstruction_rss), noisy predictions under tmp_path/p."""
    rng = np.random.default_rng(seed)
    for name, (t_shape, p_shape, acq) in volumes.items():
        pred = np.abs(rng.normal(size=p_shape)).cumsum(-1).astype(np.float32)
        s, h, w = t_shape
        top, left = (p_shape[1] - h) // 2, (p_shape[2] - w) // 2
        target = pred[:, top : top + h, left : left + w] * rng.uniform(0.8, 1.2, size=t_shape)
        attrs = {"acquisition": acq, "max": float(target.max()), **(target_attrs or {})}
        _write(tmp_path / "t" / name, "reconstruction_rss", target.astype(np.float32), **attrs)
        _write(tmp_path / "p" / name, "reconstruction", pred, **(pred_attrs or {}))
    return tmp_path / "t", tmp_path / "p"


@pytest.mark.parametrize("acquisition", [None, "AXT2"])
def test_equals_fastmri_evaluate(tmp_path, acquisition):
    evaluate = pytest.importorskip("fastmri.evaluate")
    transforms = pytest.importorskip("fastmri.data.transforms")
    targets, preds = _make(tmp_path)
    ours = evaluate_folder(targets, preds, acquisition=acquisition)

    # per volume: fastMRI's own functions on its own crop of the same arrays
    for v in ours.volumes:
        with h5py.File(targets / v.fname) as t, h5py.File(preds / v.fname) as p:
            gt, pred = t["reconstruction_rss"][()], p["reconstruction"][()]
        size = (gt.shape[-1], gt.shape[-1])
        gt, pred = transforms.center_crop(gt, size), transforms.center_crop(pred, size)
        assert v.nmse == pytest.approx(float(evaluate.nmse(gt, pred)), abs=1e-6)
        assert v.psnr == pytest.approx(float(evaluate.psnr(gt, pred)), abs=1e-6)
        assert v.ssim == pytest.approx(np.asarray(evaluate.ssim(gt, pred)).item(), abs=1e-6)
        assert (v.height, v.width) == size

    # aggregate: fastMRI's evaluate() end to end (mean, runstats' ddof=1 stddev)
    args = argparse.Namespace(
        target_path=targets, predictions_path=preds, acquisition=acquisition, acceleration=None
    )
    theirs = evaluate.evaluate(args, "reconstruction_rss")
    means, stds = theirs.means(), theirs.stddevs()
    agg = ours.aggregate()
    assert len(ours.volumes) == (3 if acquisition is None else 2)
    assert ours.filtered_out == (0 if acquisition is None else 1)
    for ours_key, their_key in (("nmse", "NMSE"), ("psnr", "PSNR"), ("ssim", "SSIM")):
        assert agg[ours_key]["mean"] == pytest.approx(
            float(np.asarray(means[their_key]).item()), abs=1e-6
        )
        assert agg[ours_key]["std"] == pytest.approx(
            float(np.asarray(stds[their_key]).item()), abs=1e-6
        )


def test_score_volume_crops_like_fastmri_and_uses_the_cropped_maximum():
    gt = torch.rand(2, 12, 8)
    gt[:, 0, 0] = 100.0  # outside the 8 x 8 crop: must not set the data range
    pred = torch.zeros(2, 14, 10)
    pred[:, 3:11, 1:9] = gt[:, 2:10, :]  # the crop of pred equals the crop of gt
    scores = score_volume(gt, pred)
    assert scores["nmse"] == 0.0 and scores["ssim"] == pytest.approx(1.0)
    pred[:, 3:11, 1:9] += 0.01
    assert score_volume(gt, pred)["psnr"] == pytest.approx(
        10 * np.log10(float(gt[:, 2:10].max()) ** 2 / 1e-4), rel=1e-5
    )


def test_writes_json_and_csv(tmp_path):
    targets, preds = _make(tmp_path)
    evaluation = evaluate_folder(targets, preds)
    json_path, csv_path = write_results(evaluation, preds)
    assert (json_path, csv_path) == (preds / METRICS_JSON, preds / METRICS_CSV)
    summary = json.loads(json_path.read_text())
    assert summary["count"] == 3
    assert summary["filters"] == {"acquisition": None, "acceleration": None}
    assert summary["skipped"] == {"missing_predictions": [], "extra": []}
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["fname"] for r in rows] == sorted(VOLUMES)
    assert [r["acquisition"] for r in rows] == ["AXT1", "AXT2", "AXT2"]
    for metric in ("nmse", "psnr", "ssim"):
        values = [float(r[metric]) for r in rows]
        assert summary["metrics"][metric]["mean"] == pytest.approx(np.mean(values), rel=1e-12)
        assert summary["metrics"][metric]["std"] == pytest.approx(np.std(values, ddof=1), rel=1e-12)
    assert not list(preds.glob(".*.tmp"))


def test_every_problem_is_named_in_one_error(tmp_path):
    targets, preds = _make(tmp_path)
    _write(targets / "d.h5", "reconstruction_rss", np.ones((2, 8, 8), np.float32))
    _write(targets / "e.h5", "reconstruction_rss", np.ones((2, 8, 8), np.float32))
    (preds / "a.h5").unlink()  # missing
    _write(preds / "z.h5", "reconstruction", np.ones((2, 8, 8), np.float32))  # extra
    _write(preds / "d.h5", "reconstruction", np.ones((3, 8, 8), np.float32))  # slices
    (preds / "e.h5").write_bytes(b"not hdf5")  # corrupt
    _write(preds / "c.h5", "reconstruction", np.ones((4, 16, 31), np.float32))  # too narrow
    with pytest.raises(DataError) as info:
        evaluate_folder(targets, preds)
    msg = str(info.value)
    assert "\n" not in msg
    assert "1 volume missing from predictions: a.h5" in msg
    assert "1 prediction without a target" in msg and "z.h5" in msg
    assert "e.h5 (cannot open as HDF5" in msg
    assert "2 shape mismatches: c.h5 (" in msg and "d.h5 (prediction has 3 slices" in msg
    assert not (preds / METRICS_JSON).exists()


def test_allow_missing_scores_the_intersection(tmp_path):
    targets, preds = _make(tmp_path)
    (preds / "b.h5").unlink()
    _write(preds / "z.h5", "reconstruction", np.ones((2, 8, 8), np.float32))
    with pytest.raises(DataError, match=r"missing from predictions: b\.h5.*allow_missing"):
        evaluate_folder(targets, preds)
    evaluation = evaluate_folder(targets, preds, allow_missing=True)
    assert [v.fname for v in evaluation.volumes] == ["a.h5", "c.h5"]
    assert evaluation.missing == ("b.h5",) and evaluation.extra == ("z.h5",)
    assert evaluation.summary()["skipped"] == {"missing_predictions": ["b.h5"], "extra": ["z.h5"]}


def test_acceleration_from_target_else_prediction(tmp_path):
    targets, preds = _make(tmp_path, pred_attrs={"acceleration": 4})
    with h5py.File(targets / "a.h5", "a") as hf:
        hf.attrs["acceleration"] = 8  # the target's attribute wins, as in fastMRI
    assert [v.fname for v in evaluate_folder(targets, preds, acceleration=4).volumes] == [
        "b.h5",
        "c.h5",
    ]
    only = evaluate_folder(targets, preds, acceleration=8)
    assert [(v.fname, v.acceleration) for v in only.volumes] == [("a.h5", 8)]
    assert only.filtered_out == 2
    with pytest.raises(DataError, match="no volumes to score"):
        evaluate_folder(targets, preds, acceleration=12)


def test_filter_attribute_absent_is_an_error(tmp_path):
    targets, preds = _make(tmp_path)
    with pytest.raises(
        DataError, match=r"without an 'acceleration' attribute.*a\.h5, b\.h5, c\.h5"
    ):
        evaluate_folder(targets, preds, acceleration=4)


def test_singlecoil_and_missing_reference(tmp_path):
    targets, preds = _make(tmp_path)
    with pytest.raises(DataError, match="dataset 'reconstruction_esc' is missing"):
        evaluate_folder(targets, preds, challenge="singlecoil")
    with pytest.raises(DataError, match="target directory does not exist"):
        evaluate_folder(tmp_path / "nowhere", preds)
