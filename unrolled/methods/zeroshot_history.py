"""The record of a zero-shot fit: per-step losses of each scan, as CSV and as a PNG.

:class:`~unrolled.methods.zeroshot.ZeroShot` fills one :class:`ScanHistory`
per slice; ``unrolled-reconstruct method=zeroshot`` writes them beside the
reconstructions with :func:`history_csv` and :func:`plot_histories`.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

CSV_FIELDS = ("key", "step", "train_loss", "val_loss", "lr", "seconds")


@dataclass
class StepRecord:
    """One optimisation step of a scan's fit.

    Attributes:
        step: 1-based step count after this step.
        train_loss: the SSDU loss on ``Lambda`` of this step.
        val_loss: held-out loss on ``Gamma`` after this step (NaN if not validated).
        lr: learning rate of this step.
        seconds: wall time since the fit of this scan started.
        extra: what an optional monitor returned (e.g. PSNR against a reference).
    """

    step: int
    train_loss: float
    val_loss: float
    lr: float
    seconds: float
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class ScanHistory:
    """The fit of one slice.

    Attributes:
        key: the slice's key (``(fname, slice)`` from the caller, or its batch index).
        records: one per optimisation step, in order.
        initial_val_loss: held-out loss before any step (the initial or warm-started net).
        initial_extra: what the monitor returned before any step.
        best_step: step whose weights were kept (0: the initial weights).
        best_val_loss: held-out loss at ``best_step``.
        stop_reason: ``"patience"``, ``"max_steps"`` or ``"time_budget"``.
        seconds: wall time of the fit (monitor excluded) and, when run by
            :meth:`ZeroShot.forward`, of the final reconstruction.
        start: key of the slice whose fitted network this fit started from
            (``None``: the initial or checkpoint weights).
        classical_val_loss: held-out loss of the classical candidate (NaN: none).
        chosen: what reconstructed the slice: ``"network"`` or ``"classical"``.
        readout_rows: image rows fitted after removing readout oversampling
            (``None``: all rows).
    """

    key: tuple
    records: list[StepRecord] = field(default_factory=list)
    initial_val_loss: float = math.nan
    initial_extra: dict[str, float] = field(default_factory=dict)
    best_step: int = 0
    best_val_loss: float = math.inf
    stop_reason: str = ""
    seconds: float = 0.0
    start: tuple | None = None
    classical_val_loss: float = math.nan
    chosen: str = "network"
    readout_rows: int | None = None

    @property
    def last_step(self) -> int:
        return self.records[-1].step if self.records else 0


def history_csv(histories: Sequence[ScanHistory]) -> str:
    """CSV text, one row per step of every scan (:data:`CSV_FIELDS` plus monitored extras).

    ``val_loss`` is ``nan`` at steps without validation.
    """
    extras = sorted({k for h in histories for r in h.records for k in r.extra})
    f = io.StringIO()
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow([*CSV_FIELDS, *extras])
    for h in histories:
        name = "/".join(str(k) for k in h.key)
        for r in h.records:
            row = [name, r.step, f"{r.train_loss:.6g}", f"{r.val_loss:.6g}", f"{r.lr:.6g}"]
            row += [f"{r.seconds:.3f}", *(f"{r.extra.get(k, math.nan):.6g}" for k in extras)]
            writer.writerow(row)
    return f.getvalue()


def plot_histories(histories: Sequence[ScanHistory], out, title: str = "") -> None:
    """Training and held-out loss against step, one panel per scan, as a PNG.

    Args:
        histories: the scans to draw.
        out: a path or a binary file object.
        title: figure title.
    """
    from matplotlib.figure import Figure  # no pyplot: leaves the user's backend alone

    n = max(len(histories), 1)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.6 * cols, 2.8 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, h in zip(axes, histories, strict=False):
        draw_history(ax, h)
    for ax in axes[len(histories) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.savefig(out, format="png", dpi=110)


def draw_history(ax, h: ScanHistory) -> None:
    """Draw one scan's curves on a matplotlib axis (loss against step)."""
    steps = [r.step for r in h.records]
    ax.plot(steps, [r.train_loss for r in h.records], lw=0.8, alpha=0.7, label="train (Lambda)")
    val = [(0, h.initial_val_loss)] + [
        (r.step, r.val_loss) for r in h.records if not math.isnan(r.val_loss)
    ]
    ax.plot(*zip(*val, strict=True), "o-", ms=2.5, lw=1.2, label="held-out (Gamma)")
    ax.axvline(h.best_step, color="k", ls="--", lw=0.8, label=f"kept: step {h.best_step}")
    if not math.isnan(h.classical_val_loss):
        ax.axhline(h.classical_val_loss, color="C3", ls=":", lw=1.0, label=(
            f"classical held-out{' (chosen)' if h.chosen == 'classical' else ''}"
        ))  # fmt: skip
    ax.set_xlabel("step")
    ax.set_ylabel("k-space L1-L2 loss")
    ax.set_title("/".join(str(k) for k in h.key), fontsize=8)
    ax.legend(fontsize=6)
