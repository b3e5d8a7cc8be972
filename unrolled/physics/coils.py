"""Coil combination and coil-sensitivity estimation.

Functions here take native complex tensors laid out as fastMRI multicoil data:
k-space and coil images are ``(B, C, H, W)`` with ``H`` the fully sampled
readout axis and ``W`` the (possibly undersampled) phase-encoding axis, the
last one, along which fastMRI's 1D masks act. Everything runs on the device
of the input, has no learnable parameters and keeps the input's complex
precision (``complex64`` in the package, ``complex128`` accepted).

* :func:`rss` -- root-sum-of-squares coil combination.
* :func:`center_crop` / :func:`center_crop_or_pad` -- fastMRI's centre crop.
* :func:`acs_sensitivities` -- low-resolution maps from the auto-calibration
  (ACS) columns, as E2E-VarNet's ``SensitivityModel`` before its CNN.
* :func:`espirit` -- ESPIRiT maps (Uecker et al., MRM 71:990-1001, 2014).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch

from unrolled.physics.calibration import calibration_block, center_start
from unrolled.physics.fft import ifft2c

#: Smallest ESPIRiT kernel width :func:`espirit` falls back to when the calibration
#: region is narrower than the requested kernel.
MIN_KERNEL_SIZE = 3


def rss(x: torch.Tensor, dim: int = 1, keepdim: bool = False) -> torch.Tensor:
    """Root-sum-of-squares coil combination ``sqrt(sum_c |x_c|^2)``.

    Its gradient is finite (zero) where all coils vanish.

    Args:
        x: real or complex coil images, e.g. shape ``(B, C, H, W)``.
        dim: coil axis.
        keepdim: keep the coil axis with size 1.

    Returns:
        Real tensor (``float32`` for ``complex64`` input), e.g. ``(B, H, W)``.
    """
    return torch.linalg.vector_norm(x, ord=2, dim=dim, keepdim=keepdim)


def center_crop(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Crop the last two axes to ``shape``, exactly as fastMRI's ``center_crop``.

    The crop starts at ``(H - h) // 2`` and ``(W - w) // 2``, so for odd size
    differences the extra row/column is dropped at the end.

    Args:
        x: tensor of shape ``(..., H, W)``.
        shape: target ``(h, w)`` with ``0 < h <= H`` and ``0 < w <= W``.

    Returns:
        View of shape ``(..., h, w)``.

    Raises:
        ValueError: if ``shape`` is not positive or larger than the input.
    """
    h, w = (int(s) for s in shape)
    H, W = x.shape[-2:]
    if not (0 < h <= H and 0 < w <= W):
        raise ValueError(f"cannot centre-crop last axes {(H, W)} to {(h, w)}")
    top, left = (H - h) // 2, (W - w) // 2
    return x[..., top : top + h, left : left + w]


