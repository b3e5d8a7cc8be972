"""Sweeps: launcher and search configs, real multiruns, W&B grouping, unrolled-sweep-report."""

from __future__ import annotations

import csv
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import OmegaConf

from unrolled.cli.common import CONFIG_DIR

BIN = Path(sys.executable).parent
REPO = Path(CONFIG_DIR).parent
TINY = [
    "experiment=embedded",
    "synth=null",
    "model.num_cascades=1",
    "model.denoiser.cnn.channels=4",
    "model.denoiser.cnn.num_blocks=1",
    "mask.center_fractions=[0.16]",
    "data.batch_size=1",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "~callbacks.progress_bar",
    "~callbacks.image_logger",
    "~baselines.cg_sense",
    "cg_sense_lambda_grid=null",
]


@pytest.fixture
def conf_dir(tmp_path) -> Path:
    """A copy of conf/ without the machine's conf/local/ (site settings)."""
    conf = tmp_path / "conf"
    shutil.copytree(CONFIG_DIR, conf, ignore=shutil.ignore_patterns("local"))
    return conf


def _compose(conf_dir, overrides):
    """The full config (hydra node included, its interpolations resolvable)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(conf_dir)):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    GlobalHydra.instance().clear()
    return cfg


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


# ---------------------------------------------------------------- configs


@pytest.mark.parametrize("launcher", _options("hydra/launcher"))
def test_launcher_configs_compose(conf_dir, launcher):
    cfg = _compose(conf_dir, [f"hydra/launcher={launcher}", "trainer=ddp"])
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert params["_target_"].endswith("SlurmLauncher" if launcher == "slurm" else "LocalLauncher")
    assert params["submitit_folder"] == f"{cfg.hydra.sweep.dir}/.submitit/%j"
    assert params["tasks_per_node"] == (params["gpus_per_node"] or 1)


@pytest.mark.parametrize("search", _options("hparams_search"))
def test_hparams_search_configs_compose(conf_dir, search):
    cfg = _compose(conf_dir, [f"+hparams_search={search}"])
    sweeper = OmegaConf.to_container(cfg.hydra.sweeper, resolve=True)
    assert cfg.hydra.runtime.choices["hydra/sweeper"] == search
    assert str(sweeper["direction"]).endswith("maximize")  # unrolled-train returns val SSIM
    assert sweeper["storage"] == f"sqlite:///{cfg.hydra.sweep.dir}/optuna.db"  # resumable
    assert 1 <= sweeper["n_trials"] <= 50
    assert {"optimizer.lr", "model.num_cascades", "model/dc"} <= set(sweeper["params"])
    # every value of the search space composes
    for dc in ("hard", "cg", "gradient"):
        _compose(conf_dir, [f"+hparams_search={search}", f"model/dc={dc}"])


def test_slurm_launcher_follows_the_trainer_layout(conf_dir):
    cfg = _compose(
        conf_dir,
        ["hydra/launcher=slurm", "trainer=ddp", "trainer.num_nodes=4", "trainer.devices=8"],
    )
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert (launcher["nodes"], launcher["gpus_per_node"], launcher["tasks_per_node"]) == (4, 8, 8)
    assert (cfg.trainer.num_nodes, cfg.trainer.devices, cfg.trainer.strategy) == (4, 8, "ddp")
    assert launcher["signal_delay_s"] >= 60 and launcher["max_num_timeout"] >= 1
    assert cfg.resume == "auto"  # a requeued job resumes from its run directory


def test_site_settings_fill_the_slurm_launcher_under_the_command_line(conf_dir):
    (conf_dir / "local").mkdir()
    shutil.copy(conf_dir / "site.example.yaml", conf_dir / "local" / "site.yaml")
    site = yaml.safe_load((conf_dir / "site.example.yaml").read_text())
    cfg = _compose(conf_dir, ["hydra/launcher=slurm", "trainer=ddp", "hydra.launcher.qos=debug"])
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    for key in ("partition", "account", "timeout_min", "cpus_per_task", "constraint", "setup"):
        assert launcher[key] == site[key], key
    assert launcher["qos"] == "debug"  # the command line wins over the site file
    assert launcher["tasks_per_node"] == launcher["gpus_per_node"] == 4
    # the site file is for the SLURM launcher only
    assert _compose(conf_dir, ["hydra/launcher=local"]).hydra.launcher.timeout_min == 60


def test_slurm_launcher_writes_the_expected_sbatch_script(conf_dir, tmp_path, monkeypatch):
    """The real plugin builds the sbatch script (fake srun, nothing submitted)."""
    import submitit

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 1\n")
    (fake / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    sweep = tmp_path / "sweep"
    cfg = _compose(
        conf_dir,
        [
            "hydra/launcher=slurm",
            "trainer=ddp",
            "trainer.num_nodes=2",
            "trainer.devices=4",
            "hydra.launcher.partition=gpu",
            "hydra.launcher.account=proj",
            "hydra.launcher.qos=high",
            "hydra.launcher.timeout_min=90",
            f"hydra.sweep.dir={sweep}",
        ],
    )
    captured = {}

    def fake_map_array(self, fn, *args):
        captured["executor"] = self
        return []

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", fake_map_array)
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    launcher.launch([["model.num_cascades=4"]], initial_job_idx=0)
    script = captured["executor"]._executor._make_submission_file_text("python -u job", "0")
    for flag in (
        "--nodes=2",
        "--gpus-per-node=4",
        "--ntasks-per-node=4",
        "--cpus-per-task=8",
        "--partition=gpu",
        "--account=proj",
        "--qos=high",
        "--time=90",
        "--signal=USR2@120",
        "--job-name=embedded",
        f"--output={sweep}/.submitit/%j/%j_0_log.out",
    ):
        assert f"#SBATCH {flag}\n" in script, (flag, script)
    assert captured["executor"]._executor.max_num_timeout == 3


def test_sbatch_templates_are_valid_bash_and_request_one_task_per_gpu():
    for name in ("train_ddp.sbatch", "reconstruct_evaluate.sbatch"):
        path = REPO / "slurm" / name
        subprocess.run(["bash", "-n", str(path)], check=True)
        text = path.read_text()
        assert text.startswith("#!/bin/bash\n# ")  # documented at its top
    train = (REPO / "slurm" / "train_ddp.sbatch").read_text()
    directives = dict(
        line[len("#SBATCH --") :].split("=", 1)
        for line in train.splitlines()
        if line.startswith("#SBATCH --") and "=" in line
    )
    assert directives["ntasks-per-node"] == directives["gpus-per-node"]
    assert directives["signal"] == "SIGUSR1@90" and "#SBATCH --requeue\n" in train
    assert 'trainer.num_nodes="$nodes"' in train and 'trainer.devices="$tasks"' in train
    # run on the local cluster: tests/slurm/test_sbatch.py


# ---------------------------------------------------------------- unrolled-sweep-report


def _fake_job(sweep: Path, num: int, overrides, val_ssim=(), test=None, resumed_at=None):
    """A job directory as unrolled-train leaves it; ``resumed_at``: epoch of a restart."""
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    epochs = list(enumerate(val_ssim))
    parts = [epochs] if resumed_at is None else [epochs[:resumed_at], epochs[resumed_at:]]
    for version, part in enumerate(parts):  # a resumed run logs into version_1
        path = job / "csv" / f"version_{version}" / "metrics.csv"
        path.parent.mkdir(parents=True)
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["epoch", "step", "train/loss", "val/ssim", "val/psnr"])
            for epoch, value in part:
                w.writerow([epoch, 10 * epoch + 9, 0.5, "", ""])
                w.writerow([epoch, 10 * epoch + 9, "", value, 20 + value])
    if test is not None:
        (job / "metrics.json").write_text(json.dumps(test))
        (job / "checkpoints").mkdir()
        (job / "checkpoints" / "best-epoch001.ckpt").write_bytes(b"")
    return job


def _report(*args):
    """unrolled-sweep-report as a user runs it (the console script)."""
    return subprocess.run(
        [str(BIN / "unrolled-sweep-report"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _report_here(capsys, *args) -> tuple[int, str, str]:
    """unrolled-sweep-report in this process: (exit status, stdout, stderr)."""
    from unrolled.cli.sweep_report import main

    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def _scores(unrolled_ssim):
    base = {"psnr": 20.0, "ssim": 0.6, "nmse": 0.05}
    unrolled = {"psnr": 25.0, "ssim": unrolled_ssim, "nmse": round(1 - unrolled_ssim, 3)}
    return {"zero_filled": base, "unrolled": unrolled}


def test_report_sorts_by_best_validation_ssim(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("{}\n")
    common = ["experiment=embedded", "data.root=/x"]
    _fake_job(sweep, 0, [*common, "model.num_cascades=2"], [0.5, 0.7, 0.6], _scores(0.80))
    _fake_job(sweep, 1, [*common, "model.num_cascades=4"], [0.6, 0.75], _scores(0.78))
    _fake_job(sweep, 2, [*common, "model.num_cascades=8"], [0.4])  # still running
    for _ in range(2):  # a second report replaces the first
        proc = _report(sweep)
        assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(open(sweep / "sweep_report.csv")))
    assert [r["job"] for r in rows] == ["1", "0", "2"]  # best val/ssim 0.75 > 0.7 > 0.4
    assert [r["overrides"] for r in rows] == [f"model.num_cascades={n}" for n in (4, 2, 8)]
    assert float(rows[1]["best val/ssim"]) == 0.7 and rows[1]["best epoch"] == "1"
    assert rows[0]["status"] == "finished" and rows[2]["status"] == "incomplete"
    assert rows[0]["checkpoint"].endswith("1/checkpoints/best-epoch001.ckpt")
    assert float(rows[1]["test/zero_filled/ssim"]) == 0.6
    md = (sweep / "sweep_report.md").read_text()
    assert md.index("model.num_cascades=4") < md.index("model.num_cascades=2")
    assert (sweep / "sweep_report.png").read_bytes()[:4] == b"\x89PNG"
    assert "model.num_cascades=4" in proc.stdout
    assert not [p for p in sweep.iterdir() if p.name.endswith(".tmp")]


def test_report_falls_back_to_test_ssim_and_takes_any_metric(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    _fake_job(sweep, 0, ["model/dc=hard"], test=_scores(0.70))
    _fake_job(sweep, 1, ["model/dc=cg"], test=_scores(0.90))
    _fake_job(sweep, 10, ["model/dc=gradient"], test={"unrolled": {"nmse": 0.01}})
    assert _report_here(capsys, sweep)[0] == 0
    rows = list(csv.DictReader(open(sweep / "sweep_report.csv")))
    assert [r["job"] for r in rows] == ["1", "0", "10"]  # no validation: test SSIM, then none
    assert "test/unrolled/ssim" in (sweep / "sweep_report.md").read_text()
    code, out, _ = _report_here(capsys, sweep, "--metric", "test/unrolled/nmse", "--no-plot")
    assert code == 0 and "test/unrolled/nmse" in out
    rows = list(csv.DictReader(open(sweep / "sweep_report.csv")))
    assert [r["job"] for r in rows] == ["10", "1", "0"]  # lowest NMSE first


def test_report_reads_every_version_of_a_resumed_run(tmp_path):
    from unrolled.evaluation.sweeps import collect_runs

    _fake_job(tmp_path / "s", 0, ["a=1"], [0.1, 0.2, 0.9, 0.3], resumed_at=2)
    (run,) = collect_runs(tmp_path / "s")
    assert [e for e, _ in run.val["ssim"]] == [0, 1, 2, 3]
    assert run.metric("val/ssim") == 0.9 and run.best_epoch() == 2
    assert run.metric("val/psnr") == pytest.approx(20.9)


@pytest.mark.parametrize("case", ["missing", "empty", "no_runs", "two_sweeps", "bad_metric"])
def test_report_bad_input_gives_one_line(tmp_path, capsys, case):
    target = tmp_path / "x"
    args = []
    if case != "missing":
        target.mkdir()
    if case == "no_runs":
        (target / "multirun.yaml").write_text("{}\n")
    if case in ("two_sweeps", "bad_metric"):
        for name in ("2026-01-01_00-00-00", "2026-01-02_00-00-00"):
            (target / name).mkdir()
            (target / name / "multirun.yaml").write_text("{}\n")
            _fake_job(target / name, 0, ["a=1"], [0.5])
    if case == "bad_metric":
        target, args = target / "2026-01-01_00-00-00", ["--metric", "ssim"]
    code, _, err = _report_here(capsys, target, *args)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith(f"error: {target}" if not args else "error: ")
    assert not (target / "sweep_report.md").exists()


# ---------------------------------------------------------------- real multiruns


def _wandb_run(job_dir: Path) -> tuple[str, str]:
    """(group, name) of the offline W&B run of a job, read from its .wandb file."""
    from wandb.proto import wandb_internal_pb2

    (path,) = job_dir.glob("wandb/offline-run-*/run-*.wandb")
    data, pos, block, buf = path.read_bytes(), 7, 32768, b""  # W&B header, LevelDB log blocks
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer
            pos += block - pos % block
            continue
        length, kind = struct.unpack("<HB", data[pos + 4 : pos + 7])
        buf += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last fragment of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buf)
            buf = b""
            if record.WhichOneof("record_type") == "run":
                return record.run.run_group, record.run.display_name
    raise AssertionError(f"no run record in {path}")


def _multirun(tmp_path, root, *overrides, timeout=600):
    sweep = tmp_path / "sweep"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    proc = subprocess.run(
        [
            str(BIN / "unrolled-train"),
            "-m",
            *TINY,
            f"data.root={root}",
            f"hydra.sweep.dir={sweep}",
            *overrides,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return sweep


def _check_sweep(sweep, swept: list[str], wandb: bool, labels: bool = True):
    """Job i of ``sweep`` ran ``swept[i]`` and logged; unrolled-sweep-report ranks the jobs."""
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [j.name for j in jobs] == [str(i) for i in range(len(swept))]
    for job, override in zip(jobs, swept, strict=True):
        assert override in yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        assert set(json.loads((job / "metrics.json").read_text())) >= {"zero_filled", "unrolled"}
        if wandb:
            group, name = _wandb_run(job)
            assert group == f"embedded/{sweep.name}"  # one W&B group per sweep
            assert override in name.split(",") and "data.root" not in name
    proc = _report(sweep)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(open(sweep / "sweep_report.csv")))
    assert sorted(r["job"] for r in rows) == [str(i) for i in range(len(swept))]
    if labels:  # the swept overrides label the rows
        assert sorted(r["overrides"] for r in rows) == sorted(swept)
    assert all(r["best val/ssim"] and r["status"] == "finished" for r in rows)
    ranked = [float(r["best val/ssim"]) for r in rows]
    assert ranked == sorted(ranked, reverse=True)
    assert (sweep / "sweep_report.png").stat().st_size > 0
    assert all(o in (sweep / "sweep_report.md").read_text() for o in swept)
    return rows


@pytest.mark.slow
def test_multirun_with_the_basic_launcher(tiny_root, tmp_path):
    sweep = _multirun(tmp_path, tiny_root, "logger=wandb", "model/dc=hard,cg")
    _check_sweep(sweep, ["model/dc=hard", "model/dc=cg"], wandb=True)


@pytest.mark.slow
def test_optuna_search_with_the_submitit_local_launcher(tiny_root, tmp_path):
    """Two trials in parallel, each its own process (the SLURM launcher's code path)."""
    sweep = _multirun(
        tmp_path,
        tiny_root,
        "+hparams_search=optuna",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
        "hydra/launcher=local",
        "logger=wandb",
    )
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(result["best_params"]) == {"optimizer.lr", "model/dc"}  # num_cascades fixed to 1
    assert list((sweep / ".submitit").glob("*/*_log.out"))  # the launcher's log folders
    swept = [
        next(
            o
            for o in yaml.safe_load((sweep / str(i) / ".hydra" / "overrides.yaml").read_text())
            if o.startswith("model/dc=")
        )
        for i in range(2)
    ]
    rows = _check_sweep(sweep, swept, wandb=True, labels=False)
    assert float(rows[0]["best val/ssim"]) == pytest.approx(result["best_value"])


@pytest.mark.slow
def test_multirun_on_a_fresh_clone_generates_the_data_once(tmp_path):
    """Issue 10 section 3: two parallel jobs, no data yet. Before the fix they raced to write
    the same ``.h5.tmp`` names and one failed with ``No such file or directory``."""
    from helpers.process_group import run_group

    fresh = tmp_path / "clone"
    fresh.mkdir()
    # enough volumes that both jobs are still generating when the other starts
    tiny_synth = [
        "synth.num_volumes=8",
        "synth.slices_per_volume=2",
        "synth.num_coils=4",
        "synth.height=128",
        "synth.width=64",
        "+synth.split=[2,1,5]",
    ]
    sweep = fresh / "sweep"
    proc = run_group(
        [
            str(BIN / "unrolled-train"),
            "-m",
            *[o for o in TINY if o != "synth=null"],
            *tiny_synth,
            "logger=csv",
            "hydra/launcher=local",
            "model.num_cascades=1,2",
            f"hydra.sweep.dir={sweep}",
        ],
        timeout=900,
        env={**os.environ, "WANDB_MODE": "disabled"},
        cwd=fresh,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    for job in ("0", "1"):  # both jobs trained and were tested
        assert set(json.loads((sweep / job / "metrics.json").read_text())) >= {"unrolled"}
    data = fresh / "data" / "embedded"  # the default data.root
    files = sorted(p.relative_to(data).as_posix() for p in data.rglob("*.h5"))
    expected = ["train/0000", "train/0001", "val/0002", *(f"test/{i:04d}" for i in range(3, 8))]
    assert files == sorted(f.replace("/", "/file_brain_synth_") + ".h5" for f in expected)
    assert not list(data.rglob("*.tmp"))
