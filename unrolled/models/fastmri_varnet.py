"""fastMRI's E2E-VarNet behind our network interface: the reference for benchmarks.

:class:`FastmriVarNet` wraps ``fastmri.models.VarNet`` (Sriram et al., 2020)
unchanged and only converts the inputs: complex64 ``(B, C, H, W)`` k-space to
fastMRI's trailing real/imaginary axis ``(B, C, H, W, 2)``, our float mask
``(B, 1, H, W)`` to fastMRI's boolean column mask ``(B, 1, 1, W, 1)``. It is
trained, evaluated and benchmarked by the same code as
:class:`~unrolled.models.unrolled.UnrolledNet` (``model=varnet_fastmri``).

fastMRI's published weights load into it: ``FastmriVarNet(weights=PATH)`` (and
``model.weights=PATH`` / ``weights=PATH`` on the command line) reads a file saved
by ``torch.save(VarNet(...).state_dict())``, as fastMRI distributes its
pretrained E2E-VarNet, or a Lightning checkpoint of fastMRI's ``VarNetModule``
(keys ``varnet.*`` in ``state_dict``), strictly: every tensor must match.

``fastmri`` is an optional peer (a test oracle, installed with ``--no-deps``),
imported only when the adapter is built.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from unrolled.models.reconstructor import Reconstruction
from unrolled.models.sensitivity import ZeroCalibrationWarning

log = logging.getLogger(__name__)

WEIGHT_PREFIXES = ("varnet.", "net.varnet.")
"""Key prefixes stripped from checkpoints: fastMRI's ``VarNetModule``, our training module."""


def _fastmri_mask(mask: torch.Tensor) -> torch.Tensor:
    """Our float mask ``(B, 1, H, W)`` or ``(B, 1, 1, W)`` -> fastMRI's bool ``(B, 1, 1, W, 1)``.

    Raises:
        ValueError: the mask varies along the readout axis (a 2D mask), which
            E2E-VarNet's calibration logic does not support.
    """
    if mask.dim() != 4:
        raise ValueError(f"mask must be (B, 1, H, W), got shape {tuple(mask.shape)}")
    cols = mask[:, :, :1, :]  # (B, 1, 1, W)
    if mask.shape[-2] > 1 and not torch.equal(mask, cols.expand_as(mask)):
        raise ValueError(
            "fastMRI's VarNet supports 1D (column) masks only; this mask varies along H "
            "(a 2D pattern such as Poisson-disc or Gaussian)"
        )
    return (cols > 0).unsqueeze(-1)  # (B, 1, 1, W, 1)


