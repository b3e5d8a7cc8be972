"""Orthogonal 2D wavelet transform of complex images, and complex soft thresholding.

The transform is ptwt's separable matrix fast wavelet transform (the one
behind ``ptwt.MatrixWavedec2``) with QR-orthogonalised boundary filters: on an
``(H, W)`` grid whose sides are multiples of ``2**levels`` it is an exactly
orthogonal, non-redundant ``HW x HW`` matrix. It plays the role of pywt's
``mode="periodization"``, which ptwt's convolution transforms lack (their
``"zero"``/``"reflect"`` modes add boundary coefficients, so ``W W^H != I``).
Orthogonality makes the proximal operator of ``lam ||W x||_1`` exact:
``prox(x) = W^H soft(W x, lam)``.

Each level ``l`` applies two small orthogonal matrices, ``X <- A_h X A_w^T``,
to the current low-pass block (Mallat's in-place layout), so coefficients are
an image-shaped ``(B, H, W)`` tensor: the approximation block ``(H, W) / 2**L``
in the top-left corner, each level's three detail bands around it. ptwt
builds the matrices (sparse); they are kept dense here -- a few MB at most,
faster than sparse products on CPU and GPU alike. A complex image is
transformed as ``W(re) + i W(im)`` (``W`` is real).
"""

from __future__ import annotations

import functools
import warnings

import pywt
import torch
from ptwt.matmul_transform import construct_boundary_a

from unrolled.physics.operators import LinearOperator


def max_levels(shape: tuple[int, int], wavelet: str) -> int:
    """Most levels for which every level's input side is at least the filter length."""
    filt_len = pywt.Wavelet(wavelet).dec_len
    h, w, levels = int(shape[0]), int(shape[1]), 0
    while h >= filt_len and w >= filt_len and h % 2 == 0 and w % 2 == 0:
        levels, h, w = levels + 1, h // 2, w // 2
    return levels


def padded_shape(shape: tuple[int, int], levels: int) -> tuple[int, int]:
    """``(H, W)`` rounded up to multiples of ``2**levels``."""
    step = 2**levels
    return (-(-int(shape[0]) // step) * step, -(-int(shape[1]) // step) * step)


@functools.lru_cache(maxsize=64)
def _analysis_matrix(
    wavelet: str, length: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Dense orthogonal one-level analysis matrix ``(length, length)``: low-pass rows first."""
    with warnings.catch_warnings():  # torch's notices on sparse-tensor invariants and CSR
        warnings.simplefilter("ignore", UserWarning)
        a = construct_boundary_a(wavelet, length, orthogonalization="qr", dtype=torch.float64)
    return a.to_dense().to(device=device, dtype=dtype)


class WaveletOp(LinearOperator):
    """Orthogonal multilevel 2D DWT ``W``: complex images -> coefficients, both ``(B, H, W)``.

    Args:
        shape: image shape ``(H, W)``, both multiples of ``2**levels`` (pad
            first, see :func:`padded_shape`).
        wavelet: an orthogonal pywt wavelet name (``"db4"``, ``"haar"``, ``"sym8"``...).
        levels: decomposition levels (``1 <= levels <= max_levels(shape, wavelet)``).
        device: device of the images.
        dtype: complex dtype of the images (``complex64`` -> float32 matrices).

    Attributes:
        approx_shape: ``(H, W) / 2**levels``, the top-left approximation block.

    Raises:
        ValueError: if ``wavelet`` is not orthogonal, or ``shape`` does not allow
            ``levels`` levels (sides not multiples of ``2**levels`` or too short).
    """

    def __init__(
        self,
        shape: tuple[int, int],
        wavelet: str = "db4",
        levels: int = 4,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.complex64,
    ) -> None:
        if not pywt.Wavelet(wavelet).orthogonal:
            raise ValueError(f"wavelet {wavelet!r} is not orthogonal")
        h, w = (int(s) for s in shape)
        step = 2**levels
        if levels < 1 or h % step or w % step or levels > max_levels((h, w), wavelet):
            raise ValueError(
                f"{levels} levels of {wavelet!r} need sides that are multiples of {step} and "
                f"at least {pywt.Wavelet(wavelet).dec_len * step // 2}, got {(h, w)}"
            )
        self.shape, self.wavelet, self.levels = (h, w), wavelet, int(levels)
        self.approx_shape = (h // step, w // step)
        real = torch.empty(0, dtype=dtype).real.dtype
        device = torch.device(device)
        # per level: (A_h, A_w) for the (h >> l, w >> l) low-pass block, finest first
        self._mats = [
            (
                _analysis_matrix(wavelet, h >> lv, device, real),
                _analysis_matrix(wavelet, w >> lv, device, real),
            )
            for lv in range(self.levels)
        ]

    def _apply(self, x: torch.Tensor, adjoint: bool) -> torch.Tensor:
        b = x.shape[0]
        out = torch.cat([x.real, x.imag])  # (2B, H, W) real
        levels = list(enumerate(self._mats))
        for lv, (ah, aw) in levels[::-1] if adjoint else levels:
            h, w = self.shape[0] >> lv, self.shape[1] >> lv
            block = out[:, :h, :w]
            out[:, :h, :w] = ah.T @ block @ aw if adjoint else ah @ block @ aw.T
        return torch.complex(out[:b], out[b:])

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._apply(x, adjoint=False)

    def _adjoint(self, c: torch.Tensor) -> torch.Tensor:
        return self._apply(c, adjoint=True)

    def detail_mask(self) -> torch.Tensor:
        """Boolean ``(H, W)``: True on detail coefficients, False on the approximation block."""
        m = torch.ones(self.shape, dtype=torch.bool, device=self._mats[0][0].device)
        m[: self.approx_shape[0], : self.approx_shape[1]] = False
        return m


def soft_threshold(c: torch.Tensor, threshold: float | torch.Tensor) -> torch.Tensor:
    """Complex soft thresholding by magnitude, ``c * max(1 - t / |c|, 0)``.

    The proximal operator of ``t ||c||_1`` with ``|.|`` the complex modulus
    (real input works alike). ``threshold`` broadcasts against ``c`` (e.g.
    ``(B, 1, 1)`` for one threshold per sample, or 0 where nothing is shrunk).
    """
    mag = c.abs()
    return c * torch.clamp(1 - threshold / mag.clamp_min(torch.finfo(mag.dtype).tiny), min=0)
