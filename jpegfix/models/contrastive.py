"""Contrastive compression-quality guided restoration (Wang et al., ECCV 2022; see NOTES.md).

Two parts, trained in two stages (``train/recipes/contrastive.py``):

* :class:`CompressionEncoder`, a cut-down ResNet-18 trained without quality labels by MoCo
  (stage ``encoder``). Its scale outputs E0 (full size), E1 (1/2), E2 (1/4), E3 (1/8) and its
  pooled, L2-normalised vector describe how strongly the input was compressed.
* :class:`ContrastiveNet`, the blind restorer (stage ``restore``). It holds a frozen copy of
  the encoder, fuses neighbouring encoder scales with EFFMs, merges them into the decoder
  with invertible fusion modules, decodes with RNAN-style local attention blocks, pools a
  pyramid of box averages and adds the input back (global residual).

One weight file per restorer holds both parts. ``scale`` chooses where the decoder runs:
1 is the published full-resolution design; 2 runs it on a pixel-unshuffled half-resolution
trunk (the practical CPU configuration), with the same encoder and fusion.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from jpegfix.models.layers import ResBlock
from jpegfix.models.registry import MODELS, ModelSpec

VECTOR_WHOLE_PIXELS = 512 * 512
"""Images up to this size get their quality vector from the whole image."""
VECTOR_CROP = 256
VECTOR_GRID = 4
"""Larger images average the encoder over a VECTOR_GRID x VECTOR_GRID grid of crops."""


# -- the compression-quality encoder -----------------------------------------------------


class BasicBlock(nn.Module):
    """ResNet basic block: conv3-BN-ReLU-conv3-BN plus a (projected when needed) shortcut."""

    def __init__(self, inputs: int, outputs: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(outputs), nn.ReLU(inplace=True),
            nn.Conv2d(outputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or inputs != outputs:
            self.shortcut = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride=stride, bias=False), nn.BatchNorm2d(outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class CompressionEncoder(nn.Module):
    """Cut-down ResNet-18: stride-1 3x3 stem with BN, 3x3/2 max-pool, three stages of two
    basic blocks at ``width``, 2x``width`` (stride 2) and 4x``width`` (stride 2) channels.

    ``dim`` = 4 x ``width`` (256 at the published width 64). No projection head (as coded).

    ``highpass`` > 0 feeds the network ``0.5 + highpass x (image - 3x3 box blur)`` instead of
    the image (0: the published input). JPEG artifacts are a few grey levels against a
    content signal a hundred times larger; on a CPU budget the published encoder never found
    them: after 800 MoCo steps, and even after 300 supervised quality-classification steps,
    it was at chance. With the amplified residual the same ResNet separated qualities
    within 200 steps (nearest-neighbour probe 11% -> 52%). The residual keeps the 8x8 block
    edges and the ringing, and removes most of the colour and brightness that let two crops
    of one image be matched by content.
    """

    def __init__(self, *, channels: int = 3, width: int = 64, highpass: float = 0.0):
        super().__init__()
        self.dim = 4 * width
        self.highpass = highpass
        self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(width, width, 1), BasicBlock(width, width, 1))
        self.layer2 = nn.Sequential(BasicBlock(width, 2 * width, 2), BasicBlock(2 * width, 2 * width, 1))
        self.layer3 = nn.Sequential(BasicBlock(2 * width, 4 * width, 2), BasicBlock(4 * width, 4 * width, 1))

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """(N, C, H, W) in [0, 1] -> [E0 (w, H), E1 (w, H/2), E2 (2w, H/4), E3 (4w, H/8)] (sides rounded up)."""
        if self.highpass:
            blurred = F.avg_pool2d(F.pad(image, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
            image = 0.5 + self.highpass * (image - blurred)
        e0 = self.stem(image * 2 - 1)
        e1 = self.layer1(self.pool(e0))
        e2 = self.layer2(e1)
        e3 = self.layer3(e2)
        return [e0, e1, e2, e3]

    def pooled(self, image: torch.Tensor) -> torch.Tensor:
        """(N, dim) average of E3 before normalisation."""
        return self.features(image)[-1].mean(dim=(2, 3))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> (N, dim) unit-length compression-quality vectors."""
        return F.normalize(self.pooled(image), dim=1)


