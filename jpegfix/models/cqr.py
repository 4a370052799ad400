"""CQR: compression-quality-ranker-guided deblocking (Wang et al., IJCAI 2020; see NOTES.md).

Two networks, trained in two stages (``train/recipes/cqr.py``):

* :class:`CQRRanker`, a VGG-style Siamese ranker (stage ``ranker``): ten conv layers with
  BatchNorm and LeakyReLU, global average pooling and two fully connected layers give one
  score per image, higher for better JPEG quality. Its feature maps are exposed for the
  feature-matching loss, and it carries a calibration table (its mean score at known
  qualities) so that a score can be read as "looks like JPEG quality Q" (``jpegfix.quality``).
  A ranker is not a restorer: its specs have ``role="ranker"``.
* :class:`CQRNet`, the blind deblocker (stage ``deblock``): RNAN-style residual attention
  groups (non-local first and last, local in between) whose trunks are multi-dilation
  residual blocks (3x3 convs at dilations 1, 2, 4 side by side, concatenated), plus a global
  residual.

Memory-safe non-local attention: RNAN's non-local mask attends over all H x W positions,
an (HW)^2 matrix that runs out of memory on full photos. Here attention is computed inside
non-overlapping windows of 16 x 16 *image* pixels (8 x 8 positions at the half-resolution
``-s`` trunk, 16 x 16 at full resolution): memory grows linearly with the image, and
because the windows sit on the 16-pixel grid that the restore engine cuts tiles on, a tile
sees exactly the windows the whole image would (tiling stays seamless). Windows rather than
downsampled global attention: a global attention would make every tile depend on the whole
image (no exact tiling) and is still quadratic in the downsampled size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from jpegfix.models.layers import ResBlock
from jpegfix.models.registry import MODELS, ModelSpec

TILE_GRID = 16
"""Pixels of the engine's tiling grid; ``window * scale`` must divide it."""
CALIBRATION_QUALITIES = (5, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 95)
"""JPEG qualities at which a trained ranker's scores are recorded (denser at low quality,
where the readout matters most)."""


# -- deblocker ---------------------------------------------------------------------------


class MultiDilation(nn.Module):
    """The paper's multi-scale convolution: 3x3 convs at several dilations run side by side on
    the same input, concatenated and fused by a 1x1 conv back to ``width`` channels."""

    def __init__(self, width: int, branch: int, dilations: tuple[int, ...]):
        super().__init__()
        self.branches = nn.ModuleList([nn.Conv2d(width, branch, 3, padding=d, dilation=d) for d in dilations])
        self.fuse = nn.Conv2d(branch * len(dilations), width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([branch(x) for branch in self.branches], dim=1))


