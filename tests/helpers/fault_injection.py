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
