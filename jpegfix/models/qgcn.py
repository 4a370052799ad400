"""QGCN: quantization-table-guided restoration (Li et al., IEEE TIP; see NOTES.md).

Two branches. The global branch looks at the whole decoded image shrunk to 112x112 and
summarises it in a 64-d vector (paper Table I). The restoration branch works at half
resolution (4x4 stride-2 conv in, pixel shuffle out) on the image concatenated with its
quantization maps; the global vector is broadcast and concatenated between its two residual
groups. Because the global vector depends on the whole image, the restore engine computes it
once per image and shares it between all tiles.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from jpegfix.models.registry import MODELS, ModelSpec


class ResidualBlock(nn.Module):
    """conv3-ReLU-conv3 without bias, its output scaled by 0.1 before the skip (EDSR style)."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.1 * self.body(x)


class ResidualGroup(nn.Module):
    """``blocks`` residual blocks and a closing conv, wrapped in a group skip."""

    def __init__(self, width: int, blocks: int):
        super().__init__()
        layers = [ResidualBlock(width) for _ in range(blocks)]
        self.body = nn.Sequential(*layers, nn.Conv2d(width, width, 3, padding=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class GlobalBranch(nn.Module):
    """Paper Table I: 112x112 input, four [4x4/2 conv, 3x3 conv] stages, then two fc layers."""

    def __init__(self, *, channels: int, widths: tuple[int, ...], hidden: int, dim: int, size: int):
        super().__init__()
        self.size = size
        stages, previous = [], channels
        for width in widths:
            stages += [
                nn.Conv2d(previous, width, 4, stride=2, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
            ]
            previous = width
        self.features = nn.Sequential(*stages)
        side = size // 2 ** len(widths)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(previous * side * side, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, dim),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) image in [-1, 1] of any size -> (N, dim)."""
        small = F.interpolate(
            image, size=(self.size, self.size), mode="bicubic", align_corners=False,
            antialias=image.shape[-1] > self.size or image.shape[-2] > self.size,
        )
        return self.head(self.features(small))


class QGCN(nn.Module):
    """The QGCN network. Inputs and outputs are images in [0, 1]; maps are table / 255.

    ``image_residual`` adds the decoded input to the output (not in the paper or the public
    code, which predict the image directly): it lets small networks trained briefly on a CPU
    start from the identity instead of learning it.
    """

    size_multiple = 2

    def __init__(
        self,
        *,
        channels: int = 3,
        width: int = 64,
        blocks: int = 32,
        global_widths: tuple[int, ...] = (32, 64, 128, 128),
        global_hidden: int = 1024,
        global_dim: int = 64,
        global_size: int = 112,
        image_residual: bool = False,
    ):
        super().__init__()
        self.hyperparameters = dict(
            channels=channels, width=width, blocks=blocks, global_widths=list(global_widths),
            global_hidden=global_hidden, global_dim=global_dim, global_size=global_size,
            image_residual=image_residual,
        )
        self.channels = channels
        # Peak inference activations per input pixel; measured 412 B at width 32 (float32,
        # CPU), kept conservative so auto-chosen tiles fit.
        self.bytes_per_pixel = 16 * width + 64
        self.image_residual = image_residual
        map_channels = 2 if channels == 3 else 1
        self.global_branch = GlobalBranch(
            channels=channels, widths=tuple(global_widths), hidden=global_hidden, dim=global_dim,
            size=global_size,
        )
        self.head = nn.Sequential(
            nn.Conv2d(channels + map_channels, width, 3, padding=1, bias=False),
            nn.Conv2d(width, width, 4, stride=2, padding=1), nn.ReLU(inplace=True),
        )
        self.group1 = ResidualGroup(width, blocks)
        self.fuse = nn.Sequential(nn.Conv2d(width + global_dim, width, 3, padding=1), nn.ReLU(inplace=True))
        self.group2 = ResidualGroup(width, blocks)
        self.tail = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1),
            nn.Conv2d(width, width * 4, 3, padding=1), nn.PixelShuffle(2),
            nn.Conv2d(width, channels, 3, padding=1),
        )

    def global_vector(self, image: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) whole image in [0, 1] -> (N, global_dim) vector shared by its tiles."""
        return self.global_branch(image * 2 - 1)

    def forward(
        self, image: torch.Tensor, qmaps: torch.Tensor, vector: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Restore ``image`` (N, C, H, W) in [0, 1], H and W even, given ``qmaps`` (N, K, H, W).

        ``vector`` is the global vector of the whole image; when omitted it is computed from
        ``image`` itself (training on crops, or an untiled image).
        """
        if vector is None:
            vector = self.global_vector(image)
        x = self.head(torch.cat([image, qmaps], dim=1) * 2 - 1)
        x = self.group1(x)
        broadcast = vector[:, :, None, None].expand(-1, -1, x.shape[-2], x.shape[-1])
        x = self.group2(self.fuse(torch.cat([x, broadcast.to(x.dtype)], dim=1)))
        out = self.tail(x)
        if self.image_residual:
            return image + out
        return (out + 1) / 2


# Variants: the paper's size, and CPU sizes practical on a laptop (width / depth cut, same
# structure). MAC counts per pixel come from `jpegfix bench --speed`.
PAPER = dict(width=64, blocks=32, global_widths=(32, 64, 128, 128), global_hidden=1024)
SMALL = dict(width=32, blocks=4, global_widths=(16, 32, 64, 64), global_hidden=256, image_residual=True)

for colour, channels in (("color", 3), ("gray", 1)):
    MODELS.register(ModelSpec(
        name=f"qgcn-{colour}-s", method="qgcn", arch=QGCN,
        arch_args=dict(SMALL, channels=channels), channels=channels, needs_tables=True,
        description=f"QGCN, CPU size ({colour}): width 32, 2x4 residual blocks",
    ))
    MODELS.register(ModelSpec(
        name=f"qgcn-{colour}-paper", method="qgcn", arch=QGCN,
        arch_args=dict(PAPER, channels=channels), channels=channels, needs_tables=True,
        description=f"QGCN at the paper's size ({colour}): width 64, 2x32 residual blocks",
    ))