class DilatedResBlock(nn.Module):
    """Residual block whose first conv is a :class:`MultiDilation`: x + conv3(ReLU(multi(x)))."""

    def __init__(self, width: int, branch: int, dilations: tuple[int, ...]):
        super().__init__()
        self.body = nn.Sequential(
            MultiDilation(width, branch, dilations), nn.ReLU(inplace=True), nn.Conv2d(width, width, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def to_windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """(N, K, H, W) with H, W multiples of ``window`` -> (N * H/window * W/window, window^2, K)."""
    n, k, h, w = x.shape
    x = x.view(n, k, h // window, window, w // window, window)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(-1, window * window, k)


def from_windows(x: torch.Tensor, n: int, h: int, w: int, window: int) -> torch.Tensor:
    """Inverse of :func:`to_windows`: (N * windows, window^2, K) -> (N, K, H, W)."""
    k = x.shape[-1]
    x = x.view(n, h // window, w // window, window, window, k)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(n, k, h, w)


class WindowNonLocal(nn.Module):
    """RNAN's embedded-Gaussian non-local block, computed within ``window`` x ``window`` windows.

    theta, phi, g are 1x1 convs to ``width // 2`` channels; each position attends to the
    positions of its own window (softmax of scaled dot products: RNAN leaves them unscaled,
    scaling keeps the softmax soft at any width), and a 1x1 conv maps the result back, added
    to the input. Sides that are not multiples of ``window`` are zero-padded and the padded
    positions are masked out as keys, so they change nothing. Memory: window^2 attention
    weights per position, independent of the image size.
    """

    def __init__(self, width: int, window: int):
        super().__init__()
        self.window = window
        inner = max(1, width // 2)
        self.theta = nn.Conv2d(width, inner, 1)
        self.phi = nn.Conv2d(width, inner, 1)
        self.g = nn.Conv2d(width, inner, 1)
        self.out = nn.Conv2d(inner, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        size = self.window
        pad_h, pad_w = (-h) % size, (-w) % size
        padded = F.pad(x, (0, pad_w, 0, pad_h))
        query, key, value = (to_windows(conv(padded), size) for conv in (self.theta, self.phi, self.g))
        mask = None
        if pad_h or pad_w:
            valid = F.pad(x.new_ones(1, 1, h, w), (0, pad_w, 0, pad_h)) > 0
            mask = to_windows(valid, size).transpose(1, 2).repeat(n, 1, 1)  # (N * windows, 1, window^2) keys
        attended = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        attended = from_windows(attended, n, h + pad_h, w + pad_w, size)[..., :h, :w]
        return x + self.out(attended)


class AttentionBlock(nn.Module):
    """RNAN's residual attention block with a multi-dilation trunk: x + trunk(x) * mask(x).

    The trunk is ``trunk`` :class:`DilatedResBlock` s. The mask branch is RNAN's down-up mask
    (stride-2 conv, a residual block, stride-2 transposed conv, 1x1 conv, sigmoid), preceded
    by windowed non-local attention in a non-local block. Needs even sides.
    """

    def __init__(self, width: int, branch: int, trunk: int, dilations: tuple[int, ...], non_local: bool, window: int):
        super().__init__()
        self.trunk = nn.Sequential(*[DilatedResBlock(width, branch, dilations) for _ in range(trunk)])
        mask = [WindowNonLocal(width, window)] if non_local else []
        mask += [
            nn.Conv2d(width, width, 3, stride=2, padding=1), ResBlock(width),
            nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), nn.Conv2d(width, width, 1), nn.Sigmoid(),
        ]
        self.mask = nn.Sequential(*mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.trunk(x) * self.mask(x)


class AttentionGroup(nn.Module):
    """One :class:`AttentionBlock` and a closing 3x3 conv inside a group skip (RNAN's group)."""

    def __init__(self, width: int, branch: int, trunk: int, dilations: tuple[int, ...], non_local: bool, window: int):
        super().__init__()
        self.body = nn.Sequential(
            AttentionBlock(width, branch, trunk, dilations, non_local, window), nn.Conv2d(width, width, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class CQRNet(nn.Module):
    """The blind deblocker: ``net(image)`` -> restored image, both (N, C, H, W) in [0, 1].

    ``groups`` attention groups, non-local first and last and local in between (RNAN's
    layout: 10 groups = 1 + 8 + 1). ``scale`` 2 runs the trunk on a pixel-unshuffled
    half-resolution grid (stride-2 in, pixel shuffle out), the practical CPU configuration;
    1 is the paper's full resolution. Any side works (the input is padded to
    :attr:`size_multiple` and the output cropped back). The output is the input plus a
    predicted correction (global residual), not clamped.
    """

    def __init__(
        self,
        *,
        channels: int = 3,
        width: int = 64,
        branch: int = 64,
        groups: int = 10,
        trunk: int = 2,
        scale: int = 1,
        window: int = 16,
        dilations: tuple[int, ...] = (1, 2, 4),
    ):
        super().__init__()
        if TILE_GRID % (window * scale):
            raise ValueError(f"window x scale ({window} x {scale}) must divide {TILE_GRID}, the tiling grid")
        if groups < 2:
            raise ValueError("groups must be at least 2 (the first and last are non-local)")
        self.hyperparameters = dict(
            channels=channels, width=width, branch=branch, groups=groups, trunk=trunk, scale=scale, window=window,
            dilations=list(dilations),
        )
        self.channels, self.scale = channels, scale
        # The mask branch halves the trunk's grid once: the input must divide by 2 x scale;
        # 8 keeps the padding on the JPEG block grid.
        self.size_multiple = max(8, 2 * scale)
        # Peak inference activations per input pixel, for the engine's tile size. Measured
        # (float32, CPU, peak-RSS increase of one forward): s 540-630 B at 512-1024 px, paper
        # 3.9-4.5 KB at 256-512 px; this formula gives 736 B and 4736 B.
        self.bytes_per_pixel = float((40 * width + 8 * window**2) // scale**2 + 128)
        self.head = nn.Sequential(nn.PixelUnshuffle(scale), nn.Conv2d(channels * scale**2, width, 3, padding=1))
        self.body = nn.Sequential(
            *[AttentionGroup(width, branch, trunk, tuple(dilations), i in (0, groups - 1), window) for i in range(groups)],
            nn.Conv2d(width, width, 3, padding=1),
        )
        self.tail = nn.Sequential(nn.Conv2d(width, channels * scale**2, 3, padding=1), nn.PixelShuffle(scale))
        # The last conv starts at zero: the untrained network is the identity (global
        # residual), so a short run learns only the correction.
        nn.init.zeros_(self.tail[0].weight)
        nn.init.zeros_(self.tail[0].bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        pad_h, pad_w = (-height) % self.size_multiple, (-width) % self.size_multiple
        padded = F.pad(image, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else image
        x = self.head(padded * 2 - 1)
        x = x + self.body(x)
        return (padded + self.tail(x))[..., :height, :width]


# -- ranker ------------------------------------------------------------------------------


def ranker_layers(channels: int, width: int) -> list[tuple[int, int, int, int]]:
    """(in, out, kernel, stride) of the ten conv layers: VGG's doubling widths, a 3x3 stride-1
    conv then a 4x4 stride-2 conv per stage (as in RankSRGAN's ranker, which the paper cites)."""
    widths = [width, width, 2 * width, 2 * width, 4 * width, 4 * width, 8 * width, 8 * width, 8 * width, 8 * width]
    layers, previous = [], channels
    for index, out in enumerate(widths):
        stride = 2 if index % 2 else 1
        layers.append((previous, out, 4 if stride == 2 else 3, stride))
        previous = out
    return layers


class CQRRanker(nn.Module):
    """Compression quality ranker: (N, C, H, W) images in [0, 1] -> (N,) scores, higher for
    better quality. Sides of at least 32 pixels (five stride-2 layers).

    ``crop`` is the side of the crops it was trained on; the quality readout scores crops of
    that size. ``calibration_scores`` (a buffer saved with the weights, NaN until measured)
    holds its mean score on training images at each of ``calibration_qualities``.
    """

    def __init__(
        self,
        *,
        channels: int = 3,
        width: int = 64,
        hidden: int = 100,
        crop: int = 96,
        calibration_qualities: tuple[int, ...] = CALIBRATION_QUALITIES,
    ):
        super().__init__()
        self.hyperparameters = dict(
            channels=channels, width=width, hidden=hidden, crop=crop, calibration_qualities=list(calibration_qualities)
        )
        self.channels, self.crop = channels, crop
        self.calibration_qualities = tuple(calibration_qualities)
        self.layers = nn.ModuleList([
            nn.Sequential(
                nn.Conv2d(cin, cout, kernel, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True),
            )
            for cin, cout, kernel, stride in ranker_layers(channels, width)
        ])
        self.head = nn.Sequential(nn.Linear(8 * width, hidden), nn.LeakyReLU(0.2, inplace=True), nn.Linear(hidden, 1))
        self.register_buffer("calibration_scores", torch.full((len(calibration_qualities),), math.nan))

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The ten layer outputs (after BatchNorm and LeakyReLU), for feature matching."""
        maps, x = [], image * 2 - 1
        for layer in self.layers:
            x = layer(x)
            maps.append(x)
        return maps

    def score(self, features: list[torch.Tensor]) -> torch.Tensor:
        """(N,) scores from the output of :meth:`features` (global average pool, fc, fc)."""
        return self.head(features[-1].mean(dim=(2, 3)))[:, 0]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(image))

    @property
    def calibrated(self) -> bool:
        return bool(torch.isfinite(self.calibration_scores).all())

    def card_facts(self) -> dict:
        """The calibration table for the model card (the weights hold the same numbers)."""
        scores = [round(float(s), 4) if math.isfinite(s) else None for s in self.calibration_scores.tolist()]
        return {"calibration": {"qualities": list(self.calibration_qualities), "scores": scores}}


# Variants. PAPER follows RNAN's size (width 64, 10 groups, full resolution) with the paper's
# dilated trunks: 5.4 M parameters, 4.1 MMAC per pixel. S runs the same design on a
# half-resolution trunk, 48 wide with 24-wide dilation branches, 8 groups (1 + 6 + 1), one
# dilated residual block per trunk: 1.5 M parameters, 0.22 MMAC per pixel (counted in
# tests/models/test_cqr.py; attention products excluded, they add under 1%).
PAPER = dict(width=64, branch=64, groups=10, trunk=2, scale=1, window=16)
SMALL = dict(width=48, branch=24, groups=8, trunk=1, scale=2, window=8)
RANKER = dict(width=32, hidden=100, crop=96)
"""The ranker is 32 wide (half of VGG's 64): it runs in every deblock step and in the
quality readout, so its cost matters more than its capacity."""

for colour, channels in (("color", 3), ("gray", 1)):
    MODELS.register(ModelSpec(
        name=f"cqr-{colour}-s", method="cqr", arch=CQRNet,
        arch_args=dict(SMALL, channels=channels), channels=channels, needs_tables=False,
        description=f"CQR blind deblocker, CPU size ({colour}): half-resolution trunk, width 48, 8 groups",
    ))
    MODELS.register(ModelSpec(
        name=f"cqr-{colour}-paper", method="cqr", arch=CQRNet,
        arch_args=dict(PAPER, channels=channels), channels=channels, needs_tables=False,
        description=f"CQR blind deblocker at the paper's size ({colour}): full resolution, width 64, 10 groups",
    ))

for colour, channels in (("color", 3), ("gray", 1)):
    MODELS.register(ModelSpec(
        name=f"cqr-ranker-{colour}", method="cqr", arch=CQRRanker,
        arch_args=dict(RANKER, channels=channels), channels=channels, needs_tables=False, role="ranker",
        description=f"CQR compression quality ranker ({colour}): scores how strongly an image was compressed",
    ))
