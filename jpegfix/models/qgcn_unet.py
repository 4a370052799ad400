"""QGCN-UNet: QGCN's conditioning on a multi-scale encoder-decoder trunk (architecture race B).

QGCN's restoration branch spends its whole budget at half resolution with a narrow width.
This trunk keeps QGCN's two defining inputs (the per-pixel quantization maps, and the global
vector computed once from the whole image) but moves the work down a U-Net: a 3x3 stem at
full resolution, then levels at 1/2, 1/4 and 1/8 whose width doubles as the resolution halves,
so a 3x3 conv costs the same per image pixel at every level while the receptive field grows
eightfold. Every level, on the way down and on the way up, receives the maps average-pooled to
its scale (added through a 1x1 conv) and the global vector as a per-channel affine modulation
(FiLM). The output is a correction added to the decoded image; it leaves a zero-initialised
conv scaled by 0.1, so that Adam's first steps (each weight moves by about the learning
rate, whatever its gradient) cannot throw the image far from the identity: without the
scale the training loss doubled in the first few steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from jpegfix.models.layers import Modulation
from jpegfix.models.qgcn import ResidualBlock as ResBlock
from jpegfix.models.qgcn import GlobalBranch
from jpegfix.models.registry import MODELS, ModelSpec


class ConditionedLevel(nn.Module):
    """One scale of the trunk: maps in through a 1x1 conv, global modulation, residual blocks."""

    def __init__(self, width: int, map_channels: int, dim: int, blocks: int):
        super().__init__()
        self.maps = nn.Conv2d(map_channels, width, 1)
        self.modulation = Modulation(dim, width)
        self.blocks = nn.Sequential(*[ResBlock(width) for _ in range(blocks)])

    def forward(self, x: torch.Tensor, maps: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.modulation(x + self.maps(maps), vector))


class QGCNUNet(nn.Module):
    """Inputs and outputs are images in [0, 1]; maps are table / 255, as for :class:`QGCN`.

    ``widths[i]`` is the width at scale 1/2**i; ``down_blocks[i]`` and ``up_blocks[i]`` the
    residual blocks of level i on the way down and up (level 0, full resolution, has none:
    its convs cost the most per pixel); the deepest level runs ``down_blocks[-1]`` only.
    """

    def __init__(
        self,
        *,
        channels: int = 3,
        widths: tuple[int, ...] = (16, 32, 64, 128),
        down_blocks: tuple[int, ...] = (0, 1, 2, 6),
        up_blocks: tuple[int, ...] = (0, 1, 2),
        global_widths: tuple[int, ...] = (16, 32, 64, 64),
        global_hidden: int = 256,
        global_dim: int = 64,
        global_size: int = 112,
    ):
        super().__init__()
        if not len(widths) == len(down_blocks) == len(up_blocks) + 1:
            raise ValueError("need one width and one down_blocks entry per level, one up_blocks entry fewer")
        self.hyperparameters = dict(
            channels=channels, widths=list(widths), down_blocks=list(down_blocks), up_blocks=list(up_blocks),
            global_widths=list(global_widths), global_hidden=global_hidden, global_dim=global_dim,
            global_size=global_size,
        )
        self.channels = channels
        self.size_multiple = 2 ** (len(widths) - 1)
        # Peak inference activations per input pixel: full-resolution features are held for
        # the skip while the decoder's own are built (float32); generous, so auto tiles fit.
        self.bytes_per_pixel = 4 * (channels + 2) * 8 + 48 * widths[0]
        map_channels = self.map_channels = 2 if channels == 3 else 1
        self.global_branch = GlobalBranch(
            channels=channels, widths=tuple(global_widths), hidden=global_hidden, dim=global_dim,
            size=global_size,
        )
        self.stem = nn.Conv2d(channels + map_channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList(
            nn.Conv2d(widths[i - 1], widths[i], 2, stride=2) for i in range(1, len(widths))
        )
        self.encoder = nn.ModuleList(
            ConditionedLevel(w, map_channels, global_dim, b) for w, b in zip(widths, down_blocks)
        )
        self.up = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[i + 1], 4 * widths[i], 1), nn.PixelShuffle(2))
            for i in range(len(up_blocks))
        )
        self.decoder = nn.ModuleList(
            ConditionedLevel(w, map_channels, global_dim, b) for w, b in zip(widths, up_blocks)
        )
        self.tail = nn.Conv2d(widths[0], channels, 3, padding=1)
        nn.init.zeros_(self.tail.weight)  # starts as the identity: the decoded image
        nn.init.zeros_(self.tail.bias)

    def load_shallower(self, state: dict[str, torch.Tensor]) -> list[str]:
        """Load the weights of the same net with fewer residual blocks at some levels: the
        extra blocks start as the identity (their last conv zeroed), so this net computes
        exactly what ``state`` did and training can only add to it. Returns the new blocks'
        names.

        Raises:
            RuntimeError: ``state`` differs by more than missing residual blocks.
        """
        missing, unexpected = self.load_state_dict(state, strict=False)
        new = sorted({key.split(".body.")[0] for key in missing if ".blocks." in key and ".body." in key})
        if unexpected or any(not key.startswith(tuple(f"{block}.body." for block in new)) for key in missing):
            raise RuntimeError(f"not the same net with fewer blocks: missing {missing[:3]}, unexpected {unexpected[:3]}")
        with torch.no_grad():
            for block in new:
                self.get_submodule(block).body[-1].weight.zero_()
        return new

    def global_vector(self, image: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) whole image in [0, 1] -> (N, global_dim) vector shared by its tiles."""
        return self.global_branch(image * 2 - 1)

    def forward(
        self, image: torch.Tensor, qmaps: torch.Tensor, vector: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Restore ``image`` (N, C, H, W) in [0, 1], H and W multiples of
        :attr:`size_multiple`, given ``qmaps`` (N, K, H, W) and the whole image's ``vector``
        (computed from ``image`` when omitted)."""
        if vector is None:
            vector = self.global_vector(image)
        maps = qmaps * 2 - 1
        pooled = [maps] + [F.avg_pool2d(maps, 2**i) for i in range(1, len(self.encoder))]
        x = self.stem(torch.cat([image * 2 - 1, maps], dim=1))
        skips = []
        for level, encode in enumerate(self.encoder):
            if level:
                x = self.down[level - 1](F.relu(x))
            x = encode(x, pooled[level], vector)
            skips.append(x)
        for level in reversed(range(len(self.decoder))):
            x = self.up[level](x) + skips[level]
            x = self.decoder[level](x, pooled[level], vector)
        return image + 0.1 * self.tail(F.relu(x))


class BlindQGCNUNet(QGCNUNet):
    """The same network for images whose compression is unknown: a PNG of JPEG origin whose
    tables could not be read from the pixels, a JPEG resized or cropped after decoding, a
    clean photo. The map inputs are held at zero, "no quantization", so the table-guided
    weights start it as a network that leaves the image nearly alone (what it does to a
    quality-100 file), and the network learns from the pixels how damaged the image is.
    Trained with :data:`jpegfix.data.BLIND_AFTER_DECODING`.

    The global vector reads full-resolution crops instead of the whole image shrunk to 112
    pixels: shrinking a large photo averages its 8x8 blocking away, so the vector would say
    "clean" for a photo whose training patches said "quality 10".
    """

    crops_per_side = 3

    def global_vector(self, image: torch.Tensor) -> torch.Tensor:
        """The mean vector of up to 3x3 full-resolution crops spread over ``image`` on the
        8-pixel grid (padded by edge replication when a side is shorter than a crop)."""
        size = self.global_branch.size
        height, width = image.shape[-2:]
        if height < size or width < size:
            image = F.pad(image, (0, max(0, size - width), 0, max(0, size - height)), mode="replicate")
            height, width = image.shape[-2:]
        tops, lefts = (_grid_starts(side - size, self.crops_per_side) for side in (height, width))
        crops = torch.cat([image[..., t : t + size, l : l + size] for t in tops for l in lefts])
        vectors = self.global_branch(crops * 2 - 1)
        return vectors.view(len(tops) * len(lefts), image.shape[0], -1).mean(dim=0)

    def forward(self, image: torch.Tensor, vector: torch.Tensor | None = None) -> torch.Tensor:
        unknown = image.new_zeros(image.shape[0], self.map_channels, *image.shape[2:])
        return super().forward(image, unknown, vector)


def _grid_starts(room: int, count: int) -> list[int]:
    """Up to ``count`` distinct crop starts from 0 to ``room``, on the 8-pixel grid."""
    return sorted({round(room * i / max(1, count - 1)) // 8 * 8 for i in range(count)})


SMALL = dict(widths=(16, 32, 64, 128), down_blocks=(0, 1, 2, 6), up_blocks=(0, 1, 2))
# Twice the width at every level: 4x the cost (0.24 MMAC/px against 0.06), inside the
# 0.3 MMAC/px budget; 2.4x slower to train per step (bf16, Xeon with AMX).
MEDIUM = dict(widths=(32, 64, 128, 256), down_blocks=(0, 1, 2, 6), up_blocks=(0, 1, 2))

for colour, channels in (("color", 3), ("gray", 1)):
    MODELS.register(ModelSpec(
        name=f"qgcn-unet-{colour}-s", method="qgcn", arch=QGCNUNet,
        arch_args=dict(SMALL, channels=channels), channels=channels, needs_tables=True,
        description=f"QGCN conditioning on a U-Net trunk ({colour}): widths 16-128 at 1/1-1/8",
    ))
    MODELS.register(ModelSpec(
        name=f"qgcn-unet-{colour}-m", method="qgcn", arch=QGCNUNet,
        arch_args=dict(MEDIUM, channels=channels), channels=channels, needs_tables=True, weights_dtype="float16",
        description=f"QGCN conditioning on a U-Net trunk ({colour}): widths 32-256 at 1/1-1/8",
    ))
    MODELS.register(ModelSpec(
        name=f"qgcn-unet-blind-{colour}-s", method="qgcn", arch=BlindQGCNUNet,
        arch_args=dict(SMALL, channels=channels), channels=channels, needs_tables=False,
        description=f"The U-Net trunk and QGCN's global branch without tables ({colour}): blind, "
                    "trained on clean, resized and off-grid inputs too",
    ))
    MODELS.register(ModelSpec(
        name=f"qgcn-unet-blind-{colour}-m", method="qgcn", arch=BlindQGCNUNet,
        arch_args=dict(MEDIUM, channels=channels), channels=channels, needs_tables=False,
        weights_dtype="float16",
        description=f"The medium U-Net trunk and QGCN's global branch without tables ({colour}): "
                    "blind, trained on clean, resized and off-grid inputs too",
    ))
