"""bench/gpu_check.sh --dry-run: the GPU check's whole code path on the CPU, one JSON out.

Nobody runs the GPU check until a GPU is at hand; this test keeps it from rotting: every
field a reader of its JSON relies on is there, with a number or a reported error.
"""

import json
import os
from pathlib import Path

import pytest
from helpers.process_group import run_group

REPO = Path(__file__).resolve().parents[2]
MEASURES = [
    "infer_fp32",
    "infer_bf16",
    "infer_compiled",
    "train_fp32_nockpt",
    "train_fp32_ckpt",
    "train_bf16_nockpt",
    "train_bf16_ckpt",
]


@pytest.mark.slow
def test_dry_run_prints_one_json_with_every_field(tmp_path):
    env = {**os.environ, "GPU_CHECK_TIMEOUT": "1500", "OMP_NUM_THREADS": "1"}
    out = tmp_path / "gpu_check.json"
    # a short compile limit: the dry run checks that a compile failure or timeout is reported
    proc = run_group(
        ["bash", str(REPO / "bench" / "gpu_check.sh"), "--dry-run", "--out", str(out),
         "--compile-timeout", "240"],
        timeout=1500,
        env=env,
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)  # the whole of stdout is one JSON document
    assert result == json.loads(out.read_text())
    assert result["dry_run"] is True and result["device"] == "cpu"
    for key in ("card", "torch", "cuda", "cudnn", "date", "total_s", "params_ours"):
        assert key in result
    assert set(result["results"]) == {"knee", "brain"}
    for size in ("knee", "brain"):
        for net in ("ours", "varnet"):
            r = result["results"][size][net]
            assert set(MEASURES) <= set(r), (size, net, sorted(r))
            for key in MEASURES:
                entry = r[key]
                if key == "infer_compiled":  # compiled, or its failure reported
                    assert entry.get("ms", 0) > 0 or entry.get("error") or entry.get("skipped")
                    continue
                assert entry["ms"] > 0, (size, net, key, entry)  # fp32 and bf16 must run
                if key.startswith("train"):
                    assert "peak_mib" in entry
    zs = result["zeroshot"]
    assert zs["extrapolated"] is True and zs["steps_timed"] >= 2
    assert zs["seconds_per_step"] > 0 and zs["seconds_per_slice"] >= zs["seconds_timed"]
