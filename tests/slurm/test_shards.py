"""A large folder reconstructed by a job array: 3 tasks, each its share, then one score."""

import json
import re
import shutil

import h5py
import numpy as np

from .jobs import BIN, run


def test_a_three_task_array_reconstructs_a_folder_exactly_once(slurm_cluster, tiny_root, tmp_path):
    inputs = tmp_path / "inputs"  # the 4 volumes of the tiny set in one folder
    inputs.mkdir()
    for path in sorted(tiny_root.glob("*/*.h5")):
        shutil.copy(path, inputs / path.name)
    names = sorted(p.name for p in inputs.glob("*.h5"))
    out = tmp_path / "recon"
    common = [
        "method=zero_filled",
        f"input_dir={inputs}",
        "mask.center_fractions=[0.16]",
        "progress=false",
    ]
    reconstruct = " ".join(
        [
            str(BIN / "unrolled-reconstruct"),
            *common,
            f"output_dir={out}",
            "shard=$SLURM_ARRAY_TASK_ID",
            "num_shards=$SLURM_ARRAY_TASK_COUNT",
            f"hydra.run.dir={tmp_path}/logs/$SLURM_ARRAY_JOB_ID/$SLURM_ARRAY_TASK_ID",
        ]
    )
    array = slurm_cluster.sbatch(
        "--array=0-2",
        "--cpus-per-task=1",
        "--time=10",
        f"--output={tmp_path}/shard-%a.out",
        "--wrap",
        reconstruct,
        cwd=tmp_path,
    )
    score = slurm_cluster.sbatch(  # once every share is in place
        f"--dependency=afterok:{array}",
        "--cpus-per-task=1",
        "--time=10",
        f"--output={tmp_path}/score.out",
        "--wrap",
        f"{BIN / 'unrolled-evaluate'} target_dir={inputs} predictions_dir={out} "
        f"hydra.run.dir={tmp_path}/logs/evaluate",
        cwd=tmp_path,
    )
    tasks = slurm_cluster.wait(array, timeout=600)
    logs = [(tmp_path / f"shard-{k}.out").read_text() for k in range(3)]
    assert {t["JobState"] for t in tasks} == {"COMPLETED"}, logs
    for k, log in enumerate(logs):  # file i went to task i % 3: 2, 1 and 1 volumes
        share = len(names[k::3])
        assert re.search(rf"reconstructed {share} volumes", log), log
    assert sorted(p.name for p in out.glob("*.h5")) == names  # each once: no overwrite allowed
    (info,) = slurm_cluster.wait(score, timeout=600)
    assert info["JobState"] == "COMPLETED", (tmp_path / "score.out").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["count"] == len(names)

    # the shares are exactly what one unsharded run writes
    whole = tmp_path / "whole"
    proc = run(
        [
            BIN / "unrolled-reconstruct",
            *common,
            f"output_dir={whole}",
            f"hydra.run.dir={tmp_path}/logs/whole",
        ],
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in names:
        with h5py.File(out / name) as a, h5py.File(whole / name) as b:
            np.testing.assert_array_equal(a["reconstruction"][()], b["reconstruction"][()])
    print(slurm_cluster.table())
