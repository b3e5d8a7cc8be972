"""Helpers the test modules share: complex test tensors, one torch thread, CLIs in process,
and the small training settings.

Fixtures built on these live in ``tests/conftest.py`` (``one_thread``, ``one_thread_module``,
``small_train_cfg``).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import torch

# The small network and quiet trainer of the training tests (2 cascades x 8 channels x 2
# blocks on the embedded set, batches of 2, no progress bar, CSV logging): the base of
# ``small_train_cfg``.
SMALL_TRAIN = [
    "experiment=embedded",
    "synth=null",
    "logger=csv",
    "model.num_cascades=2",
    "model.denoiser.cnn.channels=8",
    "model.denoiser.cnn.num_blocks=2",
    "mask.center_fractions=[0.16]",
    "data.batch_size=2",
    "trainer.enable_progress_bar=false",
    "scheduler.warmup_steps=2",
    "~callbacks.progress_bar",
    "~callbacks.lr_monitor",
]


def small_train_config(root, out, *overrides: str):
    """The training config of the small network on the data set ``root``: :data:`SMALL_TRAIN`,
    then ``data.root``, then ``overrides``; run outputs in ``out``."""
    from unrolled.cli.compose import compose_config

    return compose_config("train", [*SMALL_TRAIN, f"data.root={root}", *overrides], output_dir=out)


def crandn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.complex128) -> torch.Tensor:
    """Standard complex normal samples of ``shape`` (real part drawn first), seeded."""
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(*shape, generator=g, dtype=torch.float64)
    imag = torch.randn(*shape, generator=g, dtype=torch.float64)
    return torch.complex(real, imag).to(dtype)


def inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``<a, b> = sum(conj(a) * b)`` over all elements (the adjoint tests' inner product)."""
    return torch.vdot(a.flatten(), b.flatten())


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """One torch intra-op thread: on shared cores, idle-spinning threads slow small problems
    5-20x; the previous count is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_cli(module: str, run_dir: Path, *overrides: str) -> tuple[int, str, str]:
    """``unrolled.cli.<module>.main`` in this process (no start-up cost).

    Hydra writes its run record to ``run_dir`` with its logging disabled (the autouse
    fixture of ``conftest.py`` restores logging afterwards).

    Returns:
        ``(exit status, stdout, stderr)``.
    """
    from hydra.core.global_hydra import GlobalHydra

    main = importlib.import_module(f"unrolled.cli.{module}").main
    argv = [
        f"unrolled-{module.replace('_', '-')}",
        f"hydra.run.dir={run_dir}",
        "hydra/job_logging=disabled",
        "hydra/hydra_logging=disabled",
        *overrides,
    ]
    out, err = io.StringIO(), io.StringIO()
    GlobalHydra.instance().clear()
    with (
        mock.patch.object(sys, "argv", argv),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()
