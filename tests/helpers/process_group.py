"""Run a command in its own process group; on a timeout kill the whole group, then fail.

Multi-process tests (DDP ranks, launcher jobs) start grandchildren: killing the direct child
alone on a timeout would leave them running (or hanging in a collective) after the test.
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest


def run_group(cmd: list, timeout: float, **kwargs) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(cmd, capture_output=True, text=True)`` in a new session.

    ``cmd`` items are passed through ``str`` (paths welcome); ``kwargs`` go to ``Popen``
    (``cwd``, ``env``, ...). On ``timeout`` seconds, SIGKILL the process group and fail the
    test with the output tails (a hang must fail fast, never stall CI).
    """
    cmd = [str(c) for c in cmd]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kwargs,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(
            f"timed out after {timeout} s, process group killed: {cmd}\n"
            f"stdout: {out[-2000:]}\nstderr: {err[-4000:]}"
        )
    finally:
        try:  # leftovers (e.g. a rank the launcher did not reap)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