class FastmriVarNet(nn.Module):
    """fastMRI's E2E-VarNet with the call and output of :class:`UnrolledNet`.

    The defaults are the published E2E-VarNet sizes (12 cascades, U-Nets of 18
    channels and 4 pooling levels, a sensitivity U-Net of 8 channels).

    Args:
        num_cascades: VarNet cascades.
        sens_chans: channels of the sensitivity-map U-Net.
        sens_pools: pooling levels of the sensitivity-map U-Net.
        chans: channels of each cascade's U-Net.
        pools: pooling levels of each cascade's U-Net.
        checkpointing: recompute each cascade in the backward pass (gradient
            checkpointing, as ``UnrolledNet(checkpointing=True)``); off in the
            published E2E-VarNet and in the benchmarks.
        weights: a file of fastMRI VarNet weights (see :func:`load_fastmri_weights`),
            loaded strictly after construction: a warm start for training, or the
            published E2E-VarNet for ``unrolled-reconstruct``. ``None``: random init.
        denoiser: ignored. Experiments written for :class:`UnrolledNet` (e.g.
            ``experiment=embedded``) set ``model.denoiser.*``; accepting the key lets
            ``model=varnet_fastmri`` compose with them. A warning names what was dropped.

    Raises:
        ImportError: the ``fastmri`` package is not installed.
        FileNotFoundError: ``weights`` does not exist.
        ValueError: ``weights`` is not a VarNet state dict of these sizes.
    """

    def __init__(
        self,
        num_cascades: int = 12,
        sens_chans: int = 8,
        sens_pools: int = 4,
        chans: int = 18,
        pools: int = 4,
        checkpointing: bool = False,
        weights: str | PathLike[str] | None = None,
        denoiser: Any = None,
    ) -> None:
        super().__init__()
        if denoiser is not None:
            log.warning("FastmriVarNet ignores the UnrolledNet setting model.denoiser=%s", denoiser)
        try:
            from fastmri.models import VarNet
        except ImportError as e:
            raise ImportError(
                "FastmriVarNet needs the optional `fastmri` package (the benchmark reference); "
                "install it with `uv pip install --no-deps fastmri==0.3.0` (it is not a "
                f"dependency of unrolled): {e}"
            ) from e
        self.num_cascades = num_cascades
        self.checkpointing = checkpointing
        self.varnet = VarNet(
            num_cascades=num_cascades,
            sens_chans=sens_chans,
            sens_pools=sens_pools,
            chans=chans,
            pools=pools,
        )
        if weights is not None:
            load_fastmri_weights(self.varnet, weights)

    def forward(
        self,
        kspace: torch.Tensor,
        mask: torch.Tensor,
        num_low_frequencies: torch.Tensor,
        keys: list[tuple] | None = None,
        return_cascades: bool = False,
    ) -> Reconstruction:
        """Reconstruct.

        Args:
            kspace: measured coil k-space, zero where not sampled, ``(B, C, H, W)``
                complex64.
            mask: 1D sampling mask, ``(B, 1, H, W)`` (constant over ``H``) or ``(B, 1, 1, W)``.
            num_low_frequencies: calibration width per sample, ``(B,)``.
            keys: ``(file, slice, ...)`` per sample, only to name an all-zero slice in
                its warning (the maps are learned, nothing is cached).
            return_cascades: ignored; VarNet returns only its final image, so
                ``cascades`` is always empty.

        Returns:
            :class:`Reconstruction` with ``image`` the RSS ``(B, H, W)``, ``kspace``
            the final coil k-space ``(B, C, H, W)`` complex64 and ``maps`` VarNet's
            learned sensitivities ``(B, C, H, W)`` complex64. A sample whose k-space is
            all zero (a dropped or padding slice) gets zeros and a
            :class:`~unrolled.models.sensitivity.ZeroCalibrationWarning`: fastMRI's VarNet
            would return NaN there (0/0 in its map and U-Net normalisations).
        """
        del return_cascades
        empty = ~(kspace != 0).flatten(1).any(dim=1)  # (B,)
        if bool(empty.any()):
            return self._skip_empty(kspace, mask, num_low_frequencies, keys, empty)
        k = torch.view_as_real(kspace.to(torch.complex64))  # (B, C, H, W, 2)
        m = _fastmri_mask(mask)  # (B, 1, 1, W, 1)
        nlf = torch.as_tensor(num_low_frequencies).reshape(-1)
        if nlf.numel() == 1 or bool((nlf == nlf[0]).all()):
            pred, maps = self._varnet(k, m, int(nlf[0]))
        else:  # VarNet takes one calibration width per call: run sample by sample
            outs = [self._varnet(k[i : i + 1], m[i : i + 1], int(n)) for i, n in enumerate(nlf)]
            pred = torch.cat([o[0] for o in outs])
            maps = torch.cat([o[1] for o in outs])
        import fastmri

        image = fastmri.rss(fastmri.complex_abs(fastmri.ifft2c(pred)), dim=1)  # (B, H, W)
        pred_c = torch.view_as_complex(pred.float().contiguous())  # (B, C, H, W)
        maps_c = torch.view_as_complex(maps.float().contiguous())
        return Reconstruction(image=image, kspace=pred_c, maps=maps_c, cascades=[])

    def _skip_empty(self, kspace, mask, num_low_frequencies, keys, empty) -> Reconstruction:
        """Zeros for the all-zero samples (with a warning each), VarNet for the others."""
        for i in empty.nonzero().flatten().tolist():
            key = tuple(keys[i]) if keys is not None else ()
            where = f"{key[0]} slice {key[1]}" if len(key) >= 2 else f"batch element {i}"
            warnings.warn(
                f"{where}: the k-space is all zero: a zero image (and zero maps) for this slice",
                ZeroCalibrationWarning,
                stacklevel=3,
            )
        b, c, h, w = kspace.shape
        image = kspace.new_zeros(b, h, w, dtype=torch.float32)
        pred = kspace.new_zeros(b, c, h, w, dtype=torch.complex64)
        maps = torch.zeros_like(pred)
        keep = (~empty).nonzero().flatten()
        if keep.numel():
            nlf = torch.as_tensor(num_low_frequencies).reshape(-1)
            out = self(
                kspace[keep],
                mask[keep] if mask.shape[0] == b else mask,
                nlf[keep] if nlf.numel() == b else nlf,
            )
            image[keep], pred[keep], maps[keep] = out.image.float(), out.kspace, out.maps
        return Reconstruction(image=image, kspace=pred, maps=maps, cascades=[])

    def _varnet(self, k: torch.Tensor, m: torch.Tensor, nlf: int):
        """``VarNet.forward`` step by step (identical arithmetic), keeping the k-space and
        the maps, with each cascade checkpointed when asked to.

        Returns ``(predicted k-space, maps)``, both ``(B, C, H, W, 2)``.
        """
        maps = self.varnet.sens_net(k, m, nlf)  # (B, C, H, W, 2)
        pred = k.clone()
        ckpt = self.checkpointing and torch.is_grad_enabled()
        for cascade in self.varnet.cascades:
            if ckpt:
                pred = checkpoint(cascade, pred, k, m, maps, use_reentrant=False)
            else:
                pred = cascade(pred, k, m, maps)
        return pred, maps