def center_crop_or_pad(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Centre-crop or zero-pad each of the last two axes to ``shape``.

    Axes larger than the target are cropped like :func:`center_crop`; smaller
    ones are zero-padded with ``(h - H) // 2`` entries before, the rest after,
    so that cropping a padded tensor back returns the original.

    Args:
        x: tensor of shape ``(..., H, W)``.
        shape: target ``(h, w)``, positive.

    Returns:
        Tensor of shape ``(..., h, w)``.

    Raises:
        ValueError: if ``shape`` is not positive.
    """
    h, w = (int(s) for s in shape)
    if h <= 0 or w <= 0:
        raise ValueError(f"target shape must be positive, got {(h, w)}")
    H, W = x.shape[-2:]
    x = center_crop(x, (min(h, H), min(w, W)))
    pad_h, pad_w = max(h - H, 0), max(w - W, 0)
    if pad_h or pad_w:
        # F.pad order: (left, right, top, bottom) for the last two axes.
        pads = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
        x = torch.nn.functional.pad(x, pads)
    return x


def acs_sensitivities(
    kspace: torch.Tensor,
    num_low_frequencies: int,
    window: str = "box",
    eps: float = 1e-12,
) -> torch.Tensor:
    """Low-resolution sensitivity maps from the auto-calibration columns.

    Keeps the centre ``num_low_frequencies`` phase-encoding columns (last
    axis) with fastMRI's mask convention (first kept column
    ``(W - num_low_frequencies + 1) // 2``), optionally tapers them with a
    window to limit ringing, transforms to image space and divides by the
    RSS -- E2E-VarNet's ``SensitivityModel`` without its CNN. Maps are
    normalised to ``sum_c |S_c|^2 = 1`` wherever the low-resolution RSS
    exceeds ``eps`` (background noise included, as in E2E-VarNet).

    Args:
        kspace: complex k-space, shape ``(B, C, H, W)`` (or ``(C, H, W)``);
            only the centre columns are read, so undersampled input is fine.
        num_low_frequencies: number of fully sampled centre columns.
        window: ``"box"`` (no taper) or ``"hann"`` (Hann taper across the
            kept columns).
        eps: added to the RSS before division.

    Returns:
        Complex maps, same shape and dtype as ``kspace``.

    Raises:
        TypeError: if ``kspace`` is not complex.
        ValueError: if ``kspace`` is not ``(B, C, H, W)`` or ``(C, H, W)``, or
            ``num_low_frequencies`` is not in ``[1, W]``.
    """
    _check_kspace(kspace)
    W = kspace.shape[-1]
    n = int(num_low_frequencies)
    if not 0 < n <= W:
        raise ValueError(f"num_low_frequencies must be in [1, {W}], got {n}")
    start = center_start(W, n)
    real = kspace.real.dtype
    taper = torch.zeros(W, dtype=real, device=kspace.device)  # (W,)
    if window == "box":
        taper[start : start + n] = 1
    elif window == "hann":
        taper[start : start + n] = torch.hann_window(
            n + 2, periodic=False, dtype=real, device=kspace.device
        )[1:-1]
    else:
        raise ValueError(f"unknown window {window!r}; expected 'box' or 'hann'")
    images = ifft2c(kspace * taper)  # (B, C, H, W)
    return images / (rss(images, dim=-3, keepdim=True) + eps)


def espirit(
    kspace: torch.Tensor,
    num_low_frequencies: int | Sequence[int] | torch.Tensor | None = None,
    *,
    calib: tuple[int, int] | None = None,
    kernel_size: int = 6,
    threshold: float = 0.02,
    crop: float = 0.95,
    num_maps: int = 1,
    extra_crop: float | None = None,
) -> torch.Tensor:
    """ESPIRiT coil sensitivity maps, one or more sets (Uecker et al. 2014).

    Per batch element:

    1. Calibration region: the centre ``cy x cx`` block of k-space. Columns
       follow fastMRI's mask convention (first column ``(W - cx + 1) // 2``),
       rows are centred the same way. With ``num_low_frequencies`` given,
       ``cx = num_low_frequencies`` and ``cy = min(H, max(cx, 24))``: the
       readout is fully sampled, but rows far from the centre add mostly
       noise and cost.
    2. Calibration matrix: all ``kernel_size x kernel_size`` windows over
       all coils (``unfold``), shape ``(windows, C * k * k)``; its right
       singular vectors with singular value ``> threshold * max`` span the
       signal subspace and are the k-space kernels.
    3. Image-space operator ``M(r) = (1/k^2) sum_i a_i(r) a_i(r)^H`` with
       ``a_i`` the (unnormalised) inverse DFT of kernel ``i``. ``M`` is a
       trigonometric polynomial of degree ``< k``, so it is computed exactly
       on a ``(2k-1) x (2k-1)`` grid and brought to ``(H, W)`` by zero-padding
       its Fourier coefficients -- no full-size kernel images are formed.
    4. Per pixel, the top ``num_maps`` eigenvectors of the ``C x C`` Hermitian
       ``M(r)`` (``torch.linalg.eigh``, batched over pixels), largest first: set
       ``m`` is the ``m``-th eigenvector. An eigenvalue is about 1 where the
       coils see signal that this set explains. The first set is zeroed where
       its eigenvalue is ``<= crop``, further sets where theirs is
       ``<= extra_crop`` (BART ``ecalib -m M -c crop`` when ``extra_crop`` is
       ``crop``, its default). Where the field of view is smaller than the
       object, a second eigenvalue near 1 appears where two parts of the object
       fold onto one pixel; elsewhere it stays well below 1 (soft-SENSE).
    5. Phase: each pixel's eigenvector is rotated so that its projection on
       the first principal component of the calibration data (a virtual body
       coil) is real and positive, which keeps the maps smooth (every set alike).

    Cost is dominated by the ``H * W`` batched ``C x C`` eigendecompositions
    (exact, full resolution, no interpolation): on a 2-core CPU about 0.2 s
    for 4 coils at 256 x 256 and 3-4 s for 16 coils at 320 x 320. Memory
    peaks at a few ``(H, W, C, C)`` complex arrays.

    Args:
        kspace: complex k-space, shape ``(B, C, H, W)`` (or ``(C, H, W)``).
        num_low_frequencies: fully sampled centre columns; an int, or one
            value per batch element. Ignored when ``calib`` is given.
        calib: explicit calibration size ``(cy, cx)``.
        kernel_size: ESPIRiT kernel width ``k``.
        threshold: relative singular-value threshold for the signal subspace.
        crop: eigenvalue threshold defining the support of the (first set of) maps.
        num_maps: number of sets ``M`` (BART's ``ecalib -m``), at least 1.
        extra_crop: eigenvalue threshold for sets 2..M; default ``crop``.

    Returns:
        Complex maps, same dtype as ``kspace``: shape ``(B, C, H, W)`` (or
        ``(C, H, W)``) for ``num_maps = 1``, ``(B, M, C, H, W)`` (or
        ``(M, C, H, W)``) otherwise. Each set has ``sum_c |S_c|^2 = 1`` inside
        its support and 0 outside; the sets are orthogonal per pixel. An element
        whose calibration region is all zero (no singular value, so no kernel)
        gets all-zero maps.

    Raises:
        ValueError: if neither ``num_low_frequencies`` nor ``calib`` is
            given, or the calibration region is larger than k-space or
            narrower than :data:`MIN_KERNEL_SIZE` (a region narrower than
            ``kernel_size`` gets the largest kernel that fits, with a warning;
            see :func:`kernel_for_calibration`), or ``num_maps`` is not in
            ``[1, C]``.
    """
    _check_kspace(kspace)
    if not 1 <= int(num_maps) <= kspace.shape[-3]:
        raise ValueError(f"num_maps must be in [1, {kspace.shape[-3]}] (coils), got {num_maps}")
    if kspace.ndim == 3:
        return espirit(
            kspace[None],
            num_low_frequencies,
            calib=calib,
            kernel_size=kernel_size,
            threshold=threshold,
            crop=crop,
            num_maps=num_maps,
            extra_crop=extra_crop,
        )[0]
    B, _, H, W = kspace.shape
    if calib is not None:
        calibs = [(int(calib[0]), int(calib[1]))] * B
    elif num_low_frequencies is not None:
        nlf = torch.as_tensor(num_low_frequencies).reshape(-1).tolist()
        if len(nlf) == 1:
            nlf = nlf * B
        if len(nlf) != B:
            raise ValueError(f"got {len(nlf)} num_low_frequencies for batch size {B}")
        calibs = [calibration_block(H, n) for n in nlf]
    else:
        raise ValueError("give num_low_frequencies or calib")
    crops = [crop] + [crop if extra_crop is None else extra_crop] * (int(num_maps) - 1)
    maps = [
        _espirit_single(kspace[b], cy, cx, kernel_size, threshold, crops)
        for b, (cy, cx) in enumerate(calibs)
    ]
    out = torch.stack(maps)  # (B, M, C, H, W)
    return out[:, 0] if num_maps == 1 else out


def kernel_for_calibration(cy: int, cx: int, kernel_size: int) -> int:
    """The ESPIRiT kernel width for a ``cy x cx`` calibration region.

    ``kernel_size`` when the region holds it; otherwise the largest width that fits, at least
    :data:`MIN_KERNEL_SIZE`, with a warning (e.g. 8x with a 4% centre on 128 columns keeps 5
    columns, narrower than the usual kernel of 6).

    Raises:
        ValueError: the region is narrower than :data:`MIN_KERNEL_SIZE`; the message says
            how many centre columns ESPIRiT needs.
    """
    fit = min(int(kernel_size), int(cy), int(cx))
    if fit < MIN_KERNEL_SIZE:
        raise ValueError(
            f"calibration region {cy} x {cx} is too small for ESPIRiT: it needs at least "
            f"{MIN_KERNEL_SIZE} fully sampled centre columns and rows; sample a wider centre "
            f"(a larger centre fraction) or use a method without ESPIRiT maps"
        )
    if fit < kernel_size:
        warnings.warn(
            f"ESPIRiT: calibration region {cy} x {cx} is narrower than the kernel size "
            f"{kernel_size}; using kernel size {fit}",
            stacklevel=3,
        )
    return fit


def _espirit_single(
    kspace: torch.Tensor, cy: int, cx: int, k: int, threshold: float, crops: Sequence[float]
) -> torch.Tensor:
    """ESPIRiT for one element: ``kspace (C, H, W)`` -> maps ``(M, C, H, W)``, a crop per set."""
    num = len(crops)
    C, H, W = kspace.shape
    if not (cy <= H and cx <= W):
        raise ValueError(f"calibration region {(cy, cx)} must lie within k-space {(H, W)}")
    k = kernel_for_calibration(cy, cx, k)
    if H < 2 * k - 1 or W < 2 * k - 1:
        raise ValueError(f"k-space {(H, W)} too small for kernel size {k}")
    top, left = (H - cy + 1) // 2, (W - cx + 1) // 2
    # Small dense linear algebra in double precision: cheap and robust.
    cal = kspace[:, top : top + cy, left : left + cx].to(torch.complex128)  # (C, cy, cx)

    # Calibration matrix: one row per k x k window, all coils.
    win = cal.unfold(1, k, 1).unfold(2, k, 1)  # (C, cy-k+1, cx-k+1, k, k)
    mat = win.permute(1, 2, 0, 3, 4).reshape(-1, C * k * k)  # (windows, C*k*k)
    _, s, vh = torch.linalg.svd(mat, full_matrices=False)
    if not bool(s[0] > 0):  # all-zero calibration data (e.g. a dropped slice): no kernel
        return kspace.new_zeros(num, C, H, W)
    # Rows of V^H span the row space of the calibration matrix.
    kernels = vh[s > threshold * s[0]].reshape(-1, C, k, k)  # (n, C, k, k)

    # M(r) on the exact (2k-1)^2 grid: a_i(r) = sum_d kernel_i[d] e^{+2 pi i d r / L}.
    L = 2 * k - 1
    a = torch.fft.ifft2(kernels, s=(L, L)) * (L * L)  # (n, C, L, L)
    m_coarse = torch.einsum("ncxy,ndxy->xycd", a, a.conj()) / (k * k)  # (L, L, C, C)
    # Fourier coefficients G(delta) at index delta mod L, delta in [-(k-1), k-1]^2.
    g = torch.fft.fft2(m_coarse, dim=(0, 1), norm="forward")  # (L, L, C, C)
    delta = torch.arange(L, device=g.device)
    delta = torch.where(delta < k, delta, delta - L)  # signed frequency of each index
    # Pixel j sits at r = j - N // 2 (the ifft2c convention): modulate G instead
    # of shifting the full-size result.
    ph_y = torch.exp(-2j * math.pi * delta.double() * (H // 2) / H)  # (L,)
    ph_x = torch.exp(-2j * math.pi * delta.double() * (W // 2) / W)  # (L,)
    g = g * (ph_y[:, None] * ph_x[None, :])[..., None, None]
    g_full = kspace.new_zeros(H, W, C, C)
    g_full[(delta % H)[:, None], (delta % W)[None, :]] = g.to(kspace.dtype)
    # Unit-weight inverse DFT over the pixel axes; eigh reads the lower triangle.
    m = torch.fft.ifft2(g_full, dim=(0, 1), norm="forward")  # (H, W, C, C)

    eigval, eigvec = torch.linalg.eigh(m)  # (H, W, C), (H, W, C, C), ascending
    top_val = eigval[..., -num:].flip(-1)  # (H, W, M), largest first
    maps = eigvec[..., -num:].flip(-1)  # (H, W, C, M), unit-norm columns

    # Phase reference: first principal component of the calibration coil data.
    u, _, _ = torch.linalg.svd(cal.reshape(C, -1), full_matrices=False)
    ref = torch.einsum("c,hwcm->hwm", u[:, 0].conj().to(maps.dtype), maps)  # (H, W, M)
    mag = ref.abs()
    phase = torch.where(mag > 0, ref / mag.clamp_min(torch.finfo(mag.dtype).tiny), 1)
    support = top_val > torch.tensor(list(crops), dtype=top_val.dtype, device=top_val.device)
    maps = maps * (phase.conj() * support)[..., None, :]  # (H, W, C, M)
    return maps.permute(3, 2, 0, 1).contiguous()  # (M, C, H, W)


def _check_kspace(kspace: torch.Tensor) -> None:
    if not kspace.is_complex():
        raise TypeError(f"expected complex k-space, got dtype {kspace.dtype}")
    if kspace.ndim not in (3, 4):
        raise ValueError(f"expected k-space of shape (B, C, H, W) or (C, H, W), got {kspace.shape}")
