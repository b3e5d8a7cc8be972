"""unrolled-train as a user runs it: bad input gives one line and a non-zero exit."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "unrolled-train"


def _run(tmp_path, *overrides):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run(
        [str(BIN), f"hydra.run.dir={tmp_path / 'run'}", "synth=null", "logger=csv", *overrides],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )


@pytest.mark.parametrize(
    "content,problem",
    [(b"", "HDF5"), (b"\x89HDF\r\n\x1a\n" + b"\0" * 40, "HDF5"), (b"not an hdf5 file", "HDF5")],
    ids=["empty", "truncated", "garbage"],
)
def test_corrupt_file_gives_one_line_error(tmp_path, content, problem):
    for split in ("train", "val", "test"):
        (tmp_path / "data" / split).mkdir(parents=True)
    bad = tmp_path / "data" / "train" / "broken.h5"
    bad.write_bytes(content)
    proc = _run(tmp_path, f"data.root={tmp_path / 'data'}")
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {bad}: ") and problem in lines[0]
    assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "run").rglob("*.ckpt")) and not (tmp_path / "run" / "csv").exists()


def test_missing_data_root_gives_one_line_error(tmp_path):
    proc = _run(tmp_path, f"data.root={tmp_path / 'nowhere'}")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "does not exist" in proc.stderr and "nowhere" in proc.stderr
