"""Rigid in-plane motion of complex images, and the multi-acquisition SENSE operator.

A rigid motion has three parameters ``theta = (dy, dx, angle)``: a translation
in pixels along the rows (``dy``, downwards) and the columns (``dx``, to the
right), and a rotation ``angle`` in degrees, counter-clockwise as displayed
(row 0 on top, like ``torch.rot90`` and ``numpy.rot90``), about the pixel
``(H // 2, W // 2)`` (the zero frequency of the centered FFT, the isocentre).
Pixels are taken to be square (true of fastMRI's files, whose readout is
oversampled twice over twice the field of view).

The transform ``T(theta)`` first rotates, then translates: the content at
position ``p`` (relative to the centre) moves to ``R(angle) p + (dy, dx)``.
Both parts are exact Fourier operations, so ``T`` is unitary:

- a translation is a linear phase in k-space (fractional shifts included; an
  integer shift equals ``torch.roll``);
- a rotation is three shears (Unser, Thevenaz and Yaroslavsky, IEEE TIP
  4:1371-1381, 1995): ``R = S_col(tan(a/2)) S_row(-sin a) S_col(tan(a/2))``,
  each shear a per-row (or per-column) 1D Fourier phase ramp.

Hence ``T(theta)^H = T(theta)^-1``, exactly, with no interpolation adjoint to
approximate, and ``T`` is differentiable in ``theta`` by autograd. Images are
periodic in the field of view (as Cartesian MRI sees them: content leaving
the phase-encoding field of view wraps around), so shifts by a whole field
of view and full turns are identities. Rotations are interpolation-free for
band-limited images (0.1 % of the peak on a Gaussian blob at 45 degrees); at
90 degrees the shears are whole pixels and the rotation is exactly ``rot90``
about the centre pixel. Towards 180 degrees ``tan(angle / 2)`` diverges and
the shears grow without bound: keep ``|angle|`` well below 180.

The multi-acquisition operator :class:`MotionSenseOp` maps one image to the
coil k-space of ``N`` acquisitions, the object moved by ``theta_n`` in each
while the coils stay put: ``y_n = M_n F S T(theta_n) x``.
"""

from __future__ import annotations

import math

import torch

from unrolled.physics.fft import fft2c, ifft2c
from unrolled.physics.operators import LinearOperator

PARAM_NAMES = ("dy", "dx", "angle")
"""Columns of a motion parameter tensor: pixels, pixels, degrees."""


