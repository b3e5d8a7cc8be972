"""Residual-block CNN denoisers that act on complex images.

The complex image becomes two real channels only here, at the CNN boundary:
:class:`ComplexDenoiser` normalises each sample (per-channel mean and
standard deviation, as E2E-VarNet does), runs a real-valued CNN and maps the
result back to a complex image. The CNNs predict a residual, so a freshly
initialised denoiser is close to the identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResBlock(nn.Module):
    """``x + scale * conv(relu(conv(x)))`` (EDSR-style, no batch norm)."""

    def __init__(self, channels: int, res_scale: float = 0.1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.conv2(F.relu(self.conv1(x), inplace=True))


class ResNet(nn.Module):
    """Single-scale residual CNN: head conv, ``num_blocks`` residual blocks, tail conv.

    Args:
        in_channels: input channels (2 for a complex image).
        out_channels: output channels.
        channels: feature channels.
        num_blocks: residual blocks.
        res_scale: residual scaling of each block.
    """

    def __init__(
        self,
        in_channels: int = 2,
        out_channels: int = 2,
        channels: int = 32,
        num_blocks: int = 4,
        res_scale: float = 0.1,
    ) -> None:
        super().__init__()
        self.head = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(channels, res_scale) for _ in range(num_blocks)])
        self.tail = nn.Conv2d(channels, out_channels, 3, padding=1)
        self.divisor = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in, H, W)`` -> ``(B, out, H, W)``."""
        h = self.head(x)
        return self.tail(h + self.body(h))


class MultiScaleResNet(nn.Module):
    """Two-level residual CNN: blocks at full and half resolution, joined by a skip.

    Args:
        in_channels: input channels (2 for a complex image).
        out_channels: output channels.
        channels: feature channels at full resolution (twice that at half).
        num_blocks: residual blocks per level (half before, half after the
            coarse level at full resolution; all of them at the coarse level).
        res_scale: residual scaling of each block.
    """

    def __init__(
        self,
        in_channels: int = 2,
        out_channels: int = 2,
        channels: int = 32,
        num_blocks: int = 4,
        res_scale: float = 0.1,
    ) -> None:
        super().__init__()
        half = max(num_blocks // 2, 1)
        self.head = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.enc = nn.Sequential(*[ResBlock(channels, res_scale) for _ in range(half)])
        self.down = nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1)
        self.mid = nn.Sequential(*[ResBlock(2 * channels, res_scale) for _ in range(num_blocks)])
        self.up = nn.ConvTranspose2d(2 * channels, channels, 2, stride=2)
        self.dec = nn.Sequential(*[ResBlock(channels, res_scale) for _ in range(half)])
        self.tail = nn.Conv2d(channels, out_channels, 3, padding=1)
        self.divisor = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in, H, W)`` -> ``(B, out, H, W)``; H and W must be even."""
        h = self.enc(self.head(x))  # (B, ch, H, W)
        m = self.down(h)  # (B, 2ch, H/2, W/2)
        m = m + self.mid(m)
        h = h + self.up(m)  # (B, ch, H, W)
        return self.tail(self.dec(h))


class ComplexDenoiser(nn.Module):
    """Wrap a real CNN as a residual denoiser of complex images.

    ``z = x + unnormalise(cnn(normalise([Re x, Im x])))``; the normalisation
    is per sample and per channel, so the network is invariant to the global
    scale of the data (fastMRI k-space spans orders of magnitude).

    ``M`` complex images per sample (one per set of soft-SENSE maps), ``(B, M, H, W)``,
    become ``2M`` channels ``[Re x_1, Im x_1, Re x_2, ...]``: the CNN then maps ``2M``
    channels to ``2M``.

    Args:
        cnn: a real CNN mapping 2 channels to 2 channels (``2M`` to ``2M`` for ``M``
            images) with an integer attribute ``divisor`` (inputs are padded to
            multiples of it).
    """

    def __init__(self, cnn: nn.Module) -> None:
        super().__init__()
        self.cnn = cnn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Complex image ``(B, H, W)`` (or ``(B, M, H, W)``) -> denoised, same shape."""
        if x.dim() == 4:  # (B, M, H, W): the sets become channel pairs
            b, m, h, w = x.shape
            r = torch.view_as_real(x).permute(0, 1, 4, 2, 3).reshape(b, 2 * m, h, w)
            out = self._residual(r, h, w)  # (B, 2M, H, W)
            out = out.reshape(b, m, 2, h, w).permute(0, 1, 3, 4, 2).contiguous()
            return x + torch.view_as_complex(out)  # (B, M, H, W)
        h, w = x.shape[-2:]
        r = torch.view_as_real(x).permute(0, 3, 1, 2)  # (B, 2, H, W)
        out = self._residual(r, h, w).permute(0, 2, 3, 1).contiguous()  # (B, H, W, 2)
        return x + torch.view_as_complex(out)

    @torch.no_grad()
    def zero_residual_(self) -> ComplexDenoiser:
        """Zero the CNN's last convolution (weights and bias): the denoiser becomes the identity.

        The rest of the CNN keeps its weights, so training moves away from the
        identity at the first step (the last layer's gradient is not zero),
        as in ReZero / Fixup-style initialisations of residual networks.

        Raises:
            ValueError: the CNN has no convolution.
        """
        convs = [m for m in self.cnn.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
        if not convs:
            raise ValueError(f"{type(self.cnn).__name__} has no convolution to zero")
        convs[-1].weight.zero_()
        if convs[-1].bias is not None:
            convs[-1].bias.zero_()
        return self

    def _residual(self, r: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """The unnormalised CNN residual of real channels ``(B, 2M, H, W)``."""
        mean = r.mean(dim=(2, 3), keepdim=True)
        std = r.std(dim=(2, 3), keepdim=True).clamp_min(1e-12)
        r = (r - mean) / std
        d = getattr(self.cnn, "divisor", 1)
        ph, pw = (-h) % d, (-w) % d
        if ph or pw:
            r = F.pad(r, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="reflect")
        out = self.cnn(r)
        out = out[..., ph // 2 : ph // 2 + h, pw // 2 : pw // 2 + w].float()
        return out * std  # a residual: the mean stays with x
