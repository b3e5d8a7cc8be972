"""Fault injection for recovery tests (imported by unrolled-train through PYTHONPATH)."""

import os
import signal

import lightning as L


class KillAtStep(L.Callback):
    """SIGKILL this process right after optimisation step ``step`` (no cleanup, no flush)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class DeadlockAtStep(L.Callback):
    """After optimisation step ``step``, every rank waits in a blocking receive from the
    next rank, which never sends: ranks stuck inside C++ communication, as in a collective
    reached by some ranks only. Touches ``marker.<rank>`` just before."""

    def __init__(self, step: int, marker: str) -> None:
        self.step = step
        self.marker = marker

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        import pathlib

        import torch
        import torch.distributed as dist

        if trainer.global_step == self.step:
            rank, world = dist.get_rank(), dist.get_world_size()
            pathlib.Path(f"{pathlib.Path(self.marker).with_suffix('')}.{rank}").touch()
            dist.recv(torch.zeros(1), src=(rank + 1) % world)