def _coordinates(n: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel offsets from the centre ``n // 2`` and FFT frequencies in cycles per pixel.

    Both ``(n,)`` real, in the real dtype of ``like``. The frequencies lie in
    ``[-1/2, 1/2)`` (the band-limited choice), in ``torch.fft.fft`` order.
    """
    real = like.real.dtype
    pos = torch.arange(n, dtype=real, device=like.device) - n // 2
    freq = torch.fft.fftfreq(n, dtype=real, device=like.device)
    return pos, freq


def _params_like(params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``params`` as ``x``'s real dtype, checked: ``(..., 3)`` broadcastable to ``x[..., 0, 0]``."""
    params = torch.as_tensor(params)
    if params.shape[-1:] != (3,):
        raise ValueError(f"motion parameters must be (..., 3), got shape {tuple(params.shape)}")
    if params.is_complex():
        raise TypeError("motion parameters must be real")
    return params.to(dtype=x.real.dtype, device=x.device)


def translate(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Shift images by a linear phase in k-space: ``out(p) = x(p - shift)``, periodic.

    Args:
        x: complex images ``(..., H, W)``.
        shift: ``(..., 2)`` real, ``(dy, dx)`` in pixels, broadcastable to
            ``x.shape[:-2]``.

    Returns:
        Shifted images, shape of ``x``.
    """
    shift = torch.as_tensor(shift, dtype=x.real.dtype, device=x.device)
    h, w = x.shape[-2:]
    _, fy = _coordinates(h, x)
    _, fx = _coordinates(w, x)
    dy, dx = shift[..., 0, None, None], shift[..., 1, None, None]  # (..., 1, 1)
    phase = -2 * math.pi * (dy * fy[:, None] + dx * fx[None, :])  # (..., H, W)
    k = torch.fft.fft2(x, norm="ortho")
    return torch.fft.ifft2(k * torch.polar(torch.ones_like(phase), phase), norm="ortho")


def shear(x: torch.Tensor, amount: torch.Tensor, axis: int) -> torch.Tensor:
    """Fourier shear: shift each line along ``axis`` by ``amount`` times its offset.

    ``axis=-1``: row ``r`` (offset ``r - H // 2``) moves ``amount * (r - H // 2)``
    pixels along the columns; ``axis=-2``: column ``c`` moves
    ``amount * (c - W // 2)`` pixels along the rows. Unitary; its adjoint and
    inverse is the shear by ``-amount``.

    Args:
        x: complex images ``(..., H, W)``.
        amount: shear factor, real, broadcastable to ``x.shape[:-2]``.
        axis: -1 (along columns) or -2 (along rows).

    Returns:
        Sheared images, shape of ``x``.

    Raises:
        ValueError: if ``axis`` is neither -1 nor -2.
    """
    if axis not in (-1, -2):
        raise ValueError(f"axis must be -1 or -2, got {axis}")
    amount = torch.as_tensor(amount, dtype=x.real.dtype, device=x.device)
    other = -3 - axis  # the axis whose offset sets the shift
    pos, _ = _coordinates(x.shape[other], x)
    _, freq = _coordinates(x.shape[axis], x)
    a = amount[..., None, None]  # (..., 1, 1)
    if axis == -1:
        phase = -2 * math.pi * a * pos[:, None] * freq[None, :]  # (..., H, W)
    else:
        phase = -2 * math.pi * a * freq[:, None] * pos[None, :]  # (..., H, W)
    k = torch.fft.fft(x, dim=axis, norm="ortho")
    return torch.fft.ifft(k * torch.polar(torch.ones_like(phase), phase), dim=axis, norm="ortho")


def rotate(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate images counter-clockwise (as displayed) about ``(H // 2, W // 2)``.

    Three Fourier shears: unitary, ``rotate(rotate(x, a), -a) == x``.

    Args:
        x: complex images ``(..., H, W)``.
        angle: degrees, real, broadcastable to ``x.shape[:-2]``; ``|angle| < 180``.
    """
    rad = torch.deg2rad(torch.as_tensor(angle, dtype=x.real.dtype, device=x.device))
    t, s = torch.tan(rad / 2), torch.sin(rad)
    x = shear(x, t, axis=-1)
    x = shear(x, -s, axis=-2)
    return shear(x, t, axis=-1)


def rigid_transform(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """``T(theta) x``: rotate by ``angle``, then translate by ``(dy, dx)``.

    Args:
        x: complex images ``(..., H, W)``.
        params: ``(..., 3)`` = ``(dy, dx, angle)`` (pixels, pixels, degrees),
            broadcastable to ``x.shape[:-2]``; differentiable.

    Returns:
        Moved images, shape of ``x``.
    """
    params = _params_like(params, x)
    return translate(rotate(x, params[..., 2]), params[..., :2])


def rigid_transform_adjoint(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """``T(theta)^H x = T(theta)^-1 x``: translate back, then rotate back."""
    params = _params_like(params, x)
    return rotate(translate(x, -params[..., :2]), -params[..., 2])


class RigidMotion(LinearOperator):
    """The unitary operator ``T(theta)`` on complex images ``(..., H, W)``.

    Args:
        params: ``(..., 3)`` = ``(dy, dx, angle)``, broadcastable to the
            images' leading shape.
    """

    def __init__(self, params: torch.Tensor) -> None:
        self.params = params

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return rigid_transform(x, self.params)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return rigid_transform_adjoint(y, self.params)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """Identity, up to rounding: ``T`` is unitary."""
        return x


class MotionSenseOp(LinearOperator):
    """SENSE over ``N`` acquisitions of a moving object: ``y_n = M_n F (S T(theta_n) x)``.

    The coils are fixed to the scanner; the object moves by ``theta_n`` in
    acquisition ``n`` (``theta_n = 0`` is the frame of ``x``).

    Args:
        maps: coil sensitivities ``(B, C, H, W)`` complex.
        masks: sampling masks broadcastable to ``(B, N, 1, H, W)``, e.g.
            ``(B, N, 1, 1, W)`` for column masks; 1.0 where sampled.
        params: motion ``(B, N, 3)`` = ``(dy, dx, angle)`` per acquisition.

    ``A(x)``: image ``(B, H, W)`` -> k-space ``(B, N, C, H, W)``.
    ``A.H(y)``: k-space ``(B, N, C, H, W)`` -> image ``(B, H, W)``.

    Raises:
        ValueError: if ``maps``, ``masks`` or ``params`` do not have the shapes above.
    """

    def __init__(self, maps: torch.Tensor, masks: torch.Tensor, params: torch.Tensor) -> None:
        if maps.dim() != 4:
            raise ValueError(f"maps must be (B, C, H, W), got shape {tuple(maps.shape)}")
        if params.dim() != 3 or params.shape[-1] != 3:
            raise ValueError(f"params must be (B, N, 3), got shape {tuple(params.shape)}")
        if masks.dim() != 5:
            raise ValueError(f"masks must be (B, N, 1, H, W)-like, got shape {tuple(masks.shape)}")
        self.maps = maps.unsqueeze(1)  # (B, 1, C, H, W)
        self.masks = masks
        self.params = params

    @property
    def num_acquisitions(self) -> int:
        return self.params.shape[1]

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        moved = rigid_transform(x.unsqueeze(1), self.params)  # (B, N, H, W)
        return self.masks * fft2c(self.maps * moved.unsqueeze(2))  # (B, N, C, H, W)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        coil = (self.maps.conj() * ifft2c(self.masks * y)).sum(dim=2)  # (B, N, H, W)
        return rigid_transform_adjoint(coil, self.params).sum(dim=1)  # (B, H, W)


def simulate_acquisitions(
    image: torch.Tensor,
    maps: torch.Tensor,
    masks: torch.Tensor,
    params: torch.Tensor,
    noise_std: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``N`` undersampled multicoil acquisitions of a moving object, with independent noise.

    ``y_n = M_n (F S T(theta_n) x + e_n)`` with complex Gaussian noise of
    ``E|e|^2 = noise_std^2`` per k-space sample (real and imaginary parts
    each ``noise_std / sqrt(2)``), independent across samples, coils and
    acquisitions, the convention of :mod:`unrolled.data.synth`.

    Args:
        image: the object in the reference frame, ``(B, H, W)`` complex.
        maps: coil sensitivities ``(B, C, H, W)``.
        masks: broadcastable to ``(B, N, 1, H, W)``.
        params: true motion ``(B, N, 3)``.
        noise_std: noise level ``sigma``.
        generator: random source of the noise (``None``: torch's global one).

    Returns:
        Masked k-space ``(B, N, C, H, W)``, the dtype of ``image``.
    """
    op = MotionSenseOp(maps, masks, params)
    clean = op(image)  # (B, N, C, H, W)
    if noise_std <= 0:
        return clean
    real = clean.real.dtype
    shape = clean.shape
    noise = torch.complex(
        torch.randn(shape, generator=generator, dtype=real),
        torch.randn(shape, generator=generator, dtype=real),
    ).to(clean.device) * (noise_std / math.sqrt(2))
    return clean + masks * noise
