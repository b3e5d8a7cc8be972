"""Shared helpers of the raw-data tests: the twix fixtures and running the real commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.process_group import run_group

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "siemens_twix"
GRE = FIXTURES / "gre.dat"
EPI = FIXTURES / "epi.dat"
BIN = Path(sys.executable).parent

# Identifying strings of gre.dat's header (values masked with x by the publisher; the
# institution, its address, the scanner serial, the study date and the LOIDs are real).
GRE_IDENTIFIERS = [
    b"xxxxxxx",  # patient name; the ID (48 x) and birth date (8 x) contain it
    b"DZNE",
    b"Venusberg",
    b"Freud",
    b"53127",
    b"45385",  # device serial number (also inside the frame-of-reference UID)
    b"20210622",  # date inside the frame-of-reference UID
    b"66327770",  # patient LOID
    b"66327775",  # study LOID
]


def need(tool: str) -> str:
    """The path of a Debian reference tool, or skip the test naming the package."""
    path = shutil.which(tool)
    if path is None:
        package = "bart" if tool == "bart" else "ismrmrd-tools"
        pytest.skip(f"{tool} not installed (Debian package {package}; .ci/install-debian-packages)")
    return path


def run(args: list, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a command in its own process group; kill the group on a timeout."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    return run_group(args, timeout, cwd=cwd, env=env)


def cli(name: str) -> str:
    """A console script of this environment."""
    return str(BIN / name)
