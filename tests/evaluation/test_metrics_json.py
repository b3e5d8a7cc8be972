"""metrics.json is strict JSON even for non-finite metrics (issue 10, section 8).

A perfect reconstruction has PSNR +inf; an all-zero reference gives NMSE NaN (0/0) or
+inf. Before, ``metrics.json`` held ``Infinity`` / ``NaN``, which strict parsers reject.
Now such a value is ``null`` with a ``<key>_nonfinite`` flag.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers.common import run_cli

from unrolled.evaluation.compare import write_metrics_json
from unrolled.evaluation.metrics_json import from_strict, read_metrics_json, to_strict


def strict_loads(text: str):
    """``json.loads`` that rejects ``Infinity``, ``-Infinity`` and ``NaN`` like RFC 8259."""

    def reject(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=reject)


def test_strict_parser_rejects_what_json_dumps_writes():
    with pytest.raises(ValueError, match="Infinity"):
        strict_loads(json.dumps({"psnr": math.inf}))


def test_convention_and_round_trip():
    results = {
        "unrolled": {"psnr": math.inf, "ssim": 1.0, "nmse": 0.0},
        "zero_filled": {"psnr": -math.inf, "ssim": math.nan, "nmse": 0.5},
        "list": [1.0, math.nan],
    }
    strict = to_strict(results)
    assert strict["unrolled"] == {"psnr": None, "psnr_nonfinite": "inf", "ssim": 1.0, "nmse": 0.0}
    assert strict["zero_filled"]["psnr"] is None
    assert strict["zero_filled"]["psnr_nonfinite"] == "-inf"
    assert strict["zero_filled"]["ssim_nonfinite"] == "nan"
    assert strict["list"] == [1.0, None]
    back = from_strict(strict)
    assert back["unrolled"] == {"psnr": math.inf, "ssim": 1.0, "nmse": 0.0}
    assert back["zero_filled"]["psnr"] == -math.inf and math.isnan(back["zero_filled"]["ssim"])


def test_train_metrics_json_is_strict(tmp_path):
    """The writer of ``unrolled-train``'s metrics.json (compare_with_baselines)."""
    path = write_metrics_json(
        {"unrolled": {"psnr": math.inf, "ssim": 1.0, "nmse": 0.0}}, tmp_path / "metrics.json"
    )
    data = strict_loads(path.read_text())
    assert data["unrolled"]["psnr"] is None and data["unrolled"]["psnr_nonfinite"] == "inf"
    assert data["unrolled"]["ssim"] == 1.0
    assert read_metrics_json(path)["unrolled"]["psnr"] == math.inf  # sweep reports read it
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary left


def _evaluate(tmp_path: Path, target_dir: Path, predictions_dir: Path) -> tuple[int, str]:
    """``unrolled-evaluate`` in this process: ``(exit status, stderr)``."""
    code, _, err = run_cli(
        "evaluate",
        tmp_path / "hydra",
        f"target_dir={target_dir}",
        f"predictions_dir={predictions_dir}",
    )
    return code, err


def _write(folder: Path, name: str, key: str, data: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(folder / name, "w") as f:
        f.create_dataset(key, data=data.astype(np.float32))


def test_evaluate_perfect_and_all_zero_reference(tmp_path):
    rng = np.random.default_rng(0)
    gt = np.abs(rng.normal(size=(2, 24, 20))).astype(np.float32)
    _write(tmp_path / "t", "perfect.h5", "reconstruction_rss", gt)
    _write(tmp_path / "p", "perfect.h5", "reconstruction", gt)  # PSNR +inf, NMSE 0
    _write(tmp_path / "t2", "zero.h5", "reconstruction_rss", np.zeros((2, 24, 20)))
    _write(tmp_path / "p2", "zero.h5", "reconstruction", np.ones((2, 24, 20)))  # NMSE 1/0

    code, err = _evaluate(tmp_path, tmp_path / "t", tmp_path / "p")
    assert code == 0, err
    data = strict_loads((tmp_path / "p" / "metrics.json").read_text())
    psnr = data["metrics"]["psnr"]
    assert psnr["mean"] is None and psnr["mean_nonfinite"] == "inf"
    assert psnr["std"] is None and "std_nonfinite" not in psnr  # one volume: no std at all
    assert data["metrics"]["nmse"]["mean"] == 0.0
    assert data["metrics"]["ssim"]["mean"] == pytest.approx(1.0)

    code, err = _evaluate(tmp_path, tmp_path / "t2", tmp_path / "p2")
    assert code == 0, err
    data = strict_loads((tmp_path / "p2" / "metrics.json").read_text())
    nmse = data["metrics"]["nmse"]
    assert nmse["mean"] is None and nmse["mean_nonfinite"] in ("inf", "nan")
