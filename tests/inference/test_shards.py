"""A folder split into the shares of a job array: disjoint, covering it once, by sorted name."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from unrolled.inference.folder import list_volumes


@pytest.fixture(scope="module")
def folder(tiny_root, tmp_path_factory) -> Path:
    """The 4 volumes of the tiny set in one folder."""
    out = tmp_path_factory.mktemp("all")
    for path in sorted(tiny_root.glob("*/*.h5")):
        shutil.copy(path, out / path.name)
    return out


@pytest.mark.parametrize("num_shards", [1, 2, 3, 4, 6])
def test_shards_are_disjoint_and_cover_the_folder_once(folder, num_shards):
    names = sorted(p.name for p in folder.glob("*.h5"))
    shares = [
        [v.fname for v in list_volumes(folder, shard=k, num_shards=num_shards)]
        for k in range(num_shards)
    ]
    for k, share in enumerate(shares):  # file i goes to shard i % N
        assert share == [n for i, n in enumerate(names) if i % num_shards == k]
    assert sorted(n for share in shares for n in share) == names


@pytest.mark.parametrize("shard, num_shards", [(3, 3), (-1, 2), (0, 0)])
def test_a_bad_shard_is_refused(folder, shard, num_shards):
    with pytest.raises(ValueError, match="shard must be in"):
        list_volumes(folder, shard=shard, num_shards=num_shards)


def test_a_bad_shard_is_a_one_line_error_before_any_work(folder, tmp_path):
    shard, num_shards = 3, 3
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "unrolled-reconstruct"),
            "method=zero_filled",
            f"input_dir={folder}",
            f"output_dir={tmp_path / 'out'}",
            f"shard={shard}",
            f"num_shards={num_shards}",
            f"hydra.run.dir={tmp_path / 'log'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"error: shard must be in [0, num_shards), got shard={shard} num_shards={num_shards}"
    )
    assert not (tmp_path / "out").exists()
