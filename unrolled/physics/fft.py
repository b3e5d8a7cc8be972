"""Centered, orthonormal 2D Fourier transforms over the last two axes.

All functions take and return native complex tensors (``complex64`` in the
package, ``complex128`` in double-precision tests). "Centered" means the
zero frequency sits at index ``(H // 2, W // 2)``, as in fastMRI's
``fft2c``/``ifft2c`` (which use two real channels instead of complex dtypes).
"""

from __future__ import annotations

import torch

_DIMS = (-2, -1)


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centered orthonormal 2D FFT over the last two axes.

    Args:
        x: complex image, shape ``(..., H, W)``.

    Returns:
        Complex k-space, shape ``(..., H, W)``.
    """
    _check_complex(x)
    x = torch.fft.ifftshift(x, dim=_DIMS)
    x = torch.fft.fft2(x, dim=_DIMS, norm="ortho")
    return torch.fft.fftshift(x, dim=_DIMS)


def ifft2c(k: torch.Tensor) -> torch.Tensor:
    """Centered orthonormal inverse 2D FFT over the last two axes.

    Args:
        k: complex k-space, shape ``(..., H, W)``.

    Returns:
        Complex image, shape ``(..., H, W)``.
    """
    _check_complex(k)
    k = torch.fft.ifftshift(k, dim=_DIMS)
    k = torch.fft.ifft2(k, dim=_DIMS, norm="ortho")
    return torch.fft.fftshift(k, dim=_DIMS)


def _check_complex(x: torch.Tensor) -> None:
    if not x.is_complex():
        raise TypeError(f"expected a complex tensor, got dtype {x.dtype}")
