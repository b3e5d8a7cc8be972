"""The private cluster itself: a job array runs, as root, on this cluster's configuration."""

from pathlib import Path


def test_a_job_array_runs_on_the_local_cluster(slurm_cluster, tmp_path):
    out = tmp_path / "task-%a.out"
    job = slurm_cluster.sbatch(
        "--array=0-2",
        f"--output={out}",
        "--time=2",
        "--wrap",
        'echo "$SLURM_ARRAY_TASK_ID $(id -un) $SLURM_CONF"; srun hostname',
        cwd=tmp_path,
    )
    tasks = slurm_cluster.wait(job, timeout=120)
    assert sorted(t["ArrayTaskId"] for t in tasks) == ["0", "1", "2"]
    assert {t["JobState"] for t in tasks} == {"COMPLETED"}
    for k in range(3):
        first, second = Path(str(out).replace("%a", str(k))).read_text().splitlines()[:2]
        assert first == f"{k} root {slurm_cluster.conf}"
        assert second  # a job step (srun) ran on the node
