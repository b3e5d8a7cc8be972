"""Immutable linear MRI forward operators with adjoint and normal operators.

Each operator is built per batch from its data (mask, sensitivity maps) and
never mutated. ``A(x)`` applies it, ``A.H(y)`` its adjoint, ``A.normal(x)``
the normal operator ``A^H A``; ``A.H`` is itself an operator whose ``.H`` is
``A`` again (the operator algebra of sigpy, without its generality).

Shapes follow the package convention: complex images ``(B, H, W)``, coil
k-space ``(B, C, H, W)``, masks broadcastable to ``(B, 1, H, W)`` (1.0 where
sampled). Everything is native complex; masks are real.
"""

from __future__ import annotations

import torch

from unrolled.physics.fft import fft2c, ifft2c


class LinearOperator:
    """A linear map with an adjoint. Subclasses define ``_forward``/``_adjoint``."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def H(self) -> LinearOperator:  # noqa: N802 - the conventional name
        """The adjoint operator."""
        return _Adjoint(self)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``A^H A x``."""
        return self._adjoint(self._forward(x))


class _Adjoint(LinearOperator):
    def __init__(self, op: LinearOperator) -> None:
        self._op = op

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._op._adjoint(x)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self._op._forward(y)

    @property
    def H(self) -> LinearOperator:  # noqa: N802
        return self._op


class CartesianOp(LinearOperator):
    """Undersampled Cartesian Fourier transform ``y = M F x``, per coil.

    Serves single-coil data (``x`` of shape ``(B, H, W)``) and coil images
    (``(B, C, H, W)``) alike: the FFT acts on the last two axes.

    Args:
        mask: sampling mask broadcastable to the k-space shape, 1.0 where
            sampled (e.g. ``(B, 1, H, W)``).
    """

    def __init__(self, mask: torch.Tensor) -> None:
        self.mask = mask

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mask * fft2c(x)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return ifft2c(self.mask * y)


class SenseOp(LinearOperator):
    """Multicoil SENSE operator ``y_c = M F (S_c x)``.

    Args:
        maps: coil sensitivity maps, ``(B, C, H, W)`` complex.
        mask: sampling mask broadcastable to ``(B, C, H, W)``, e.g. ``(B, 1, H, W)``.

    ``A(x)``: image ``(B, H, W)`` -> k-space ``(B, C, H, W)``.
    ``A.H(y)``: k-space ``(B, C, H, W)`` -> image ``(B, H, W)``.
    """

    def __init__(self, maps: torch.Tensor, mask: torch.Tensor) -> None:
        if maps.dim() != 4:
            raise ValueError(f"maps must be (B, C, H, W), got shape {tuple(maps.shape)}")
        self.maps = maps
        self.mask = mask

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mask * coil_kspace(x, self.maps)  # (B, C, H, W)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return (self.maps.conj() * ifft2c(self.mask * y)).sum(dim=1)  # (B, H, W)


def expand_coils(x: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """Coil images ``S_c x``: ``(B, H, W)`` -> ``(B, C, H, W)``."""
    return maps * x.unsqueeze(1)


def coil_kspace(x: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """Fully sampled coil k-space of an image, ``F S_c x``: ``(B, H, W)`` -> ``(B, C, H, W)``
    (the SENSE forward model without the mask)."""
    return fft2c(expand_coils(x, maps))


def combine_coils(coil_images: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """SENSE coil combination ``sum_c conj(S_c) x_c``: ``(B, C, H, W)`` -> ``(B, H, W)``."""
    return (maps.conj() * coil_images).sum(dim=1)
