"""Fuse N undersampled acquisitions of one slice, estimating rigid motion between them.

The acquisitions see the same object (same contrast) through the same coils,
with different sampling masks, independent noise, and the object moved
rigidly in plane between them. With ``x`` the image in the frame of
acquisition 0 and :class:`~unrolled.physics.motion.MotionSenseOp` ``A(theta)``
stacking ``y_n = M_n F S T(theta_n) x``, :class:`MotionFusion` minimises

    sum_n ||M_n F S T(theta_n) x - y_n||^2 + lam ||x||^2

jointly over ``x`` and ``theta_1 .. theta_{N-1}`` (``theta_0 = 0`` fixes the
reference frame), alternating

1. the image: CG-SENSE on the stacked normal equations
   ``(A^H A + lam I) x = A^H y`` (warm-started), and
2. the motion: L-BFGS on the k-space data residual with ``x`` fixed, the
   gradient flowing through the Fourier translation and shear rotation.
   Early rounds weigh the residual with a Gaussian low-pass in k-space (a fit
   of blurred images), which widens the capture range; later rounds use all
   of k-space, which sets the precision.

The image starts from acquisition 0 alone (the reference frame, free of
motion blur), so the first motion fit registers each acquisition to it.
``estimate_motion=False`` fuses assuming no motion (the naive average of the
data), and ``motion=`` given to the call fuses with known motion (the oracle).

Coil maps come from ESPIRiT on the calibration region averaged over the
acquisitions: the coils do not move, so ``mean_n S_c T(theta_n) x`` is still
consistent with the maps ``S_c`` (and less noisy).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from unrolled.data.acquisitions import AcquisitionSet, read_acquisitions
from unrolled.data.errors import DataError
from unrolled.data.transforms import MaskFunc
from unrolled.models.sensitivity import EspiritSensitivity
from unrolled.physics.coils import center_crop, espirit, rss
from unrolled.physics.fft import fft2c, ifft2c
from unrolled.physics.motion import MotionSenseOp, rigid_transform
from unrolled.physics.operators import combine_coils
from unrolled.physics.solvers import conjugate_gradient


@dataclass(frozen=True)
class FusionResult:
    """What :class:`MotionFusion` returns for one slice.

    Attributes:
        image: complex image in the frame of acquisition 0, ``(H, W)``.
        magnitude: its RSS-convention magnitude ``RSS(S x)``, ``(H, W)``
            float32 (full k-space size; crop to the recon size for metrics).
        motion: motion per acquisition ``(N, 3)`` = ``(dy, dx, angle)``
            (pixels, pixels, degrees); row 0 is zero. The estimate, the
            given motion (oracle), or zeros (``estimate_motion=False``).
        maps: coil sensitivities ``(C, H, W)``.
        residual: relative data residual ``||A x - y|| / ||y||`` after each
            image update.
    """

    image: torch.Tensor
    magnitude: torch.Tensor
    motion: torch.Tensor
    maps: torch.Tensor
    residual: list[float]


class MotionFusion:
    """Joint reconstruction of one image from N acquisitions, with rigid motion estimation.

    Args:
        lam: Tikhonov weight of the image update, relative to the largest
            eigenvalue of one acquisition's ``A_n^H A_n`` (1 for normalised
            maps), the convention of :class:`~unrolled.methods.classical.CGSense`.
            The same prior for any ``N``: more data, relatively less weight.
        estimate_motion: estimate the motion; ``False`` assumes none.
        lowpass: one motion round per entry, each followed by an image
            update: the standard deviation (cycles per pixel) of the Gaussian
            k-space weight of that round's residual, ``None`` for no weight.
        cg_iterations: CG iterations per image update.
        final_cg_iterations: CG iterations of the last image update.
        motion_iterations: L-BFGS iterations per motion round.
        espirit: the ESPIRiT estimator of the coil maps.

    Raises:
        ValueError: if ``lam`` is negative.
    """

    def __init__(
        self,
        lam: float = 0.0172,
        estimate_motion: bool = True,
        lowpass: Sequence[float | None] = (0.04, 0.08, None, None),
        cg_iterations: int = 15,
        final_cg_iterations: int = 30,
        motion_iterations: int = 25,
        espirit: EspiritSensitivity | None = None,
    ) -> None:
        if lam < 0:
            raise ValueError(f"lam must be non-negative, got {lam}")
        self.lam = lam
        self.estimate_motion = estimate_motion
        self.lowpass = list(lowpass)
        self.cg_iterations = cg_iterations
        self.final_cg_iterations = final_cg_iterations
        self.motion_iterations = motion_iterations
        self.espirit = espirit or EspiritSensitivity(cache_size=0)

    def coil_maps(
        self, kspace: torch.Tensor, masks: torch.Tensor, num_low_frequencies: int
    ) -> torch.Tensor:
        """ESPIRiT maps ``(C, H, W)`` from the calibration region averaged over acquisitions."""
        mean = (kspace * masks).sum(0) / masks.sum(0).clamp_min(1)  # (C, H, W)
        nlf = torch.tensor([int(num_low_frequencies)])
        return self.espirit(mean[None], masks[:1], nlf)[0]

    def __call__(
        self,
        kspace: torch.Tensor,
        masks: torch.Tensor,
        num_low_frequencies: int,
        motion: torch.Tensor | None = None,
    ) -> FusionResult:
        """Fuse one slice.

        Args:
            kspace: undersampled coil k-space of each acquisition ``(N, C, H, W)``.
            masks: their sampling masks, broadcastable to ``(N, 1, H, W)``.
            num_low_frequencies: width of the calibration region common to all.
            motion: known motion ``(N, 3)`` (the oracle); skips the estimation.

        Returns:
            The :class:`FusionResult`.

        Raises:
            ValueError: if ``kspace`` is not ``(N, C, H, W)``.
        """
        if kspace.dim() != 4:
            raise ValueError(f"kspace must be (N, C, H, W), got shape {tuple(kspace.shape)}")
        n, _, h, w = kspace.shape
        masks = torch.broadcast_to(masks, (n, 1, h, w)).to(kspace.real.dtype)
        maps = self.coil_maps(kspace, masks, num_low_frequencies).to(kspace.dtype)
        y, m, s = kspace[None], masks[None], maps[None]  # (1, N, C, H, W), (1, N, 1, H, W), ...
        real = kspace.real.dtype
        if motion is not None:
            params = torch.as_tensor(motion, dtype=real, device=kspace.device).reshape(1, n, 3)
        else:
            params = torch.zeros(1, n, 3, dtype=real, device=kspace.device)
        residual: list[float] = []
        estimate = self.estimate_motion and motion is None and n > 1
        if estimate:  # start from the reference acquisition alone
            x = self._image(s, m[:, :1], params[:, :1], y[:, :1], None, self.cg_iterations)
            for sigma in self.lowpass:
                params = fit_motion(x, s, m, y, params, sigma, self.motion_iterations)
                x = self._image(s, m, params, y, x, self.cg_iterations)
                residual.append(_relative_residual(x, s, m, params, y))
            x = self._image(s, m, params, y, x, self.final_cg_iterations)
        else:
            x = self._image(s, m, params, y, None, self.final_cg_iterations)
        residual.append(_relative_residual(x, s, m, params, y))
        image = x[0]
        return FusionResult(
            image=image,
            magnitude=rss(maps * image, dim=0).float(),
            motion=params[0].detach(),
            maps=maps,
            residual=residual,
        )

    @torch.no_grad()
    def _image(self, maps, masks, params, y, x0, iterations) -> torch.Tensor:
        """CG-SENSE on the stacked operator: ``(A^H A + lam I) x = A^H y``, ``(1, H, W)``."""
        op = MotionSenseOp(maps, masks, params)
        return conjugate_gradient(
            lambda v: op.normal(v) + self.lam * v, op.H(y), x0=x0, max_iter=iterations, tol=1e-6
        )


@dataclass(frozen=True)
class FusedVolume:
    """The fusion of every slice of an :class:`~unrolled.data.acquisitions.AcquisitionSet`.

    Attributes:
        reconstruction: ``(slices, h, w)`` float32 at the recon size, in the
            frame of acquisition 0.
        motion: ``(slices, N, 3)`` float32, ``(dy, dx, angle)`` per slice and
            acquisition (pixels, pixels, degrees); acquisition 0 is zero.
        residual: ``(slices,)`` final relative data residual.
    """

    reconstruction: np.ndarray
    motion: np.ndarray
    residual: np.ndarray


def fuse_volume(
    fusion: MotionFusion,
    aset: AcquisitionSet,
    mask_func: MaskFunc | None = None,
    device: torch.device | str = "cpu",
    on_slice: Callable[[int], None] | None = None,
) -> FusedVolume:
    """Fuse every slice, one at a time (each slice has its own motion).

    Args:
        fusion: the estimator.
        aset: the inputs (:func:`~unrolled.data.acquisitions.open_acquisitions`).
        mask_func: undersamples acquisitions stored fully sampled.
        device: where to compute.
        on_slice: called with each slice index when it is done.

    Raises:
        DataError: a slice is unreadable, cannot be fused (e.g. a calibration
            region too small for ESPIRiT), or the result is not finite.
    """
    n, s = aset.num_acquisitions, aset.num_slices
    volume = np.empty((s, *aset.crop_size), dtype=np.float32)
    motion = np.empty((s, n, 3), dtype=np.float32)
    residual = np.empty(s, dtype=np.float32)
    for i in range(s):
        acq = read_acquisitions(aset, i, mask_func)
        try:
            result = fusion(acq.kspace.to(device), acq.masks.to(device), acq.num_low_frequencies)
        except ValueError as e:
            raise DataError(aset.paths[0], f"cannot fuse slice {i}: {e}") from None
        image = center_crop(result.magnitude, aset.crop_size).cpu().numpy()
        if not np.isfinite(image).all():
            raise DataError(aset.paths[0], f"the fusion of slice {i} holds NaN or Inf values")
        volume[i] = image
        motion[i] = result.motion.cpu().numpy()
        residual[i] = result.residual[-1]
        if on_slice is not None:
            on_slice(i)
    return FusedVolume(volume, motion, residual)


def lowpass_weight(shape: tuple[int, int], sigma: float | None, like: torch.Tensor):
    """Gaussian k-space weight ``exp(-|f|^2 / (2 sigma^2))``, ``f`` in cycles per pixel.

    Centered layout ``(H, W)`` (zero frequency at ``(H // 2, W // 2)``); all
    ones when ``sigma`` is ``None``.
    """
    h, w = shape
    real = like.real.dtype
    if sigma is None:
        return torch.ones(h, w, dtype=real, device=like.device)
    fy = (torch.arange(h, dtype=real, device=like.device) - h // 2) / h
    fx = (torch.arange(w, dtype=real, device=like.device) - w // 2) / w
    f2 = fy[:, None] ** 2 + fx[None, :] ** 2
    return torch.exp(-f2 / (2 * sigma**2))


def fit_motion(
    x: torch.Tensor,
    maps: torch.Tensor,
    masks: torch.Tensor,
    y: torch.Tensor,
    params: torch.Tensor,
    sigma: float | None = None,
    iterations: int = 25,
) -> torch.Tensor:
    """Motion of acquisitions ``1 .. N-1`` that best explains their data, image fixed.

    Minimises ``sum_n ||w * (M_n F S T(theta_n) x - y_n)||^2`` with L-BFGS
    (strong Wolfe line search) from ``params``; ``theta_0`` stays as given.

    Args:
        x: image ``(1, H, W)``.
        maps: ``(1, C, H, W)``.
        masks: ``(1, N, 1, H, W)``.
        y: k-space ``(1, N, C, H, W)``.
        params: starting motion ``(1, N, 3)``.
        sigma: Gaussian low-pass of the weight ``w`` (:func:`lowpass_weight`).
        iterations: L-BFGS iterations.

    Returns:
        The motion ``(1, N, 3)``, detached, wrapped by :func:`wrap_motion`.
    """
    x, maps, y = x.detach(), maps.detach(), y.detach()
    weight = lowpass_weight(y.shape[-2:], sigma, y) * masks[:, 1:]  # (1, N-1, 1, H, W)
    target = weight * y[:, 1:]  # (1, N-1, C, H, W)
    scale = 1.0 / target.abs().pow(2).sum().clamp_min(torch.finfo(weight.dtype).tiny)
    coils = maps.unsqueeze(1)  # (1, 1, C, H, W)
    # Optimise in double precision: line searches need an accurate loss.
    theta = params[:, 1:].detach().double().clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [theta],
        lr=1,
        max_iter=iterations,
        tolerance_grad=1e-10,
        tolerance_change=1e-14,
        history_size=10,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        moved = rigid_transform(x.unsqueeze(1), theta.to(weight.dtype))  # (1, N-1, H, W)
        pred = weight * fft2c(coils * moved.unsqueeze(2))  # (1, N-1, C, H, W)
        loss = (pred - target).abs().pow(2).sum().double() * scale
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    out = params.clone()
    out[:, 1:] = wrap_motion(theta.detach(), y.shape[-2:]).to(params.dtype)
    return out


def wrap_motion(params: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Equivalent motion with ``dy`` in ``[-H/2, H/2)``, ``dx`` in ``[-W/2, W/2)``, angle in
    ``[-180, 180)``: the Fourier shift by a whole field of view, and a full turn, are identities.
    """
    h, w = shape
    period = params.new_tensor([h, w, 360.0])
    return torch.remainder(params + period / 2, period) - period / 2


def _relative_residual(x, maps, masks, params, y) -> float:
    op = MotionSenseOp(maps, masks, params)
    with torch.no_grad():
        return float((op(x) - y).norm() / y.norm().clamp_min(torch.finfo(y.real.dtype).tiny))


def motion_error(estimated: torch.Tensor, true: torch.Tensor) -> dict[str, float]:
    """Errors of estimated motion ``(..., N, 3)`` against the truth, acquisition 0 excluded.

    Returns:
        ``translation_mean``/``translation_max``: Euclidean error of
        ``(dy, dx)`` in pixels; ``angle_mean``/``angle_max``: absolute error
        in degrees, taken modulo a full turn (at most 180).
    """
    est = torch.as_tensor(estimated, dtype=torch.float64)
    ref = torch.as_tensor(true, dtype=torch.float64)
    diff = (est - ref)[..., 1:, :].reshape(-1, 3)
    if diff.numel() == 0:
        return dict.fromkeys(
            ("translation_mean", "translation_max", "angle_mean", "angle_max"), 0.0
        )
    diff[:, 2] = torch.remainder(diff[:, 2] + 180, 360) - 180
    trans = diff[:, :2].norm(dim=1)
    angle = diff[:, 2].abs()
    return {
        "translation_mean": float(trans.mean()),
        "translation_max": float(trans.max()),
        "angle_mean": float(angle.mean()),
        "angle_max": float(angle.max()),
    }


def object_and_maps(kspace: torch.Tensor, calib: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a fully sampled slice into an object image and coil maps, to simulate motion.

    ESPIRiT maps (crop 0) from the centre ``calib x calib`` block, and the
    image ``x = sum_c conj(S_c) F^-1 k_c``: moving ``x`` under fixed maps is
    the motion model of :class:`~unrolled.physics.motion.MotionSenseOp`.

    Args:
        kspace: fully sampled coil k-space ``(C, H, W)``.
        calib: calibration size (clipped to the k-space size).

    Returns:
        ``(image (H, W), maps (C, H, W))``, the dtype of ``kspace``.
    """
    _, h, w = kspace.shape
    maps = espirit(kspace[None], calib=(min(calib, h), min(calib, w)), crop=0.0)[0]
    return combine_coils(ifft2c(kspace)[None], maps[None])[0], maps


def moved_magnitude(image: torch.Tensor, maps: torch.Tensor, params: torch.Tensor):
    """``RSS(S T(theta) x)``: the motion-free reference of an acquisition, ``(H, W)``."""
    return rss(maps * rigid_transform(image, params), dim=0)


def random_motion(
    num_acquisitions: int,
    max_shift: float = 3.0,
    max_angle: float = 3.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Uniformly random motion ``(N, 3)``, acquisition 0 at rest.

    Each of ``dy``, ``dx`` is uniform in ``[-max_shift, max_shift]`` pixels and
    ``angle`` uniform in ``[-max_angle, max_angle]`` degrees.
    """
    u = torch.rand(num_acquisitions, 3, generator=generator, dtype=torch.float64) * 2 - 1
    params = u * torch.tensor([max_shift, max_shift, max_angle], dtype=torch.float64)
    params[0] = 0
    return params
