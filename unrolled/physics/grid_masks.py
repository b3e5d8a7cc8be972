"""2D variable-density k-space masks over the ``(H, W)`` grid: Poisson disc and Gaussian.

Both share the call signature of :class:`unrolled.physics.masks.MaskFunc`,
``mask_func(shape, offset=None, seed=None) -> (mask, num_low_frequencies)``, and keep a fully
sampled, fastMRI-centred calibration block; the mask is ``float32`` in {0, 1} with shape
``(H, W)``, the zero frequency at index ``(H // 2, W // 2)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from unrolled.physics.calibration import center_mask_1d
from unrolled.physics.masks import MaskFunc


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
