"""The sbatch templates on the local cluster: 2-task DDP training on CPU, reconstruct + score."""

import json
import re

import h5py
import lightning as L
import pytest

from unrolled.cli.compose import compose_config
from unrolled.cli.train import build
from unrolled.inference.runner import summarise

from .jobs import sweep_helpers

# one CPU node: no GPU, one CPU per task
CPU = ["--nodes=1", "--gpus-per-node=0", "--cpus-per-task=1", "--mem=4G", "--time=30"]


@pytest.mark.slow
def test_train_ddp_sbatch_on_two_cpu_tasks_then_reconstruct_evaluate_sbatch(
    slurm_cluster, tiny_root, tmp_path
):
    small = [o for o in sweep_helpers().TINY if o != "experiment=embedded"]
    small = ["experiment=embedded", *small, f"data.root={tiny_root}", "logger=csv"]
    small += ["data.test_split=train"]  # 2 test volumes: one whole volume per rank
    run_dir = tmp_path / "ddp"
    job = slurm_cluster.sbatch(
        *CPU,
        "--ntasks-per-node=2",
        f"--output={tmp_path}/train-%j.out",
        "slurm/train_ddp.sbatch",
        *small,
        env={"RUN_DIR": str(run_dir)},
    )
    (info,) = slurm_cluster.wait(job, timeout=900)
    log = (tmp_path / f"train-{job}.out").read_text()
    assert info["JobState"] == "COMPLETED", log[-3000:]
    assert "1 nodes x 2 CPU processes" in log
    # Lightning took its two ranks from SLURM (SLURMEnvironment) and ran DDP over gloo
    assert re.search(r"GLOBAL_RANK: 0, MEMBER: 1/2", log) and "GLOBAL_RANK: 1, MEMBER: 2/2" in log
    ddp = json.loads((run_dir / "metrics.json").read_text())["unrolled"]

    # the same checkpoint tested in one process gives the same test metrics
    (best,) = (run_dir / "checkpoints").glob("best-*.ckpt")
    cfg = compose_config("train", small, tmp_path / "single")
    L.seed_everything(0)
    dm, module, trainer = build(cfg)
    trainer.test(module, datamodule=dm, ckpt_path=str(best), verbose=False)
    single = summarise(module.volume_metrics["test"])
    assert len(module.volume_metrics["test"]) == 2
    print(f"DDP (2 SLURM tasks) {ddp}\nsingle process     {single}")
    for key in ("psnr", "ssim", "nmse"):
        assert ddp[key] == pytest.approx(single[key], rel=1e-6, abs=1e-9), key

    # reconstruct the test folder with that checkpoint and score it
    out = tmp_path / "recon"
    job = slurm_cluster.sbatch(
        *CPU,
        "--ntasks=1",
        f"--output={tmp_path}/recon-%j.out",
        "slurm/reconstruct_evaluate.sbatch",
        str(best),
        str(tiny_root / "test"),
        str(out),
        "mask.center_fractions=[0.16]",
        env={"LOG_DIR": str(tmp_path / "logs")},
    )
    (info,) = slurm_cluster.wait(job, timeout=600)
    log = (tmp_path / f"recon-{job}.out").read_text()
    assert info["JobState"] == "COMPLETED", log[-3000:]
    inputs = sorted(p.name for p in (tiny_root / "test").glob("*.h5"))
    assert sorted(p.name for p in out.glob("*.h5")) == inputs
    for name in inputs:
        with h5py.File(out / name) as f, h5py.File(tiny_root / "test" / name) as g:
            assert f["reconstruction"].shape == g["reconstruction_rss"].shape
    metrics = json.loads((out / "metrics.json").read_text())
    print(f"reconstruct_evaluate.sbatch: {metrics}")
    assert (tmp_path / "logs" / "reconstruct" / job).is_dir()