def pretrained_varnet(weights: str | PathLike[str] | None, **sizes: Any) -> FastmriVarNet:
    """fastMRI's E2E-VarNet with given weights, in eval mode (``method=varnet_fastmri``).

    Args:
        weights: the weights file (see :func:`load_fastmri_weights`); required.
        **sizes: :class:`FastmriVarNet` sizes; the published ones by default.

    Raises:
        FileNotFoundError: ``weights`` is ``None`` or does not exist.
        ValueError: the file does not hold VarNet weights of these sizes.
    """
    if weights is None:
        raise FileNotFoundError(
            "method=varnet_fastmri needs fastMRI's VarNet weights: pass weights=PATH"
        )
    return FastmriVarNet(weights=weights, **sizes).eval()


def load_fastmri_weights(varnet: nn.Module, path: str | PathLike[str]) -> None:
    """Load fastMRI E2E-VarNet weights strictly into ``varnet`` (a ``fastmri.models.VarNet``).

    Accepted files (read with ``torch.load(weights_only=True)``, so no code runs):
    a plain state dict, as fastMRI's pretrained ``*_state_dict.pt`` files and
    ``torch.save(VarNet(...).state_dict())`` write it; or a checkpoint with a
    ``state_dict`` entry whose VarNet keys start with ``varnet.`` (fastMRI's
    Lightning ``VarNetModule``; its other entries, e.g. the SSIM loss buffer, are
    ignored) or ``net.varnet.`` (an ``unrolled-train model=varnet_fastmri`` checkpoint).

    Args:
        varnet: the network to fill.
        path: the weights file.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is unreadable, holds no state dict, or its tensors
            do not match ``varnet`` exactly (names and shapes); one line naming
            the file and the first differences.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: VarNet weights file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ValueError(
            f"{path}: not a readable PyTorch weights file ({type(e).__name__}: {msg})"
        ) from None
    state = _varnet_state(obj, path)
    expected = varnet.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        for what, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
            if items:
                parts.append(f"{len(items)} {what} (e.g. {', '.join(items[:2])})")
        raise ValueError(
            f"{path}: not a fastMRI VarNet state dict of this model's sizes "
            f"(num_cascades, chans, pools, sens_chans, sens_pools): {'; '.join(parts)}"
        )
    varnet.load_state_dict(state, strict=True)


def _varnet_state(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The VarNet tensors of a loaded file: a plain state dict or a checkpoint's, prefixes off."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise ValueError(f"{path}: holds no state dict (a mapping of names to tensors)")
    for prefix in WEIGHT_PREFIXES:
        if any(k.startswith(prefix) for k in obj):
            return {k[len(prefix) :]: v for k, v in obj.items() if k.startswith(prefix)}
    return dict(obj)
