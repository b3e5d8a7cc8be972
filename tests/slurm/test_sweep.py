"""A Hydra sweep submitted by the SLURM launcher (submitit) to the local cluster."""

import pytest
import yaml

from .jobs import BIN, CPU_JOB, run, sweep_helpers


@pytest.mark.slow
def test_multirun_with_the_slurm_launcher_runs_a_job_array(slurm_cluster, tiny_root, tmp_path):
    sweeps = sweep_helpers()
    sweep = tmp_path / "sweep"
    proc = run(
        [
            BIN / "unrolled-train",
            "-m",
            *sweeps.TINY,
            f"data.root={tiny_root}",
            f"hydra.sweep.dir={sweep}",
            "logger=wandb",
            "model.num_cascades=1,2",
            "hydra/launcher=slurm",
            *CPU_JOB,
        ],
        timeout=900,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    # one job array of two tasks, both completed
    folders = sorted(p.name for p in (sweep / ".submitit").glob("*_*") if p.is_dir())
    array = {f.split("_")[0] for f in folders}
    assert len(folders) == 2 and len(array) == 1, folders
    # submitit returns on the jobs' result files; the jobs end moments later
    tasks = slurm_cluster.wait(array.pop(), timeout=120)
    assert sorted(t["ArrayTaskId"] for t in tasks) == ["0", "1"]
    assert {t["JobState"] for t in tasks} == {"COMPLETED"}
    assert {t["JobName"] for t in tasks} == {"embedded"}
    for i in range(2):
        overrides = yaml.safe_load((sweep / str(i) / ".hydra" / "overrides.yaml").read_text())
        assert f"model.num_cascades={i + 1}" in overrides
    # both trained and tested, W&B groups them, unrolled-sweep-report ranks them
    sweeps._check_sweep(sweep, ["model.num_cascades=1", "model.num_cascades=2"], wandb=True)
    print(slurm_cluster.table())
