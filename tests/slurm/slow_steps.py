"""A callback that makes each training step last a while (imported through PYTHONPATH).

Sleeping changes no number: a run with it trains exactly as one without. It gives a test the
time to requeue a job mid-training, or lets a job reach a short time limit.
"""

import time

import lightning as L


class SlowSteps(L.Callback):
    """Sleep ``seconds`` after every training batch."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        time.sleep(self.seconds)
