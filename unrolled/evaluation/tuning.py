"""Choosing a baseline's regularisation weight on a validation split.

Every candidate weight is scored by a full pass of
:func:`~unrolled.inference.runner.evaluate_method` over the validation
batches: fastMRI's volume metrics, averaged over volumes (SSIM by default,
maximised; NMSE is minimised). Scores are memoised, so no weight is
evaluated twice.

:func:`tune_parameter` scores a fixed grid. :func:`tune_log_scale` is the
documented search used for the baselines' configs:

1. **Coarse grid.** Score a log-spaced grid (default ``1e-4 ... 1e-1`` in
   half-decade steps).
2. **Bracket.** Take the best grid point and its two neighbours. If the best
   is at an end of the grid, extend the grid outward by one step, up to
   ``max_extend`` times, so that the optimum is bracketed (or the search
   stops at the limit and says so in ``TuningResult.at_edge``).
3. **Refine.** Golden-section search on ``log10(weight)`` inside the bracket,
   ``refine_steps`` more evaluations; every evaluation after the first
   shrinks the bracket by 0.618. With half-decade steps and 6 refinements
   the final bracket spans ``2 * 0.5 * 0.618**5 ~ 0.09`` decades (a factor
   1.23 in the weight), where the score is flat to about 1e-3 SSIM for the
   baselines here -- below what a small validation split resolves.

The result is the best weight *scored*, not an interpolated one. The search
assumes the score is unimodal in ``log(weight)`` near the grid optimum, which
holds for the baselines here (too little regularisation leaves aliasing and
noise, too much blurs).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from unrolled.data.sample import Sample
from unrolled.inference.runner import evaluate_method, summarise

GOLDEN = (math.sqrt(5) - 1) / 2  # 0.618...


def _sign(metric: str) -> float:
    """+1 where higher is better, -1 for NMSE."""
    return -1.0 if metric == "nmse" else 1.0


def score_method(
    method: nn.Module, batches: Iterable[Sample], device: str | torch.device = "cpu"
) -> dict[str, float]:
    """Volume-averaged ``{"psnr", "ssim", "nmse"}`` of ``method`` over ``batches``."""
    return summarise(evaluate_method(method, batches, device))


def tune_parameter(
    make_method: Callable[[float], nn.Module],
    values: Sequence[float],
    batches: Callable[[], Iterable[Sample]],
    metric: str = "ssim",
    device: str | torch.device = "cpu",
) -> tuple[float, dict[float, float]]:
    """Grid search: the value of ``values`` whose method scores best on ``batches``.

    Args:
        make_method: builds the method for one parameter value.
        values: the grid.
        batches: a callable returning a fresh iterable of batches (the validation split).
        metric: volume-averaged metric to maximise (NMSE is minimised).
        device: where the methods run.

    Returns:
        ``(best value, {value: score})``.
    """
    scores = {}
    for v in values:
        scores[v] = score_method(make_method(v), batches(), device)[metric]
    best = max(scores, key=lambda v: _sign(metric) * scores[v])
    return best, scores


@dataclass
class TuningResult:
    """Outcome of :func:`tune_log_scale`.

    Attributes:
        best: the best weight evaluated.
        score: its score (``metric``).
        metric: the metric optimised.
        scores: ``{weight: score}`` for every weight evaluated, in order of evaluation.
        coarse: the weights of the (possibly extended) coarse grid, ascending.
        all_metrics: ``{weight: {"psnr", "ssim", "nmse"}}`` for every weight evaluated.
        at_edge: the best coarse weight stayed at an end of the grid after
            ``max_extend`` extensions (the optimum may lie beyond).
    """

    best: float
    score: float
    metric: str
    scores: dict[float, float] = field(default_factory=dict)
    coarse: list[float] = field(default_factory=list)
    all_metrics: dict[float, dict[str, float]] = field(default_factory=dict)
    at_edge: bool = False

    def to_dict(self) -> dict:
        """JSON-friendly form (weights as strings with 6 significant digits, sorted)."""
        return {
            "best": self.best,
            "score": self.score,
            "metric": self.metric,
            "at_edge": self.at_edge,
            "coarse": self.coarse,
            "scores": {f"{w:.6g}": self.all_metrics[w] for w in sorted(self.all_metrics)},
        }


def tune_log_scale(
    make_method: Callable[[float], nn.Module],
    batches: Callable[[], Iterable[Sample]],
    coarse: Sequence[float] = (1e-4, 3.16e-4, 1e-3, 3.16e-3, 1e-2, 3.16e-2, 1e-1),
    refine_steps: int = 6,
    metric: str = "ssim",
    max_extend: int = 3,
    device: str | torch.device = "cpu",
    log: Callable[[str], None] | None = None,
) -> TuningResult:
    """Coarse log grid, bracket, golden-section refinement (see the module notes).

    Args:
        make_method: builds the method for one weight (share expensive state,
            e.g. an ESPIRiT cache, through the closure).
        batches: a callable returning a fresh iterable of validation batches.
        coarse: ascending, positive, log-spaced grid (at least 2 values).
        refine_steps: golden-section evaluations after the grid (0: grid only).
        metric: ``"ssim"``, ``"psnr"`` (maximised) or ``"nmse"`` (minimised).
        max_extend: how many times the grid may grow by one step at an end.
        device: where the methods run.
        log: called with one line per evaluation (e.g. ``print``).

    Returns:
        The :class:`TuningResult`.
    """
    grid = sorted(float(v) for v in coarse)
    if len(grid) < 2 or grid[0] <= 0:
        raise ValueError(f"coarse grid needs >= 2 positive values, got {coarse}")
    sign = _sign(metric)
    result = TuningResult(best=grid[0], score=-sign * math.inf, metric=metric)

    def score(v: float) -> float:
        v = float(f"{v:.6g}")
        if v not in result.scores:
            metrics = score_method(make_method(v), batches(), device)
            result.all_metrics[v] = metrics
            result.scores[v] = metrics[metric]
            if log is not None:
                log(f"  weight {v:.4g}: " + ", ".join(f"{k} {m:.4f}" for k, m in metrics.items()))
        return sign * result.scores[v]  # higher is better

    for v in grid:
        score(v)
    for attempt in range(max_extend + 1):
        i = max(range(len(grid)), key=lambda j: score(grid[j]))
        if 0 < i < len(grid) - 1:
            break
        if attempt == max_extend:
            result.at_edge = True
            break
        # extend outward by the grid's ratio at that end
        grid = [grid[0] ** 2 / grid[1]] + grid if i == 0 else grid + [grid[-1] ** 2 / grid[-2]]
        score(grid[0] if i == 0 else grid[-1])
    result.coarse = grid

    lo = math.log10(grid[max(i - 1, 0)])
    hi = math.log10(grid[min(i + 1, len(grid) - 1)])
    if refine_steps == 1:
        score(10 ** ((lo + hi) / 2))
    elif refine_steps >= 2:
        # golden section on [lo, hi] in log10: interior points at 0.382 and 0.618
        a, b = lo + (1 - GOLDEN) * (hi - lo), lo + GOLDEN * (hi - lo)
        fa, fb = score(10**a), score(10**b)
        for _ in range(refine_steps - 2):
            if fa >= fb:  # the maximum lies in [lo, b]
                hi, b, fb = b, a, fa
                a = lo + (1 - GOLDEN) * (hi - lo)
                fa = score(10**a)
            else:  # in [a, hi]
                lo, a, fa = a, b, fb
                b = lo + GOLDEN * (hi - lo)
                fb = score(10**b)

    result.best = max(result.scores, key=lambda v: sign * result.scores[v])
    result.score = result.scores[result.best]
    return result
