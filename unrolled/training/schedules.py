"""Learning-rate schedules: linear warm-up, then cosine or step decay.

Both are factories ``(optimizer, total_steps, ...) -> LambdaLR`` stepped every
optimisation step; Hydra configs bind everything but the first two
(``_partial_: true``) and the LightningModule supplies ``total_steps`` from
the trainer.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(
    optimizer: Optimizer, total_steps: int, warmup_steps: int = 100, min_lr_ratio: float = 0.01
) -> LambdaLR:
    """Linear warm-up from 0 over ``warmup_steps``, then cosine decay to ``min_lr_ratio``."""
    warmup_steps = min(warmup_steps, max(total_steps - 1, 0))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def warmup_step(
    optimizer: Optimizer,
    total_steps: int,
    warmup_steps: int = 100,
    step_fraction: float = 0.8,
    gamma: float = 0.1,
) -> LambdaLR:
    """Linear warm-up, then constant, then one decay by ``gamma`` at ``step_fraction`` of training.

    (E2E-VarNet: Adam, lr 3e-4, divided by 10 after 40 of 50 epochs.)
    """
    warmup_steps = min(warmup_steps, max(total_steps - 1, 0))
    boundary = int(step_fraction * total_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return gamma if step >= boundary else 1.0

    return LambdaLR(optimizer, factor)