# -- fusion ------------------------------------------------------------------------------


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear up-sampling or area down-sampling of (N, C, h, w) to ``size``."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if x.shape[-2] % size[0] == 0 and x.shape[-1] % size[1] == 0:
        # the same windows as adaptive pooling; a fixed kernel also exports to ONNX (the
        # factor between pyramid levels does not depend on the tile size)
        return F.avg_pool2d(x, (int(x.shape[-2]) // int(size[0]), int(x.shape[-1]) // int(size[1])))
    if x.shape[-2] >= size[0] and x.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class EFFM(nn.Module):
    """Encoder feature fusion: [three neighbouring scales] -> 1x1 conv + LeakyReLU(0.1) -> 3x3 conv.

    Inputs are feature maps of any size, or (N, C) vectors (broadcast). The 1x1 conv over the
    concatenation is held as one 1x1 conv per input, applied *before* resizing and summed:
    resizing is linear and preserves constants, so this equals concatenating at the output
    size, at a fraction of the cost and memory (E2 and E3 are 16 and 64 times smaller).
    """

    def __init__(self, inputs: list[int], width: int):
        super().__init__()
        self.reduce = nn.ModuleList([nn.Conv2d(n, width, 1, bias=i == 0) for i, n in enumerate(inputs)])
        self.refine = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, features: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        total = 0
        for feature, reduce in zip(features, self.reduce):
            if feature.dim() == 2:
                total = total + reduce(feature[:, :, None, None])
            else:
                total = total + resize(reduce(feature), size)
        total = total.expand(-1, -1, *size)
        return self.refine(F.leaky_relu(total, 0.1))


class Phi(nn.Module):
    """conv3-LeakyReLU-conv3 with a skip, the transform inside an invertible fusion module."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.1, inplace=True), nn.Conv2d(width, width, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class InvertibleFusion(nn.Module):
    """Affine coupling of decoder features D and encoder features E, as the public code has it:

    F1 = D + phi1(E);  s = clamp * (2 sigmoid(phi2(F1)) - 1);  F2 = E * exp(s) + phi3(F1);
    output [F1, F2]. (The paper's eq. 5-6 swap the roles of D and E.) The map (D, E) -> (F1, F2)
    is a bijection, so no encoder information is lost; :meth:`inverse` recovers (D, E).
    """

    def __init__(self, width: int, clamp: float = 0.8):
        super().__init__()
        self.clamp = clamp
        self.phi1, self.phi2, self.phi3 = Phi(width), Phi(width), Phi(width)

    def _scale(self, f1: torch.Tensor) -> torch.Tensor:
        return self.clamp * (2 * torch.sigmoid(self.phi2(f1)) - 1)

    def forward(self, decoder: torch.Tensor, encoder: torch.Tensor) -> torch.Tensor:
        f1 = decoder + self.phi1(encoder)
        f2 = encoder * torch.exp(self._scale(f1)) + self.phi3(f1)
        return torch.cat([f1, f2], dim=1)

    def inverse(self, fused: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(D, E) from the (N, 2C, H, W) output of :meth:`forward`."""
        f1, f2 = fused.chunk(2, dim=1)
        encoder = (f2 - self.phi3(f1)) * torch.exp(-self._scale(f1))
        return f1 - self.phi1(encoder), encoder


# -- decoder -----------------------------------------------------------------------------


class LocalAttentionBlock(nn.Module):
    """RNAN's local residual attention block (RNAN: ResAttModuleDownUpPlus).

    head residual block -> trunk (two residual blocks) times a sigmoid mask from a
    down-up branch (stride-2 conv, two residual blocks, stride-2 transposed conv), plus the
    head output -> two tail residual blocks. Needs even input sides.
    """

    def __init__(self, width: int):
        super().__init__()
        self.head = ResBlock(width)
        self.trunk = nn.Sequential(ResBlock(width), ResBlock(width))
        self.mask = nn.Sequential(
            ResBlock(width),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            ResBlock(width), ResBlock(width),
            nn.ConvTranspose2d(width, width, 6, stride=2, padding=2),
            ResBlock(width),
            nn.Conv2d(width, width, 1), nn.Sigmoid(),
        )
        self.tail = nn.Sequential(ResBlock(width), ResBlock(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x)
        return self.tail(self.trunk(x) * self.mask(x) + x)


class FusionStage(nn.Module):
    """Invertible fusion of decoder and EFFM features, a 1x1 merge, local attention blocks."""

    def __init__(self, width: int, blocks: int, clamp: float):
        super().__init__()
        self.fusion = InvertibleFusion(width, clamp)
        self.merge = nn.Conv2d(2 * width, width, 1)
        self.body = nn.Sequential(*[LocalAttentionBlock(width) for _ in range(blocks)], nn.Conv2d(width, width, 3, padding=1))

    def forward(self, decoder: torch.Tensor, encoder: torch.Tensor) -> torch.Tensor:
        x = self.merge(self.fusion(decoder, encoder))
        return x + self.body(x)


class PyramidPooling(nn.Module):
    """Context at several sizes: per size, a 1x1 conv to one channel, then a stride-1 box
    average of that side; the maps are concatenated to the features.

    Stride-1 boxes (instead of pooling with stride and up-sampling) keep the network
    translation-equivariant, so tiles agree with the whole image. Linear 1x1 conv and box
    average commute, so doing the conv first makes the boxes one channel wide.
    """

    def __init__(self, width: int, sizes: list[int]):
        super().__init__()
        self.sizes = list(sizes)
        self.project = nn.Conv2d(width, len(self.sizes), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.project(x)
        pooled = [
            F.avg_pool2d(maps[:, i : i + 1], size + 1, stride=1, padding=size // 2, count_include_pad=False)
            for i, size in enumerate(self.sizes)
        ]
        return torch.cat([x, *pooled], dim=1)


class ContrastiveNet(nn.Module):
    """The blind restorer: ``net(image)`` or ``net(image, vector)`` -> restored image.

    ``image`` is (N, C, H, W) in [0, 1] with H, W multiples of :attr:`size_multiple`;
    ``vector`` is the image's (N, 4 x encoder_width) quality vector from
    :meth:`global_vector` (computed from ``image`` when omitted, as in training on patches).
    The output is the input plus a predicted correction (not clamped).

    The three fusion stages take EFFM[E0, E1, E2], EFFM[E1, E2, E3] and EFFM[E2, E3, vector]:
    the paper fuses "the last three scales" without saying what the third EFFM sees; the
    pooled vector is the representation MoCo trains directly, so it completes the third.
    """

    def __init__(
        self,
        *,
        channels: int = 3,
        encoder_width: int = 64,
        width: int = 64,
        blocks: tuple[int, ...] = (2, 4, 4),
        scale: int = 1,
        pool_sizes: tuple[int, ...] = (4, 8, 16, 32),
        clamp: float = 0.8,
        encoder_highpass: float = 0.0,
    ):
        super().__init__()
        if len(blocks) != 3:
            raise ValueError("blocks must give three stage depths")
        self.hyperparameters = dict(
            channels=channels, encoder_width=encoder_width, width=width, blocks=list(blocks), scale=scale,
            pool_sizes=list(pool_sizes), clamp=clamp, encoder_highpass=encoder_highpass,
        )
        self.channels, self.scale = channels, scale
        # The mask branch halves the trunk once more and the encoder has a 1/8 scale: 8
        # keeps E3's cells on the JPEG 8x8 blocks.
        self.size_multiple = max(8, 2 * scale)
        # Peak inference activations per input pixel. Measured (float32, CPU, peak-RSS
        # increase of one forward): s 900-990 B at 512-768 px, paper 3.2-5.3 KB at 384-256 px;
        # this formula gives 1280 B and 4864 B.
        self.bytes_per_pixel = float(64 * width // scale**2 + 12 * encoder_width)
        self.encoder = CompressionEncoder(channels=channels, width=encoder_width, highpass=encoder_highpass)
        e = encoder_width
        self.head = nn.Sequential(nn.PixelUnshuffle(scale), nn.Conv2d(channels * scale**2, width, 3, padding=1))
        self.effm = nn.ModuleList([EFFM([e, e, 2 * e], width), EFFM([e, 2 * e, 4 * e], width), EFFM([2 * e, 4 * e, 4 * e], width)])
        self.stages = nn.ModuleList([FusionStage(width, n, clamp) for n in blocks])
        self.pyramid = PyramidPooling(width, list(pool_sizes))
        self.tail = nn.Sequential(nn.Conv2d(width + len(pool_sizes), channels * scale**2, 3, padding=1), nn.PixelShuffle(scale))
        # The last conv starts at zero: the untrained network is the identity (global
        # residual), so a short run learns only the correction instead of first undoing noise.
        nn.init.zeros_(self.tail[0].weight)
        nn.init.zeros_(self.tail[0].bias)

    @torch.no_grad()
    def global_vector(self, image: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) whole image in [0, 1] -> (N, dim) unit quality vector, shared by its tiles.

        Large images average the encoder over a grid of 256-pixel crops on the 8x8 block grid
        (the whole image at full resolution would need gigabytes for E0).
        """
        height, width = image.shape[-2:]
        if height * width <= VECTOR_WHOLE_PIXELS:
            return F.normalize(self.encoder.pooled(image), dim=1)
        crop_h, crop_w = min(VECTOR_CROP, height), min(VECTOR_CROP, width)
        tops = torch.linspace(0, height - crop_h, VECTOR_GRID).round().int().unique().tolist()
        lefts = torch.linspace(0, width - crop_w, VECTOR_GRID).round().int().unique().tolist()
        pooled = [
            self.encoder.pooled(image[..., t // 8 * 8 : t // 8 * 8 + crop_h, l // 8 * 8 : l // 8 * 8 + crop_w])
            for t in tops for l in lefts
        ]
        return F.normalize(torch.stack(pooled).mean(0), dim=1)

    def forward(self, image: torch.Tensor, vector: torch.Tensor | None = None) -> torch.Tensor:
        e0, e1, e2, e3 = self.encoder.features(image)
        if vector is None:
            vector = F.normalize(e3.mean(dim=(2, 3)), dim=1)
        x = self.head(image)
        size = tuple(x.shape[-2:])
        inputs = ([e0, e1, e2], [e1, e2, e3], [e2, e3, vector.to(x.dtype)])
        for effm, stage, features in zip(self.effm, self.stages, inputs):
            x = stage(x, effm(features, size))
        return image + self.tail(self.pyramid(x))


# Variants. PAPER is the published network (full-resolution decoder, 2/4/4 blocks, width 64).
# S keeps the encoder and the fusion design and runs the decoder at half resolution, 32 wide,
# one block per stage: about 25x fewer MACs per pixel (see `jpegfix bench --speed`).
PAPER = dict(encoder_width=64, width=64, blocks=(2, 4, 4), scale=1)
SMALL = dict(encoder_width=64, width=32, blocks=(1, 1, 1), scale=2, encoder_highpass=8.0)

for colour, channels in (("color", 3), ("gray", 1)):
    MODELS.register(ModelSpec(
        name=f"contrastive-{colour}-s", method="contrastive", arch=ContrastiveNet,
        arch_args=dict(SMALL, channels=channels), channels=channels, needs_tables=False,
        description=f"Contrastive blind restorer, CPU size ({colour}): half-resolution decoder, width 32, 1+1+1 blocks",
    ))
    MODELS.register(ModelSpec(
        name=f"contrastive-{colour}-paper", method="contrastive", arch=ContrastiveNet,
        arch_args=dict(PAPER, channels=channels), channels=channels, needs_tables=False,
        description=f"Contrastive blind restorer at the paper's size ({colour}): full resolution, width 64, 2+4+4 blocks",
    ))
