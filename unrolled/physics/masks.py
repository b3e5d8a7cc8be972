"""k-space undersampling masks.

Two families share one call signature, ``mask_func(shape, offset=None, seed=None)``,
which returns ``(mask, num_low_frequencies)``:

* 1D Cartesian line masks (``RandomMaskFunc``, ``EquispacedMaskFunc``,
  ``EquispacedMaskFractionFunc``, ``MagicMaskFunc``, ``MagicMaskFractionFunc``) with
  exactly the semantics of ``fastmri.data.subsample``: the same constructor seed,
  per-call seed, shape, accelerations and centre fractions give the identical mask.
  The mask has shape ``(1, W)`` and subsamples the last axis (columns / phase encodes).
* 2D variable-density masks (``PoissonDiscMaskFunc``, ``GaussianMaskFunc``) over the
  ``(H, W)`` grid, with a fully sampled calibration block; the mask has shape ``(H, W)``.
  They live in :mod:`unrolled.physics.grid_masks`; building a mask by name and the
  effective acceleration of a mask in :mod:`unrolled.physics.mask_tools`.

``shape`` is the shape of *complex* k-space, ``(..., H, W)`` (fastMRI's is
``(..., H, W, 2)``). Masks are ``float32`` with values in {0, 1} and broadcast over
``(..., H, W)``. The zero frequency sits at index ``(H // 2, W // 2)``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from unrolled.physics.calibration import center_mask_1d

Seed = int | tuple[int, ...] | None


@contextlib.contextmanager
def temp_seed(rng: np.random.RandomState, seed: Seed) -> Iterator[None]:
    """Temporarily reseed ``rng`` (restoring its state afterwards) when ``seed`` is given."""
    if seed is None:
        yield
        return
    state = rng.get_state()
    rng.seed(seed)
    try:
        yield
    finally:
        rng.set_state(state)


def _as_int_acceleration(acceleration: float) -> int:
    """Slice steps need integers: accept ``4`` and ``4.0``, reject ``4.5`` like fastMRI does."""
    if acceleration != int(acceleration) or acceleration < 1:
        raise ValueError(f"this mask needs an integer acceleration >= 1, got {acceleration}")
    return int(acceleration)


class MaskFunc:
    """Base class: owns the random state and the (centre fraction, acceleration) choice.

    Args:
        center_fractions: fractions of low-frequency samples kept fully sampled; one
            (or one pair, see ``allow_any_combination``) is drawn uniformly per call.
        accelerations: nominal undersampling factors, same length as
            ``center_fractions`` unless ``allow_any_combination``.
        allow_any_combination: draw the centre fraction and the acceleration
            independently instead of as pairs.
        seed: seed of the internal ``np.random.RandomState``.
    """

    def __init__(
        self,
        center_fractions: Sequence[float],
        accelerations: Sequence[float],
        allow_any_combination: bool = False,
        seed: int | None = None,
    ):
        if len(center_fractions) != len(accelerations) and not allow_any_combination:
            raise ValueError(
                "Number of center fractions should match number of accelerations "
                "if allow_any_combination is False."
            )
        self.center_fractions = list(center_fractions)
        self.accelerations = list(accelerations)
        self.allow_any_combination = allow_any_combination
        self.check_parameters()
        self.rng = np.random.RandomState(seed)

    #: Slice steps need integer accelerations (equispaced and magic masks).
    integer_acceleration = False
    #: The centre block covers ``f`` of each axis it spans: ``f`` of the lines for 1D
    #: masks, ``f * f`` of the grid for 2D masks.
    centre_axes = 1

    def check_parameters(self) -> None:
        """Reject configurations no mask can meet; called by the constructor.

        Every ``(center_fraction, acceleration)`` pair that can be drawn (all combinations
        under ``allow_any_combination``) must satisfy ``0 <= f <= 1``, ``R >= 1``
        (an integer for equispaced and magic masks) and ``f ** d <= 1 / R`` (``d`` = 1 for
        line masks, 2 for grid masks): a centre above ``1 / R`` alone holds more samples
        than acceleration ``R`` allows. ``f = 1 / R`` is met by the centre block alone.

        Raises:
            ValueError: one line naming the parameter and its value, e.g.
                ``center_fractions[0]=0.3 is above 1/accelerations[0] = 1/4 ...``.
        """
        if not self.center_fractions or not self.accelerations:
            raise ValueError(
                f"center_fractions={self.center_fractions} and accelerations="
                f"{self.accelerations} must each hold at least one value"
            )
        for i, f in enumerate(self.center_fractions):
            if not (isinstance(f, int | float) and math.isfinite(f) and f >= 0):
                raise ValueError(f"center_fractions[{i}]={f} must be a number >= 0")
            if f > 1:
                raise ValueError(
                    f"center_fractions[{i}]={f} is above 1: the centre would be wider "
                    "than the k-space"
                )
        for j, r in enumerate(self.accelerations):
            if not (isinstance(r, int | float) and math.isfinite(r) and r >= 1):
                raise ValueError(f"accelerations[{j}]={r} must be a number >= 1")
            if self.integer_acceleration and r != int(r):
                raise ValueError(
                    f"accelerations[{j}]={r} must be an integer for {type(self).__name__}"
                )
        if self.allow_any_combination:
            pairs = [
                (i, j)
                for i in range(len(self.center_fractions))
                for j in range(len(self.accelerations))
            ]
        else:
            pairs = [(i, i) for i in range(len(self.center_fractions))]
        for i, j in pairs:
            f, r = self.center_fractions[i], self.accelerations[j]
            if f**self.centre_axes * r > 1 + 1e-9:
                share = "" if self.centre_axes == 1 else " squared (the block's share of the grid)"
                raise ValueError(
                    f"center_fractions[{i}]={f}{share} is above 1/accelerations[{j}] = 1/{r:g}: "
                    f"the centre alone holds more samples than {r:g}x acceleration allows"
                )

    def check_shape(self, shape: Sequence[int]) -> None:
        """Reject a k-space shape ``(..., H, W)`` this mask cannot sample.

        Raises:
            ValueError: ``shape`` is not ``(..., H, W)`` with positive sides, or (grid masks)
                the calibration block is wider than the k-space or exceeds the target.
        """
        if len(shape) < 2 or min(shape[-2:]) < 1:
            raise ValueError(f"shape should be (..., H, W), got {tuple(shape)}")

    def __call__(
        self, shape: Sequence[int], offset: int | None = None, seed: Seed = None
    ) -> tuple[torch.Tensor, int]:
        """Sample a mask.

        Args:
            shape: complex k-space shape ``(..., H, W)``.
            offset: first sampled line of equispaced masks (random if ``None``);
                ignored by random and 2D masks.
            seed: per-call seed (e.g. a tuple derived from the file name); when given,
                the internal random state is left untouched.

        Returns:
            ``(mask, num_low_frequencies)``: ``float32`` mask of shape ``(1, W)`` for 1D
            masks or ``(H, W)`` for 2D masks, and the width of the fully sampled centre.
        """
        shape = tuple(int(s) for s in shape)
        self.check_shape(shape)
        with temp_seed(self.rng, seed):
            mask, num_low_frequencies = self.sample_mask(shape, offset)
        return torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)), num_low_frequencies

    def choose_acceleration(self) -> tuple[float, float]:
        """Draw ``(center_fraction, acceleration)``; consumes the RNG like fastMRI."""
        if self.allow_any_combination:
            return self.rng.choice(self.center_fractions), self.rng.choice(self.accelerations)
        choice = self.rng.randint(len(self.center_fractions))
        return self.center_fractions[choice], self.accelerations[choice]

    def sample_mask(self, shape: tuple[int, ...], offset: int | None) -> tuple[np.ndarray, int]:
        """Return ``(mask, num_low_frequencies)`` as a numpy array; see ``__call__``."""
        raise NotImplementedError


# --------------------------------------------------------------------------- 1D (fastMRI)


class _LineMaskFunc(MaskFunc):
    """1D mask over the last axis: centre lines OR acceleration lines, shape ``(1, W)``."""

    def sample_mask(self, shape: tuple[int, ...], offset: int | None) -> tuple[np.ndarray, int]:
        num_cols = shape[-1]
        center_fraction, acceleration = self.choose_acceleration()
        num_low_frequencies = int(round(num_cols * center_fraction))
        return self._combine(num_cols, acceleration, offset, num_low_frequencies)

    def _combine(
        self, num_cols: int, acceleration: float, offset: int | None, num_low: int
    ) -> tuple[np.ndarray, int]:
        center = center_mask_1d(num_cols, num_low)
        accel = self.calculate_acceleration_mask(num_cols, acceleration, offset, num_low)
        mask = np.maximum(center, np.asarray(accel, dtype=np.float32))
        return mask.reshape(1, num_cols), num_low

    def calculate_acceleration_mask(
        self, num_cols: int, acceleration: float, offset: int | None, num_low_frequencies: int
    ) -> np.ndarray:
        """Mask of the non-centre lines, shape ``(num_cols,)``."""
        raise NotImplementedError


class RandomMaskFunc(_LineMaskFunc):
    """Centre lines plus lines kept i.i.d. with probability ``(W/R - n_low) / (W - n_low)``.

    The expected (not exact) number of sampled lines is ``W / R``.
    """

    def calculate_acceleration_mask(
        self, num_cols: int, acceleration: float, offset: int | None, num_low_frequencies: int
    ) -> np.ndarray:
        prob = (num_cols / acceleration - num_low_frequencies) / (num_cols - num_low_frequencies)
        return self.rng.uniform(size=num_cols) < prob


class EquispacedMaskFunc(_LineMaskFunc):
    """Centre lines plus every ``R``-th line from ``offset`` (fastMRI's ``EquiSpacedMaskFunc``).

    The centre comes on top, so the effective acceleration is below ``R``.
    ``offset`` defaults to a random integer in ``[0, R)``.
    """

    integer_acceleration = True

    def calculate_acceleration_mask(
        self, num_cols: int, acceleration: float, offset: int | None, num_low_frequencies: int
    ) -> np.ndarray:
        if offset is None:
            offset = self.rng.randint(0, high=round(acceleration))
        mask = np.zeros(num_cols, dtype=np.float32)
        mask[offset :: _as_int_acceleration(acceleration)] = 1
        return mask


EquiSpacedMaskFunc = EquispacedMaskFunc  # fastMRI's spelling


class EquispacedMaskFractionFunc(_LineMaskFunc):
    """Centre lines plus lines at a fractional spacing chosen to reach ``W / R`` in total.

    The spacing is ``R (W - n_low) / (W - n_low R)``; positions are rounded, so lines are
    only approximately equispaced, and the last column is never an acceleration line
    (both kept from fastMRI to match the public multicoil data). When the centre alone
    reaches ``W / R`` lines (``n_low R >= W``, e.g. a centre fraction of exactly ``1 / R``,
    where fastMRI divides by zero), the mask is the centre block alone.
    """

    def calculate_acceleration_mask(
        self, num_cols: int, acceleration: float, offset: int | None, num_low_frequencies: int
    ) -> np.ndarray:
        if num_low_frequencies * acceleration >= num_cols:
            return np.zeros(num_cols)  # the centre alone reaches the target
        adjusted_accel = (acceleration * (num_low_frequencies - num_cols)) / (
            num_low_frequencies * acceleration - num_cols
        )
        if offset is None:
            offset = self.rng.randint(0, high=round(adjusted_accel))
        mask = np.zeros(num_cols)
        samples = np.around(np.arange(offset, num_cols - 1, adjusted_accel)).astype(np.uint)
        mask[samples] = 1.0
        return mask


class MagicMaskFunc(_LineMaskFunc):
    """Offset equispaced lines exploiting conjugate symmetry (Defazio, arXiv:1912.01101).

    Positive and negative frequencies are sampled every ``R`` lines with offsets that
    differ by one, so a line and its conjugate partner are not both acquired.
    """

    integer_acceleration = True

    def calculate_acceleration_mask(
        self, num_cols: int, acceleration: float, offset: int | None, num_low_frequencies: int
    ) -> np.ndarray:
        if acceleration < 1:
            raise ValueError(
                f"acceleration {acceleration} leaves no acceleration lines "
                "(the centre already reaches the target)"
            )
        step = _as_int_acceleration(acceleration)
        if offset is None:
            offset = self.rng.randint(0, high=step)
        if offset % 2 == 0:
            offset_pos, offset_neg = offset + 1, offset + 2
        else:
            offset_pos, offset_neg = offset + 2, offset - 1
        poslen = (num_cols + 1) // 2
        mask_positive = np.zeros(poslen, dtype=np.float32)
        mask_negative = np.zeros(num_cols - poslen, dtype=np.float32)
        mask_positive[offset_pos::step] = 1
        mask_negative[offset_neg::step] = 1
        mask = np.concatenate((mask_positive, np.flip(mask_negative)))
        return np.fft.fftshift(mask)


class MagicMaskFractionFunc(MagicMaskFunc):
    """``MagicMaskFunc`` with the spacing adjusted so the total is about ``round(W / R)``.

    ``n_low`` is clipped to ``[1, round(W / R)]`` and the acceleration lines are spaced by
    ``round(W / (round(W / R) - n_low))``.
    """

    integer_acceleration = False  # only the adjusted spacing is rounded

    def sample_mask(self, shape: tuple[int, ...], offset: int | None) -> tuple[np.ndarray, int]:
        num_cols = shape[-1]
        center_fraction, acceleration = self.choose_acceleration()
        num_low = int(round(num_cols * center_fraction))
        target_columns = round(num_cols / acceleration)
        num_low = max(min(num_low, target_columns), 1)
        adjusted_target = target_columns - num_low
        if adjusted_target <= 0:  # the centre alone reaches the target (fastMRI fails here)
            return center_mask_1d(num_cols, num_low).reshape(1, num_cols), num_low
        adjusted_acceleration = round(num_cols / adjusted_target)
        return self._combine(num_cols, adjusted_acceleration, offset, num_low)
