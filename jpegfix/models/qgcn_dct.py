"""QGCN-DCT: QGCN's conditioning on a trunk that reads block DCT coefficients (race C).

A JPEG file is 8x8 blocks of DCT coefficients, each quantized with the step its table gives;
JDEC (CVPR 2024) and the dual-domain restorers work on that representation. This network
recomputes it from the decoded pixels (the engine pads and tiles on the 16-pixel grid, so
tiles are block-aligned), reads every coefficient in units of its own quantization step, and
predicts a correction in those same units, which an inverse DCT turns back into pixels.

* Luma: the 8x8 block DCT of Y, 64 channels at 1/8 resolution. Its steps come from the luma
  quantization map unshuffled by 8: on an aligned tile that is exactly the file's table.
* Chroma is read on the 4:2:0 grid, explicitly: Cb and Cr are box-averaged over 2x2 pixels
  (undoing the decoder's upsampling up to a slight blur) and transformed in 8x8 blocks that
  cover 16x16 pixels, at 1/16 resolution. A 4:2:0 chroma map repeats each table entry over
  2x2 pixels, so the map average-pooled by 2 and unshuffled by 8 is exactly the chroma table.
  For 4:4:4 and 4:2:2 files the same reading gives the 2x2 (or 1x2) means of neighbouring
  table entries: a consistent scale rather than the file's intervals, and the chroma
  correction still lands on a 2x-subsampled grid (the full-resolution chroma of the input
  is kept; only the change is coarse). Chroma features are repeated 2x2 onto the luma grid.
* The network sees asinh(coefficient / step) (near-integers at low quality, compressed where
  the step is 1 at quality 100) and log(step) / log(255); the trunk is wide 3x3 convs at 1/8
  resolution, modulated by QGCN's global vector (computed once from the whole image).
* Because the correction is in units of the step, it is small wherever the file's steps are
  small: at high quality the network can only make small changes.
* A light pixel-domain refinement (two 3x3 convs at full resolution, zero-initialised) fixes
  what the block transform cannot express cheaply (rounding, clipping, the chroma grid).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from jpegfix.dct import BLOCK, dct_matrix, rgb_to_ycbcr, ycbcr_to_rgb
from jpegfix.models.layers import Modulation
from jpegfix.models.qgcn import ResidualBlock as ResBlock
from jpegfix.models.qgcn import GlobalBranch
from jpegfix.models.registry import MODELS, ModelSpec
from jpegfix.qmaps import MAP_SCALE

COEFFICIENTS = BLOCK * BLOCK


def dct_basis() -> torch.Tensor:
    """(64, 1, 8, 8) orthonormal 2-D DCT basis; channel v * 8 + u is frequency (v, u), the
    order in which ``pixel_unshuffle`` lays out an 8x8 table repeated over a map."""
    m = dct_matrix(torch.float64)
    return torch.einsum("vy,ux->vuyx", m, m).reshape(COEFFICIENTS, 1, BLOCK, BLOCK).float()


class BlockDCT(nn.Conv2d):
    """The 8x8 block DCT of a (N, 1, H, W) plane as a fixed stride-8 convolution ->
    (N, 64, H/8, W/8). The basis is a non-persistent buffer: not trained, not saved, and
    counted by the MAC counter like any convolution."""

    def __init__(self):
        super().__init__(1, COEFFICIENTS, BLOCK, stride=BLOCK, bias=False)
        del self.weight
        self.register_buffer("weight", dct_basis(), persistent=False)


class BlockIDCT(nn.ConvTranspose2d):
    """The inverse of :class:`BlockDCT` (the basis is orthonormal, so the same weights)."""

    def __init__(self):
        super().__init__(COEFFICIENTS, 1, BLOCK, stride=BLOCK, bias=False)
        del self.weight
        self.register_buffer("weight", dct_basis(), persistent=False)


class ModulatedGroup(nn.Module):
    """Global modulation (FiLM) followed by residual blocks, wrapped in a group skip."""

    def __init__(self, width: int, dim: int, blocks: int):
        super().__init__()
        self.modulation = Modulation(dim, width)
        self.blocks = nn.Sequential(*[ResBlock(width) for _ in range(blocks)])

    def forward(self, x: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
        return x + self.blocks(self.modulation(x, vector))


def steps_of(qmap: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) quantization map on an 8-pixel grid -> (N, 64, H/8, W/8) steps."""
    return F.pixel_unshuffle(qmap * MAP_SCALE, BLOCK).clamp_min(1)


