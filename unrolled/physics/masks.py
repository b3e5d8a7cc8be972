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


# --------------------------------------------------------------------------- 2D


class _GridMaskFunc(MaskFunc):
    """2D mask over ``(H, W)`` with a fully sampled, fastMRI-centred calibration block.

    Args:
        center_fractions: calibration fractions; the block is
            ``(round(f * H), round(f * W))``. Ignored when ``calib_size`` is given.
        accelerations: target accelerations ``H * W / #samples``.
        allow_any_combination: see ``MaskFunc``.
        seed: seed of the internal random state.
        calib_size: fixed calibration block ``(h, w)``; default ``(24, 24)`` when
            ``center_fractions`` is not given either.
    """

    def __init__(
        self,
        center_fractions: Sequence[float] | None = None,
        accelerations: Sequence[float] = (4,),
        allow_any_combination: bool = False,
        seed: int | None = None,
        *,
        calib_size: tuple[int, int] | None = None,
    ):
        if center_fractions is None:
            center_fractions = [0.0] * len(accelerations)
            if calib_size is None:
                calib_size = (24, 24)
        if calib_size is not None and (len(calib_size) != 2 or min(calib_size) < 0):
            raise ValueError(f"calib_size={calib_size} must be two sizes (h, w) >= 0")
        self.calib_size = None if calib_size is None else (int(calib_size[0]), int(calib_size[1]))
        super().__init__(center_fractions, accelerations, allow_any_combination, seed)

    centre_axes = 2

    def check_parameters(self) -> None:
        """As :meth:`MaskFunc.check_parameters`; a fixed ``calib_size`` is checked per shape."""
        if self.calib_size is not None:
            fractions = self.center_fractions
            self.center_fractions = [0.0] * len(fractions)
            try:
                super().check_parameters()
            finally:
                self.center_fractions = fractions
        else:
            super().check_parameters()

    def check_shape(self, shape: Sequence[int]) -> None:
        """As :meth:`MaskFunc.check_shape`; also rejects a ``calib_size`` wider than the
        k-space or holding more samples than the largest acceleration allows."""
        super().check_shape(shape)
        if self.calib_size is None:
            return
        height, width = shape[-2:]
        ch, cw = self.calib_size
        if ch > height or cw > width:
            raise ValueError(
                f"calib_size={self.calib_size} is wider than the k-space {(height, width)}"
            )
        target = int(round(height * width / max(self.accelerations)))
        if ch * cw > target:
            raise ValueError(
                f"calibration block calib_size={self.calib_size} alone exceeds {target} "
                f"samples (accelerations={self.accelerations} on {height}x{width})"
            )

    def sample_mask(self, shape: tuple[int, ...], offset: int | None) -> tuple[np.ndarray, int]:
        height, width = shape[-2:]
        center_fraction, acceleration = self.choose_acceleration()
        if self.calib_size is not None:
            ch, cw = self.calib_size
        else:
            ch, cw = int(round(center_fraction * height)), int(round(center_fraction * width))
        calib = np.outer(center_mask_1d(height, ch), center_mask_1d(width, cw)).astype(bool)
        target = int(round(height * width / acceleration))
        if target <= ch * cw:  # the block alone reaches the target (f = 1/sqrt(R), rounding)
            return calib, cw
        # (H, W) distance from the centre, each axis normalised by its half-length
        ky = (np.arange(height) - height // 2) / (height / 2)
        kx = (np.arange(width) - width // 2) / (width / 2)
        mask = self.sample_outside(calib, ky[:, None], kx[None, :], target - ch * cw) | calib
        return mask, cw

    def sample_outside(
        self, calib: np.ndarray, ky: np.ndarray, kx: np.ndarray, num: int
    ) -> np.ndarray:
        """Boolean ``(H, W)`` mask of about ``num`` samples outside ``calib``."""
        raise NotImplementedError


class GaussianMaskFunc(_GridMaskFunc):
    """Exactly ``round(H W / R)`` samples: the calibration block plus points drawn
    without replacement with probability proportional to a centred 2D Gaussian.

    Args:
        sigma: standard deviation of the density, in units of the half-width of each
            axis (``0.5`` puts one sigma at a quarter of the matrix). Other arguments as
            in ``_GridMaskFunc``.
    """

    def __init__(self, *args, sigma: float = 0.5, **kwargs):
        super().__init__(*args, **kwargs)
        self.sigma = sigma

    def sample_outside(
        self, calib: np.ndarray, ky: np.ndarray, kx: np.ndarray, num: int
    ) -> np.ndarray:
        log_density = -0.5 * (ky**2 + kx**2) / self.sigma**2  # (H, W)
        # Gumbel-top-k == sequential weighted sampling without replacement
        keys = log_density + self.rng.gumbel(size=calib.shape)
        keys[calib] = -np.inf
        chosen = np.argpartition(keys.ravel(), keys.size - num)[keys.size - num :] if num else []
        mask = np.zeros(calib.size, dtype=bool)
        mask[chosen] = True
        return mask.reshape(calib.shape)


class PoissonDiscMaskFunc(_GridMaskFunc):
    """Variable-density Poisson-disc sampling on the grid, plus the calibration block.

    Grid points are visited in a random order and kept unless they lie within the
    exclusion disc of a kept point. A point at normalised distance ``d`` in [0, sqrt 2]
    from the calibration block excludes ``r = scale * (1 + density_slope * d)`` pixels
    (``r**2`` randomly rounded to the grid, so the density varies smoothly). ``scale`` is
    solved for by a bracketed secant search until the number of samples is within
    ``tol`` of ``round(H W / R)`` (typically 2-4 passes, ~0.1-0.4 s at 320 x 320).

    Args:
        density_slope: growth of the radius with distance (0: uniform Poisson disc).
        tol: relative tolerance on the number of samples.
        Other arguments as in ``_GridMaskFunc``.
    """

    def __init__(self, *args, density_slope: float = 1.0, tol: float = 0.02, **kwargs):
        super().__init__(*args, **kwargs)
        self.density_slope = density_slope
        self.tol = tol

    def sample_outside(
        self, calib: np.ndarray, ky: np.ndarray, kx: np.ndarray, num: int
    ) -> np.ndarray:
        height, width = calib.shape
        cand = np.flatnonzero(~calib.ravel())
        if num <= 0 or num >= cand.size:
            return ~calib if num > 0 else np.zeros_like(calib)
        # (H, W) distance to the calibration block, per axis normalised to [0, 1]
        dy = _dist_outside(np.abs(ky[:, 0]), np.abs(ky[calib.any(1), 0]).max(initial=0.0))
        dx = _dist_outside(np.abs(kx[0]), np.abs(kx[0, calib.any(0)]).max(initial=0.0))
        profile = 1 + self.density_slope * np.hypot(dy[:, None], dx[None, :])

        pad = math.ceil(math.hypot(height, width))  # largest useful radius
        wp = width + 2 * pad
        cand = cand[self.rng.permutation(cand.size)]  # visiting order
        cy, cx = np.divmod(cand, width)
        order = ((cy + pad) * wp + cx + pad).tolist()  # flat indices in the padded grid
        prof = profile.ravel()[cand]
        dither = self.rng.uniform(size=cand.size)

        def count(scale: float) -> list[int]:
            r2 = np.minimum(scale * prof, pad) ** 2
            keys = (np.ceil(r2 - dither) - 1).astype(np.int64).tolist()  # block |o|^2 <= key
            return _dart_throw(order, keys, height + 2 * pad, wp)

        # first guess: a saturated disc packing has about 0.7 / r^2 points per pixel
        lo, hi = 1e-3, float(pad)
        for _ in range(40):
            mid = math.sqrt(lo * hi)
            lo, hi = (mid, hi) if np.minimum(1, 0.7 / (mid * prof) ** 2).sum() > num else (lo, mid)
        # bracketed secant on g = n**-0.5 - num**-0.5, close to linear in scale
        (lo_s, lo_g), (hi_s, hi_g) = (0.0, cand.size**-0.5 - num**-0.5), (math.inf, 0.0)
        scale, best = hi, []
        for _ in range(30):
            kept = count(scale)
            if abs(len(kept) - num) < abs(len(best) - num):
                best = kept
            if abs(len(kept) - num) <= self.tol * (num + calib.sum()):
                break
            g = max(len(kept), 1) ** -0.5 - num**-0.5
            (lo_s, lo_g), (hi_s, hi_g) = (
                ((scale, g), (hi_s, hi_g)) if g < 0 else ((lo_s, lo_g), (scale, g))
            )
            if math.isinf(hi_s):
                scale *= 1.5
                continue
            step = hi_s - lo_s
            scale = min(max(lo_s - lo_g * step / (hi_g - lo_g), lo_s + step / 10), hi_s - step / 10)
        py, px = np.divmod(np.asarray(best, dtype=np.int64), wp)
        mask = np.zeros_like(calib)
        mask[py - pad, px - pad] = True
        return mask


def _dist_outside(k: np.ndarray, edge: float) -> np.ndarray:
    """``max(k - edge, 0)`` rescaled to [0, 1]."""
    d = np.maximum(k - edge, 0.0)
    return d / d.max() if d.max() > 0 else d


def _dart_throw(order: list[int], keys: list[int], hp: int, wp: int) -> list[int]:
    """Sequential dart throwing on a padded ``(hp, wp)`` grid.

    Visits flat indices ``order``; a point not yet blocked is kept and blocks every grid
    point at squared distance ``<= key``. Returns the kept flat indices.
    """
    buf = bytearray(hp * wp)
    blocked = np.frombuffer(buf, dtype=np.uint8).reshape(hp, wp)
    footprints: dict[int, tuple[int, np.ndarray]] = {}
    kept = []
    for idx, key in zip(order, keys, strict=True):
        if buf[idx]:
            continue
        kept.append(idx)
        if key <= 0:
            continue  # blocks only itself, and every point is visited once
        fp = footprints.get(key)
        if fp is None:
            h = math.isqrt(key)
            o = np.arange(-h, h + 1)
            fp = footprints[key] = (h, (o[:, None] ** 2 + o[None, :] ** 2 <= key).astype(np.uint8))
        h, disc = fp
        y, x = divmod(idx, wp)
        view = blocked[y - h : y + h + 1, x - h : x + h + 1]
        np.bitwise_or(view, disc, out=view)
    return kept


# --------------------------------------------------------------------------- helpers

MASK_TYPES: dict[str, type[MaskFunc]] = {
    "random": RandomMaskFunc,
    "equispaced": EquispacedMaskFunc,
    "equispaced_fraction": EquispacedMaskFractionFunc,
    "magic": MagicMaskFunc,
    "magic_fraction": MagicMaskFractionFunc,
    "poisson": PoissonDiscMaskFunc,
    "gaussian": GaussianMaskFunc,
}


def create_mask_func(
    mask_type: str,
    center_fractions: Sequence[float],
    accelerations: Sequence[float],
    seed: int | None = None,
    allow_any_combination: bool = False,
) -> MaskFunc:
    """Build a mask function by name (fastMRI's ``create_mask_for_mask_type`` names plus
    ``'poisson'`` and ``'gaussian'``, whose calibration block is ``round(f * H/W)``)."""
    try:
        cls = MASK_TYPES[mask_type]
    except KeyError:
        raise ValueError(f"{mask_type!r} not supported; choose from {sorted(MASK_TYPES)}") from None
    return cls(center_fractions, accelerations, allow_any_combination, seed)


def effective_acceleration(mask: torch.Tensor | np.ndarray) -> float:
    """Grid points over sampled points of a mask broadcast over the ``(H, W)`` grid.

    Args:
        mask: ``(1, W)`` 1D mask, ``(H, W)`` 2D mask, or any shape with leading batch
            axes; values in {0, 1}. Broadcasting over ``H`` does not change the ratio.

    Returns:
        ``mask.size / mask.sum()`` (``inf`` for an empty mask).
    """
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    total = float(m.astype(np.float64).sum())
    return m.size / total if total > 0 else math.inf
