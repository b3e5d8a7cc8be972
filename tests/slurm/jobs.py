"""Helpers of the SLURM tests: the tiny training settings and commands that never hang."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import torch
from helpers.process_group import run_group

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]

# One tiny job on the CPU node: no GPU (gres), one task, one CPU.
CPU_JOB = [
    "hydra.launcher.gpus_per_node=null",
    "hydra.launcher.tasks_per_node=1",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.timeout_min=20",
]


def sweep_helpers():
    """tests/cli/test_sweeps.py as a module (TINY settings, _check_sweep, _wandb_run)."""
    path = REPO / "tests" / "cli" / "test_sweeps.py"
    spec = importlib.util.spec_from_file_location("cli_test_sweeps", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(args, timeout: float, cwd=None, env=None) -> subprocess.CompletedProcess:
    """Run a command in its own process group; on timeout kill the whole group and fail."""
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", **(env or {})}
    return run_group(args, timeout, cwd=cwd, env=env)


def weights(ckpt: Path) -> tuple[dict[str, torch.Tensor], int]:
    """(state_dict, global_step) of a checkpoint."""
    state = torch.load(ckpt, weights_only=True, map_location="cpu")
    return state["state_dict"], state["global_step"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
