"""Classical reconstructions behind the network's interface.

Each baseline is called like :class:`~unrolled.models.unrolled.UnrolledNet`,
``method(kspace, mask, num_low_frequencies, keys=None)``, and returns an
:class:`~unrolled.models.unrolled.UnrolledOutput`, so every evaluation path
treats networks and baselines alike. Baselines hold no learnable parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from unrolled.methods.weight_selection import KSpaceCrossValidation
from unrolled.models.sensitivity import EspiritSensitivity
from unrolled.models.unrolled import UnrolledOutput
from unrolled.physics.coils import rss
from unrolled.physics.fft import fft2c, ifft2c
from unrolled.physics.operators import SenseOp, expand_coils
from unrolled.physics.solvers import conjugate_gradient


class ZeroFilled(nn.Module):
    """RSS of the inverse FFT of the zero-filled k-space."""

    def forward(self, kspace, mask, num_low_frequencies, keys=None, return_cascades=False):
        coil_images = ifft2c(kspace)  # (B, C, H, W)
        empty = torch.empty(0, device=kspace.device)
        return UnrolledOutput(rss(coil_images, dim=1), kspace, empty, [])


class CGSense(nn.Module):
    """CG-SENSE with ESPIRiT maps and Tikhonov regularisation.

    Solves ``(A^H A + lam I) x = A^H y`` by conjugate gradient and returns
    ``|x|`` scaled to the RSS convention (with ESPIRiT maps normalised to
    ``sum_c |S_c|^2 = 1``, ``RSS(S x) = |x|`` inside the support).

    Args:
        lam: Tikhonov weight, relative to the largest eigenvalue of ``A^H A``
            (which is 1 for normalised maps and a binary mask).
        max_iter: CG iterations.
        espirit: the ESPIRiT estimator (shares its cache across calls); default: one or two
            sets of maps chosen per slice (``num_maps=None``, see
            :class:`~unrolled.models.sensitivity.EspiritSensitivity`), two where the field of
            view is smaller than the object. With two sets the output is the RSS of the coil
            images, which equals the RSS over the sets (ESPIRiT's sets are orthonormal).
        weight_selection: choose ``lam`` per slice from the slice's own samples
            (:class:`~unrolled.methods.weight_selection.KSpaceCrossValidation`);
            ``None``: the fixed ``lam``.
    """

    def __init__(
        self,
        lam: float = 0.01,
        max_iter: int = 30,
        espirit: EspiritSensitivity | None = None,
        weight_selection: KSpaceCrossValidation | None = None,
    ) -> None:
        super().__init__()
        self.lam = lam
        self.max_iter = max_iter
        self.espirit = espirit or EspiritSensitivity(num_maps=None)
        self.weight_selection = weight_selection

    def solve(self, lam: float, op: SenseOp, kspace: torch.Tensor) -> torch.Tensor:
        """The complex image ``(B, [M,] H, W)`` of ``(A^H A + lam I) x = A^H y`` for ``op``."""
        return conjugate_gradient(
            lambda v: op.normal(v) + lam * v, op.H(kspace), max_iter=self.max_iter, tol=1e-6
        )

    @torch.no_grad()
    def forward(self, kspace, mask, num_low_frequencies, keys=None, return_cascades=False):
        maps = self.espirit(kspace, mask, num_low_frequencies, keys=keys)
        if self.weight_selection is None:
            x = self.solve(self.lam, SenseOp(maps, mask), kspace)
        else:
            sel = self.weight_selection
            x, _ = sel.reconstruct(self.solve, maps, kspace, mask, num_low_frequencies, self.lam)
        k = fft2c(expand_coils(x, maps))  # (B, C, H, W); x (B, [M,] H, W)
        return UnrolledOutput(rss(ifft2c(k), dim=1), k, maps, [])
