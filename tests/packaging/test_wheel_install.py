"""A normal install: the wheel carries the Hydra configs, and its console scripts run anywhere.

Builds the wheel from a copy of the sources (so that the checkout gets no ``build/``), installs
it without dependencies into a fresh virtual environment outside the repository, and runs
``unrolled-synth`` and a one-batch ``unrolled-train`` from a directory that is not the checkout.

The dependencies (torch, lightning, ...) are not installed again: a ``.pth`` line gives the
fresh environment ``.venv``'s site-packages *after* its own. Lines of a ``.pth`` file only
extend ``sys.path``; the ``.pth`` files inside the added directory (among them the editable
install's import hook) are not run, so ``unrolled`` and its configs can only come from the
wheel, which the test asserts. This keeps the test offline and about a minute long.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from helpers.process_group import run_group

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "unrolled", "conf", "hydra_plugins")


def _run(cmd, cwd, timeout=900, env=None):
    """Run ``cmd`` in its own process group; kill the whole group on a timeout."""
    return run_group(cmd, timeout, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "local")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    (src / "conf" / "local").mkdir()  # a machine's site settings must stay out of the wheel
    (src / "conf" / "local" / "site.yaml").write_text("partition: secret\n")
    dist = tmp_path_factory.mktemp("dist")
    proc = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            dist,
            src,
        ],
        cwd=src,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (whl,) = dist.glob("unrolled-*.whl")
    return whl


def test_wheel_ships_every_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = sorted(p.relative_to(REPO) for p in (REPO / "conf").rglob("*.yaml"))
    configs = [p for p in configs if p.parts[1] != "local"]
    assert configs, "no configs in the checkout"
    missing = [str(p) for p in configs if f"unrolled/{p.as_posix()}" not in names]
    assert not missing, f"configs not in the wheel: {missing}"
    assert not [n for n in names if n.startswith("unrolled/conf/local/")]


@pytest.mark.slow
def test_wheel_console_scripts_run_outside_the_checkout(wheel, tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path).check_returncode()
    python = venv / "bin" / "python"
    uv = Path(sys.executable).parent / "uv"
    proc = _run([uv, "pip", "install", "--python", python, "--no-deps", wheel], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    purelib = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path
        ).stdout.strip()
    )
    (purelib / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "elsewhere"  # not the checkout, no conf/ next to it
    work.mkdir()
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    where = _run(
        [
            python,
            "-c",
            "import unrolled, unrolled.cli.common as c; print(unrolled.__file__); "
            "print(c.CONFIG_DIR)",
        ],
        work,
        env=env,
    )
    assert where.returncode == 0, where.stderr
    module_file, config_dir = where.stdout.split()
    assert Path(module_file).is_relative_to(venv) and Path(config_dir).is_relative_to(venv)
    assert (Path(config_dir) / "train.yaml").is_file()

    synth = _run(
        [
            venv / "bin" / "unrolled-synth",
            "output_dir=data",
            "num_volumes=3",
            "split=[1,1,1]",
            "slices_per_volume=2",
            "num_coils=4",
            "height=64",
            "width=96",
            "preview=false",
        ],
        work,
        env=env,
    )
    assert synth.returncode == 0, synth.stderr
    assert len(list((work / "data").rglob("*.h5"))) == 3

    train = _run(
        [
            venv / "bin" / "unrolled-train",
            "data.root=data",
            "synth=null",
            "logger=csv",
            "hydra.run.dir=run",
            "model.num_cascades=1",
            "model.denoiser.cnn.channels=4",
            "model.denoiser.cnn.num_blocks=1",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=1",
            "trainer.limit_val_batches=1",
            "cg_sense_lambda_grid=null",
            "data.batch_size=1",
        ],
        work,
        env=env,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    metrics = json.loads((work / "run" / "metrics.json").read_text())
    assert "unrolled" in json.dumps(metrics)
    assert list((work / "run" / "checkpoints").glob("*.ckpt"))
    assert not (work / "conf").exists()
