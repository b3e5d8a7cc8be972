"""A real one-node SLURM cluster for the tests marked ``slurm`` (tests/slurm/cluster.sh).

The session fixture ``slurm_cluster`` installs Debian's slurm-wlm and munge when missing (as
root, `.ci/install-debian-packages`), starts munged, slurmctld and slurmd with a private
``slurm.conf`` (own ports, munge socket, state and logs under a temporary directory), points
``SLURM_CONF`` at it for the session, and stops exactly those daemons afterwards (jobs are
cancelled first). Without root or the packages the tests skip, saying why.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SH = Path(__file__).with_name("cluster.sh")
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}


def pytest_collection_modifyitems(config, items):
    xdist = config.pluginmanager.hasplugin("xdist")
    for item in items:
        if Path(item.fspath).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.slurm)
            if xdist:  # with --dist loadgroup (make test): one worker, one cluster
                item.add_marker(pytest.mark.xdist_group("slurm"))


@dataclass
class Cluster:
    """The running cluster: its directory and ``slurm.conf``; jobs are recorded in ``jobs``."""

    dir: Path
    conf: Path
    jobs: list[str]

    def run(self, *args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        """A SLURM client command (sbatch, squeue, scontrol ...) against this cluster."""
        return subprocess.run(
            list(args), capture_output=True, text=True, timeout=timeout, check=True, **kw
        )

    def sbatch(self, *args: str, cwd: Path | str = REPO, env: dict | None = None) -> str:
        """Submit; returns the job id."""
        env = {**os.environ, **(env or {})}
        proc = self.run("sbatch", "--parsable", *args, cwd=cwd, env=env)
        job = proc.stdout.strip().split(";")[0]
        self.jobs.append(job)
        return job

    def job(self, job: str) -> list[dict[str, str]]:
        """``scontrol show job`` as one dict per job (array tasks: one each)."""
        out = self.run("scontrol", "show", "job", "-o", job).stdout
        return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in out.splitlines() if line]

    def wait(self, job: str, timeout: float, until=FINISHED) -> list[dict[str, str]]:
        """Wait until every task of ``job`` is in a state of ``until``; cancel it on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.job(job)
            if info and all(t["JobState"] in until for t in info):
                return info
            time.sleep(2)
        states = [(t["JobId"], t["JobState"]) for t in self.job(job)]
        subprocess.run(["scancel", job], timeout=60)
        raise AssertionError(f"job {job} not {sorted(until)} after {timeout:.0f} s: {states}")

    def table(self) -> str:
        """id, state, restarts, start, end, run time of every job of the session."""
        lines = []
        for line in self.run("scontrol", "show", "job", "-o").stdout.splitlines():
            t = dict(re.findall(r"(\w+)=(\S*)", line))
            if t:
                lines.append(
                    f"{t['JobId']:>6} {t.get('ArrayJobId', '')}_{t.get('ArrayTaskId', '')} "
                    f"{t['JobName'][:24]:<24} {t['JobState']:<10} restarts={t['Restarts']} "
                    f"{t['StartTime']} {t['EndTime']} run={t['RunTime']}"
                )
        return "\n".join(lines)


def _have_daemons() -> bool:
    path = f"{os.environ['PATH']}:/usr/sbin"
    return all(shutil.which(p, path=path) for p in ("slurmd", "munged", "sbatch"))


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """Start the private cluster (or skip with the reason); stop it after the session."""
    if os.geteuid() != 0:
        pytest.skip("a local SLURM cluster needs root (slurmd starts jobs as their users)")
    if not _have_daemons():
        subprocess.run(["bash", str(REPO / ".ci" / "install-debian-packages")], timeout=900)
    if not _have_daemons():
        pytest.skip("slurm-wlm and munge are not installed and could not be installed")
    directory = tmp_path_factory.mktemp("slurm")
    start = subprocess.run(
        ["bash", str(CLUSTER_SH), "start", str(directory)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if start.returncode == 2:
        pytest.skip(start.stderr.strip())
    if start.returncode != 0:
        subprocess.run(["bash", str(CLUSTER_SH), "stop", str(directory)], timeout=300)
        pytest.fail(f"the local SLURM cluster did not start: {start.stderr.strip()}")
    cluster = Cluster(directory, directory / "slurm.conf", [])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLURM_CONF", str(cluster.conf))
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        try:
            yield cluster
        finally:
            try:
                (directory / "jobs.txt").write_text(cluster.table() + "\n")
            except Exception:  # the record is a courtesy; stopping is not
                pass
            subprocess.run(["bash", str(CLUSTER_SH), "stop", str(directory)], timeout=300)
