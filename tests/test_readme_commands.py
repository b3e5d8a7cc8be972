"""Every shell command of README.md and slurm/README.md runs as written, or says why it cannot.

The commands are extracted from the ```bash blocks (continuation lines joined, comments
dropped). Each is handled in one of three ways, and a command that is in none of them fails
the test, so the READMEs cannot gain a command nobody checked:

- RUN: run as written in a scratch folder whose ``data/embedded`` is the tiny test data set
  (small settings: 4 volumes x 2 slices, 64 x 64 k-space);
- COMPOSE: ``unrolled-*`` commands whose work takes minutes to hours or a cluster; their
  configuration is composed exactly as written (``--cfg job``), which checks every group,
  key and value of the command line;
- WHY_NOT: commands that cannot run inside a test, with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
READMES = ("README.md", "slurm/README.md")

WHY_NOT = {
    "make train": "installs and trains for ~10 minutes; `make train` is CI's own job",
    "make test": "the test suite itself",
    "make test-fast": "the test suite itself",
    "make format": "rewrites the checkout's files",
    "make bench": "benchmarks of tens of minutes (bench/README.md)",
    "make install": "creates .venv in the checkout; tests/packaging builds and installs a wheel",
    "cd /shared/$USER": "a cluster's shared file system",
    "git clone https://github.com/ORG/unrolled.git && cd unrolled": "network access, placeholder",
    "source .venv/bin/activate": "changes the calling shell only",
    "mkdir -p conf/local && cp conf/site.example.yaml conf/local/site.yaml": (
        "writes into the checkout's conf/; tests/cli/test_sweeps.py reads site settings"
    ),
    "$EDITOR conf/local/site.yaml": "interactive",
    "tmux new -s sweep": "interactive",
    "wandb login": "needs an account and network access",
    "wandb sync multirun/knee_cascades_dc/*/wandb/offline-run-*": "network access",
    "unrolled-sweep-report multirun/knee_cascades_dc": (
        "needs that SLURM sweep; tests/cli/test_sweeps.py runs the report on real multiruns"
    ),
    "unrolled-reconstruct checkpoint=outputs/embedded/RUN/checkpoints/best-epoch008.ckpt "
    "input_dir=data/embedded/test output_dir=out/unrolled": (
        "needs a `make train` checkpoint (RUN is a placeholder); "
        "tests/cli/test_reconstruct.py runs it with a trained one"
    ),
}
# The "Your own scanner data" block: run as written on gre.dat, in a scratch folder, by
# tests/data/test_scanner_to_viewer.py (its reconstruct commands are also composed here).
RUN_ELSEWHERE = {
    "unrolled-info tests/fixtures/siemens_twix/gre.dat": "tests/data/test_scanner_to_viewer.py",
    "unrolled-convert inputs=[tests/fixtures/siemens_twix/gre.dat] output_dir=scans": (
        "tests/data/test_scanner_to_viewer.py"
    ),
    "unrolled-info scans/gre.h5": "tests/data/test_scanner_to_viewer.py",
    "unrolled-evaluate target_dir=scans predictions_dir=recon_zs": (
        "tests/data/test_scanner_to_viewer.py"
    ),
    # The cluster guide: tests/slurm starts and stops its cluster with this script (as root,
    # where sudo is not needed) and runs the sharded job array on it with tiny data.
    "sudo tests/slurm/cluster.sh start /tmp/unrolled-slurm && "
    "export SLURM_CONF=/tmp/unrolled-slurm/slurm.conf": "tests/slurm/conftest.py",
    "sudo tests/slurm/cluster.sh stop /tmp/unrolled-slurm": "tests/slurm/conftest.py",
}
# Job arrays of the guide, run on the local cluster by tests/slurm with tiny data.
RUN_ON_CLUSTER = {
    "jid=$(sbatch --parsable --array=0-9": "tests/slurm/test_shards.py",
    "sbatch --dependency=afterok:$jid --wrap": "tests/slurm/test_shards.py",
}
# Run under a real SLURM cluster only (tests/slurm); here: composed.
SLURM_ONLY = ("sbatch ",)


def readme_commands() -> list[tuple[str, str]]:
    """``(readme, command)`` for every command of the bash blocks, in order."""
    found = []
    for name in READMES:
        text = (REPO / name).read_text()
        for block in re.findall(r"```bash\n(.*?)```", text, re.S):
            pending = ""
            for line in block.splitlines():
                line = line.rstrip()
                if line.endswith("\\"):
                    pending += line[:-1].strip() + " "
                    continue
                command = re.sub(r"\s+#.*$", "", pending + line.strip()).strip()
                pending = ""
                if command and not command.startswith("#"):
                    found.append((name, " ".join(command.split())))
    return found


COMMANDS = readme_commands()
RUN = [
    "unrolled-reconstruct method=cs_wavelet input_dir=data/embedded/test output_dir=out/cs "
    "mask.accelerations=[8] mask.center_fractions=[0.08]",
    "unrolled-evaluate target_dir=data/embedded/test predictions_dir=out/unrolled",
    "unrolled-train hydra/launcher=slurm --cfg hydra -p hydra.launcher",
    # raw data: the twix fixture the README converts
    "unrolled-info tests/fixtures/siemens_twix/gre.dat",
    "unrolled-convert inputs=[tests/fixtures/siemens_twix/gre.dat] output_dir=scans",
    "unrolled-reconstruct method=cg_sense input_dir=scans output_dir=recon_cg "
    "output_format=[h5,nifti,dicom]",
    "unrolled-evaluate target_dir=scans predictions_dir=recon_zs",
]


def _kind(command: str) -> str:
    if command in WHY_NOT:
        return "why_not"
    if command in RUN:
        return "run"
    if command in RUN_ELSEWHERE or command.startswith(tuple(RUN_ON_CLUSTER)):
        return "elsewhere"
    if command.startswith(SLURM_ONLY):
        return "slurm"
    if command.split()[0] in {f"unrolled-{t}" for t in ("train", "robustness", "reconstruct")}:
        return "compose"
    return "unknown"


def test_every_readme_command_is_run_composed_or_explained():
    assert len(COMMANDS) >= 20
    unknown = [c for _, c in COMMANDS if _kind(c) == "unknown"]
    assert not unknown, f"README commands nobody checks (add them to this test): {unknown}"
    listed = {c for _, c in COMMANDS}
    stale = [c for c in [*RUN, *WHY_NOT, *RUN_ELSEWHERE] if c not in listed]
    assert not stale, f"commands this test knows that the READMEs no longer show: {stale}"


def _compose(command: str) -> subprocess.CompletedProcess:
    """Compose the command's configuration as written, without running it.

    A multirun (``-m``) is composed for its first job: ``key=a,b`` becomes ``key=a``.
    """
    args = [
        re.sub(r"^([^=\[]+=)([^\[,]+),.*$", r"\1\2", a) if "-m" in command.split() else a
        for a in command.split()[1:]
        if a != "-m"
    ]
    tool = command.split()[0].removeprefix("unrolled-")
    code = (
        "import sys; from unrolled.cli import {0} as m; sys.argv = ['unrolled-{0}', *sys.argv[1:]]"
        "; m.main()".format(tool.replace("-", "_"))
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args, "--cfg", "job"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "WANDB_MODE": "disabled"},
    )


@pytest.mark.slow
def test_commands_that_need_hours_or_a_cluster_compose_as_written():
    composed = [c for _, c in COMMANDS if _kind(c) == "compose"]
    assert len(composed) >= 8
    failed = {}
    for command in composed:
        proc = _compose(command)
        if proc.returncode != 0:
            failed[command] = proc.stderr.strip().splitlines()[-1:]
    assert not failed, failed


def test_sbatch_commands_name_existing_templates():
    for _, command in COMMANDS:
        if _kind(command) == "slurm":
            template = next(a for a in command.split() if a.endswith(".sbatch"))
            assert (REPO / template).is_file(), command


@pytest.mark.slow
def test_runnable_commands_run_as_written(tiny_root, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "embedded").symlink_to(tiny_root)
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}

    def run(command: str) -> subprocess.CompletedProcess:
        tool, *args = command.split()
        proc = subprocess.run(
            [str(BIN / tool), *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )
        assert proc.returncode == 0, f"{command}\n{proc.stderr[-2000:]}"
        return proc

    run(RUN[0])  # 8x with a 4% centre: a 3-column calibration region on 64 columns
    assert len(list((tmp_path / "out" / "cs").glob("*.h5"))) == 1
    # out/unrolled comes from the checkpoint command (WHY_NOT): the CS output stands in for it
    shutil.copytree(tmp_path / "out" / "cs", tmp_path / "out" / "unrolled")
    proc = run(RUN[1])
    assert "PSNR" in proc.stdout and (tmp_path / "out" / "unrolled" / "metrics.json").is_file()
    proc = run(RUN[2])
    assert "SlurmLauncher" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out"]  # no clutter

    (tmp_path / "tests").symlink_to(REPO / "tests")  # the README's paths are the repository's
    assert "convert would write gre.h5" in run(RUN[3]).stdout
    run(RUN[4])
    assert (tmp_path / "scans" / "gre.h5").is_file()
    run(RUN[5])
    # recon_zs comes from the zero-shot command (composed only): CG-SENSE's output stands in
    shutil.copytree(tmp_path / "recon_cg", tmp_path / "recon_zs")
    assert "PSNR" in run(RUN[6]).stdout
