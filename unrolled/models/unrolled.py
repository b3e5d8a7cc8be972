"""The unrolled network: cascades of (CNN denoiser, data consistency) on coil k-space.

One cascade ``t`` maps coil k-space ``k_t`` to ``k_{t+1}``::

    x   = sum_c conj(S_c) F^H k_t         # coil combination, (B, H, W); (B, M, H, W) for
                                          # M sets of ESPIRiT maps (2M channels in the CNN)
    z   = D_t(x)                          # learned residual denoiser
    k   = DC_t(z, y, S, M)                # back to coil k-space, consistent with y

starting from the measured k-space ``k_0 = y`` (or from a given ``k_0``, e.g. the
coil k-space of a classical reconstruction). The output image is the
root-sum-of-squares of ``F^H k_T``, the same quantity as fastMRI's
``reconstruction_rss`` targets.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from unrolled.models.dc import DataConsistency
from unrolled.models.reconstructor import Reconstruction
from unrolled.models.sensitivity import EspiritSensitivity
from unrolled.physics.coils import rss
from unrolled.physics.fft import ifft2c
from unrolled.physics.operators import combine_coils


def _reinitialised_copy(module: nn.Module) -> nn.Module:
    clone = copy.deepcopy(module)
    for m in clone.modules():
        if hasattr(m, "reset_parameters") and m is not clone:
            m.reset_parameters()
    return clone


class UnrolledNet(nn.Module):
    """Unrolled physics-informed network.

    Args:
        denoiser: the denoiser of one cascade, complex ``(B, H, W)`` -> ``(B, H, W)``
            (e.g. a :class:`~unrolled.models.denoisers.ComplexDenoiser`).
        dc: the data-consistency layer of one cascade.
        sens: coil sensitivity module (learned or ESPIRiT).
        num_cascades: number of unrolled iterations.
        share_weights: one denoiser for all cascades (else independent copies,
            each freshly initialised).
        share_dc: one DC layer (one lambda / step size) for all cascades.
        checkpointing: recompute each cascade in the backward pass instead of
            storing its activations (gradient checkpointing), trading compute
            for memory.
    """

    def __init__(
        self,
        denoiser: nn.Module,
        dc: DataConsistency,
        sens: nn.Module,
        num_cascades: int = 8,
        share_weights: bool = False,
        share_dc: bool = False,
        checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if num_cascades < 1:
            raise ValueError(f"num_cascades must be >= 1, got {num_cascades}")
        self.num_cascades = num_cascades
        self.share_weights = share_weights
        self.share_dc = share_dc
        self.checkpointing = checkpointing
        n_den = 1 if share_weights else num_cascades
        n_dc = 1 if share_dc else num_cascades
        self.denoisers = nn.ModuleList(
            [denoiser] + [_reinitialised_copy(denoiser) for _ in range(n_den - 1)]
        )
        self.dcs = nn.ModuleList([dc] + [copy.deepcopy(dc) for _ in range(n_dc - 1)])
        self.sens = sens

    def _cascade(
        self, t: int, k: torch.Tensor, y: torch.Tensor, maps: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        x = combine_coils(ifft2c(k), maps)  # (B, H, W), or (B, M, H, W) for M sets of maps
        z = self.denoisers[0 if self.share_weights else t](x)
        return self.dcs[0 if self.share_dc else t](z, y, maps, mask)  # (B, C, H, W)

    def forward(
        self,
        kspace: torch.Tensor,
        mask: torch.Tensor,
        num_low_frequencies: torch.Tensor,
        keys: list[tuple] | None = None,
        return_cascades: bool = False,
        initial_kspace: torch.Tensor | None = None,
    ) -> Reconstruction:
        """Reconstruct.

        Args:
            kspace: measured coil k-space, zero where not sampled, ``(B, C, H, W)``.
            mask: sampling mask, ``(B, 1, H, W)`` (or broadcastable).
            num_low_frequencies: calibration width per sample, ``(B,)``.
            keys: optional per-sample cache keys (file, slice) for ESPIRiT maps.
            return_cascades: also return the image after every cascade.
            initial_kspace: coil k-space ``(B, C, H, W)`` the first cascade starts
                from, e.g. a classical reconstruction's ``kspace`` (``F S x``); data
                consistency still uses ``kspace``. ``None``: ``kspace`` (zero-filled start).

        Raises:
            ValueError: ``initial_kspace`` of another shape than ``kspace``.
        """
        y = kspace
        if isinstance(self.sens, EspiritSensitivity):
            maps = self.sens(y, mask, num_low_frequencies, keys=keys)
        else:
            maps = self.sens(y, mask, num_low_frequencies)
        if initial_kspace is not None and initial_kspace.shape != y.shape:
            raise ValueError(
                f"initial_kspace has shape {tuple(initial_kspace.shape)}, "
                f"the k-space {tuple(y.shape)}"
            )
        k = y if initial_kspace is None else initial_kspace
        cascades = []
        for t in range(self.num_cascades):
            if self.checkpointing and torch.is_grad_enabled():
                k = checkpoint(self._cascade, t, k, y, maps, mask, use_reentrant=False)
            else:
                k = self._cascade(t, k, y, maps, mask)
            if return_cascades:
                cascades.append(rss(ifft2c(k), dim=1).detach())
        image = rss(ifft2c(k), dim=1)  # (B, H, W)
        return Reconstruction(image=image, kspace=k, maps=maps, cascades=cascades)