class QGCNDCT(nn.Module):
    """Inputs and outputs are images in [0, 1]; maps are table / 255, as for :class:`QGCN`."""

    def __init__(
        self,
        *,
        channels: int = 3,
        width: int = 160,
        groups: int = 2,
        blocks: int = 3,
        refine_width: int = 16,
        global_widths: tuple[int, ...] = (16, 32, 64, 64),
        global_hidden: int = 256,
        global_dim: int = 64,
        global_size: int = 112,
    ):
        super().__init__()
        self.hyperparameters = dict(
            channels=channels, width=width, groups=groups, blocks=blocks, refine_width=refine_width,
            global_widths=list(global_widths), global_hidden=global_hidden, global_dim=global_dim,
            global_size=global_size,
        )
        self.channels = channels
        self.size_multiple = 2 * BLOCK if channels == 3 else BLOCK
        # Peak inference activations per input pixel: a few full-resolution planes (image,
        # YCbCr, corrections, refinement features) in float32; the trunk at 1/8 is cheap.
        self.bytes_per_pixel = 4 * (8 * channels + 3 * refine_width) + 256
        map_channels = 2 if channels == 3 else 1
        self.global_branch = GlobalBranch(
            channels=channels, widths=tuple(global_widths), hidden=global_hidden, dim=global_dim,
            size=global_size,
        )
        self.dct, self.idct = BlockDCT(), BlockIDCT()
        # Luma: coefficients + log steps; colour adds Cb, Cr coefficients + log chroma steps.
        inputs = 2 * COEFFICIENTS + (3 * COEFFICIENTS if channels == 3 else 0)
        self.entry = nn.Sequential(nn.Conv2d(inputs, width, 3, padding=1), nn.ReLU(inplace=True))
        self.trunk = nn.ModuleList(ModulatedGroup(width, global_dim, blocks) for _ in range(groups))
        self.luma_out = nn.Conv2d(width, COEFFICIENTS, 3, padding=1)
        self.chroma_out = nn.Conv2d(width, 2 * COEFFICIENTS, 3, padding=1) if channels == 3 else None
        self.refine = None
        if refine_width:
            self.refine = nn.Sequential(
                nn.Conv2d(channels + map_channels, refine_width, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(refine_width, channels, 3, padding=1),
            )
        # Every output starts at zero: the untrained network returns the decoded image.
        for conv in (self.luma_out, self.chroma_out, self.refine[-1] if self.refine else None):
            if conv is not None:
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)

    def global_vector(self, image: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) whole image in [0, 1] -> (N, global_dim) vector shared by its tiles."""
        return self.global_branch(image * 2 - 1)

    def _read(self, plane: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) samples on 0..255 -> asinh of its block coefficients in units of the step."""
        return torch.asinh(self.dct(plane - 128) / steps)

    def forward(
        self, image: torch.Tensor, qmaps: torch.Tensor, vector: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Restore ``image`` (N, C, H, W) in [0, 1], H and W multiples of
        :attr:`size_multiple` and block-aligned with the file, given ``qmaps`` (N, K, H, W)
        and the whole image's ``vector`` (computed from ``image`` when omitted)."""
        if vector is None:
            vector = self.global_vector(image)
        colour = self.channels == 3
        ycc = rgb_to_ycbcr(image * 255) if colour else image * 255
        luma_steps = steps_of(qmaps[:, :1])
        luma = self._read(ycc[:, :1], luma_steps)
        features = [luma, torch.log(luma_steps) / math.log(MAP_SCALE)]
        if colour:
            chroma_steps = steps_of(F.avg_pool2d(qmaps[:, 1:2], 2))
            chroma = F.avg_pool2d(ycc[:, 1:], 2)
            cb = self._read(chroma[:, :1], chroma_steps)
            cr = self._read(chroma[:, 1:], chroma_steps)
            coarse = torch.cat([cb, cr, torch.log(chroma_steps) / math.log(MAP_SCALE)], dim=1)
            features.append(F.interpolate(coarse, scale_factor=2, mode="nearest"))
        x = self.entry(torch.cat(features, dim=1))
        for group in self.trunk:
            x = group(x, vector)
        change = self.idct(self.luma_out(x) * luma_steps)
        if colour:
            correction = self.chroma_out(F.avg_pool2d(x, 2))
            cb_change = self.idct(correction[:, :COEFFICIENTS] * chroma_steps)
            cr_change = self.idct(correction[:, COEFFICIENTS:] * chroma_steps)
            chroma_change = F.interpolate(torch.cat([cb_change, cr_change], dim=1), scale_factor=2,
                                          mode="bilinear", align_corners=False)
            out = ycbcr_to_rgb(ycc + torch.cat([change, chroma_change], dim=1)) / 255
        else:
            out = (ycc + change) / 255
        if self.refine is not None:
            out = out + self.refine(torch.cat([out, qmaps], dim=1) * 2 - 1)
        return out


SMALL = dict(width=160, groups=2, blocks=3, refine_width=16)

for colour, channels in (("color", 3), ("gray", 1)):
    MODELS.register(ModelSpec(
        name=f"qgcn-dct-{colour}-s", method="qgcn", arch=QGCNDCT,
        arch_args=dict(SMALL, channels=channels), channels=channels, needs_tables=True,
        description=f"QGCN conditioning on a block-DCT trunk ({colour}): width 160 at 1/8, 2x3 blocks",
    ))
