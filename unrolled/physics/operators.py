"""Immutable linear MRI forward operators with adjoint and normal operators.

Each operator is built per batch from its data (mask, sensitivity maps) and
never mutated. ``A(x)`` applies it, ``A.H(y)`` its adjoint, ``A.normal(x)``
the normal operator ``A^H A``; ``A.H`` is itself an operator whose ``.H`` is
``A`` again (the operator algebra of sigpy, without its generality).

Shapes follow the package convention: complex images ``(B, H, W)``, coil
k-space ``(B, C, H, W)``, masks broadcastable to ``(B, 1, H, W)`` (1.0 where
sampled). Everything is native complex; masks are real. With ``M`` sets of
coil maps (soft-SENSE) the maps are ``(B, M, C, H, W)`` and the images
``(B, M, H, W)``; see :class:`SenseOp`.
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
    """Multicoil SENSE operator ``y_c = M F (sum_m S_{m,c} x_m)``, one or more sets of maps.

    One set of maps (the usual SENSE model): ``maps`` ``(B, C, H, W)``, image ``(B, H, W)``.
    ``M`` sets (soft-SENSE, ESPIRiT with more than one eigenvector per pixel; Uecker et al.,
    MRM 71:990-1001, 2014, eq. 13; BART ``pics`` with ``ecalib -m M`` maps): ``maps``
    ``(B, M, C, H, W)``, image ``(B, M, H, W)``, one complex image per set, and the coil
    images are the sum over sets. The set axis sits where the coil axis of a single set
    would be, so ``maps[:, m]`` is an ordinary ``(B, C, H, W)`` set. With ``M = 1`` given as
    ``(B, 1, C, H, W)`` the operator equals the single-set one on ``x[:, 0]``.

    Args:
        maps: coil sensitivity maps, ``(B, C, H, W)`` or ``(B, M, C, H, W)`` complex.
        mask: sampling mask broadcastable to ``(B, C, H, W)``, e.g. ``(B, 1, H, W)``.

    ``A(x)``: image ``(B, H, W)`` / ``(B, M, H, W)`` -> k-space ``(B, C, H, W)``.
    ``A.H(y)``: k-space ``(B, C, H, W)`` -> image ``(B, H, W)`` / ``(B, M, H, W)``.

    Raises:
        ValueError: ``maps`` is neither 4- nor 5-dimensional.
    """

    def __init__(self, maps: torch.Tensor, mask: torch.Tensor) -> None:
        if maps.dim() not in (4, 5):
            raise ValueError(
                f"maps must be (B, C, H, W) or (B, M, C, H, W), got shape {tuple(maps.shape)}"
            )
        self.maps = maps
        self.mask = mask

    @property
    def num_maps(self) -> int:
        """Number of map sets ``M`` (1 for ``(B, C, H, W)`` maps)."""
        return 1 if self.maps.dim() == 4 else self.maps.shape[1]

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mask * coil_kspace(x, self.maps)  # (B, C, H, W)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return combine_coils(ifft2c(self.mask * y), self.maps)  # (B, H, W) or (B, M, H, W)


def expand_coils(x: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """Coil images ``S_c x`` (one set) or ``sum_m S_{m,c} x_m`` (``M`` sets), ``(B, C, H, W)``.

    Args:
        x: image ``(B, H, W)`` for maps ``(B, C, H, W)``; ``(B, M, H, W)`` for maps
            ``(B, M, C, H, W)``.
        maps: coil sensitivities, complex.
    """
    if maps.dim() == 5:
        return (maps * x.unsqueeze(2)).sum(dim=1)  # (B, M, C, H, W) -> (B, C, H, W)
    return maps * x.unsqueeze(1)


def coil_kspace(x: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """Fully sampled coil k-space of an image, ``F sum_m S_{m,c} x_m``: ``(B, H, W)`` with maps
    ``(B, C, H, W)``, or ``(B, M, H, W)`` with maps ``(B, M, C, H, W)`` -> ``(B, C, H, W)``
    (the SENSE forward model without the mask)."""
    return fft2c(expand_coils(x, maps))


def combine_coils(coil_images: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """SENSE coil combination ``sum_c conj(S_{m,c}) x_c``, the adjoint of :func:`expand_coils`.

    Args:
        coil_images: ``(B, C, H, W)`` complex.
        maps: ``(B, C, H, W)`` (one set) or ``(B, M, C, H, W)`` (``M`` sets).

    Returns:
        ``(B, H, W)`` for one set, ``(B, M, H, W)`` for ``M`` sets.
    """
    if maps.dim() == 5:
        return (maps.conj() * coil_images.unsqueeze(1)).sum(dim=2)  # (B, M, H, W)
    return (maps.conj() * coil_images).sum(dim=1)


def combine_sets(x: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """Magnitude image from a SENSE solution: ``|x|`` for one set, the root-sum-of-squares
    over the sets ``sqrt(sum_m |x_m|^2)`` for ``M`` sets (BART's ``rss`` over the maps axis
    of a ``pics`` result), ``(B, H, W)`` float.

    Args:
        x: ``(B, H, W)`` (maps ``(B, C, H, W)``) or ``(B, M, H, W)`` (maps ``(B, M, C, H, W)``).
        maps: the maps ``x`` belongs to (only their layout is read).
    """
    return x.abs() if maps.dim() == 4 else torch.linalg.vector_norm(x, dim=1)
