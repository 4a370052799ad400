"""One-to-Many (Guo & Chao, CVPR 2017): a proposal network that samples restorations.

:class:`ProposalNet` takes the JPEG image and a noise map z and returns one plausible
artifact-free image per z: different z, different texture. Its structure follows the
paper's Fig. 3: an image branch and a noise branch of pre-activation residual units
(BN-ReLU-conv, He et al. 2016), concatenated, an aggregation sub-network of more units, a
stride-2 convolution at the input (the work runs at half resolution) and a stride-2
deconvolution at the output followed by shift-and-average (§3.2.2), which turns the
deconvolution's uneven kernel overlap (a 2-pixel grid) into an even one.

Choices where the paper is silent or its numbers were lost (NOTES.md):

* **Tables as input.** The paper trains one model per JPEG quality. Here one model serves
  qualities 10-60: it gets QGCN's quantization maps beside the image (``needs_tables``), so
  it knows how far each coefficient may move, that is, how much detail it may invent.
  Images without tables are restored with ``--quality Q``, as with QGCN.
* **z at half resolution**, ``noise_channels`` standard normal maps entering the noise branch
  where the image branch starts (after its stride-2 conv): a noise map of a 12 MP photo
  then costs 4 bytes x channels per 4 pixels. The restore engine samples z for the whole
  image from the seed and cuts it like the image, so tiles join without seams and a seed
  always gives the same picture.
* **Global residual**: the output is the input plus the upsampled correction, and the
  deconvolution starts at zero, so the untrained network returns the JPEG itself, an image
  inside every quantization interval. The paper's losses (perceptual, adversarial, JPEG)
  have no pixel term to pull a random start towards the photo; this start makes short runs
  safe.

:class:`Discriminator` is the paper's Table 1: four conv units, each a stride-1 conv and
two stride-2 convs (64, 128, 256, 512 filters), every conv but the last followed by
BatchNorm and LeakyReLU (slope 0.2), then logistic regression (here on the globally
averaged features, so any patch size works).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from jpegfix.models.registry import MODELS, ModelSpec


class PreActUnit(nn.Module):
    """Pre-activation residual unit: x + conv(ReLU(BN(conv(ReLU(BN(x))))))."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.Conv2d(width, width, 3, padding=1),
            nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.Conv2d(width, width, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def shift_and_average(x: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` and its copies shifted one pixel right, down, and right and down
    (paper §3.2.2; edges repeat). A stride-2 deconvolution of a constant is a 2-pixel
    pattern; this average makes it constant again."""
    return F.avg_pool2d(F.pad(x, (1, 0, 1, 0), mode="replicate"), 2, stride=1)


class ProposalNet(nn.Module):
    """(N, C, H, W) JPEG image in [0, 1], (N, K, H, W) quantization maps, (N, Z, H/2, W/2)
    noise -> (N, C, H, W) candidate. H and W even (the engine pads to 16)."""

    noise_scale = 2
    """The noise map has 1/noise_scale of the image's height and width."""

    def __init__(
        self,
        *,
        channels: int = 3,
        maps: int = 2,
        width: int = 64,
        noise_channels: int = 4,
        noise_width: int = 32,
        image_units: int = 4,
        noise_units: int = 2,
        aggregate_units: int = 8,
        shift_average: bool = True,
    ):
        super().__init__()
        self.hyperparameters = dict(
            channels=channels, maps=maps, width=width, noise_channels=noise_channels, noise_width=noise_width,
            image_units=image_units, noise_units=noise_units, aggregate_units=aggregate_units,
            shift_average=shift_average,
        )
        self.channels, self.noise_channels, self.shift_average = channels, noise_channels, shift_average
        self.size_multiple = 2
        # Peak inference activations per input pixel, for the engine's tile size: a few
        # half-resolution feature maps of width + noise_width floats, plus full-size in/out.
        self.bytes_per_pixel = float(4 * 4 * (width + noise_width) // 4 + 64)
        self.image_branch = nn.Sequential(
            nn.Conv2d(channels + maps, width, 4, stride=2, padding=1), *[PreActUnit(width) for _ in range(image_units)]
        )
        self.noise_branch = nn.Sequential(
            nn.Conv2d(noise_channels, noise_width, 3, padding=1), *[PreActUnit(noise_width) for _ in range(noise_units)]
        )
        self.aggregate = nn.Sequential(
            nn.Conv2d(width + noise_width, width, 1), *[PreActUnit(width) for _ in range(aggregate_units)],
            nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        )
        self.upsample = nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1)
        nn.init.zeros_(self.upsample.weight)
        nn.init.zeros_(self.upsample.bias)

    def sample_noise(self, batch: int, height: int, width: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z for ``batch`` images of ``height`` x ``width`` pixels (on the CPU: a seeded
        generator gives the same z on every device)."""
        shape = (batch, self.noise_channels, height // self.noise_scale, width // self.noise_scale)
        return torch.randn(shape, generator=generator)

    def forward(self, image: torch.Tensor, maps: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        features = torch.cat([self.image_branch(torch.cat([image * 2 - 1, maps], dim=1)), self.noise_branch(noise)], 1)
        correction = self.upsample(self.aggregate(features))
        if self.shift_average:
            correction = shift_and_average(correction)
        return image + correction


def discriminator_layers(channels: int, widths: tuple[int, ...]) -> list[tuple[int, int, int, int]]:
    """(in, out, kernel, stride) of the 12 convs: per unit a stride-1 conv, then two stride-2
    convs. The paper's filter size ("always" one size) was lost: 3x3, which also lets the
    eight stride-2 convs run down to a 1x1 map on patches smaller than 256 pixels."""
    layers, previous = [], channels
    for width in widths:
        for stride in (1, 2, 2):
            layers.append((previous, width, 3, stride))
            previous = width
    return layers


class Discriminator(nn.Module):
    """(N, C, S, S) images in [0, 1] -> (N,) logits of "natural" (paper Table 1)."""

    def __init__(self, *, channels: int = 3, widths: tuple[int, ...] = (64, 128, 256, 512), slope: float = 0.2):
        super().__init__()
        specs = discriminator_layers(channels, tuple(widths))
        layers: list[nn.Module] = []
        for index, (cin, cout, kernel, stride) in enumerate(specs):
            layers.append(nn.Conv2d(cin, cout, kernel, stride=stride, padding=1))
            if index < len(specs) - 1:
                layers += [nn.BatchNorm2d(cout), nn.LeakyReLU(slope, inplace=True)]
        self.features = nn.Sequential(*layers)
        self.classify = nn.Linear(widths[-1], 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(image * 2 - 1).mean(dim=(2, 3)))[:, 0]


# Variants. PAPER: 64 filters everywhere as the paper's Fig. 3 caption says; the unit counts
# were lost and are chosen here (4 image, 2 noise, 8 aggregation units): 1.0 M parameters,
# 0.55 MMAC per pixel. S: 48 wide with 3 + 1 + 5 units: 0.4 M parameters, 0.2 MMAC per
# pixel (counted in tests/models/test_one_to_many.py), about QGCN-s's cost.
PAPER = dict(width=64, noise_channels=4, noise_width=32, image_units=4, noise_units=2, aggregate_units=8)
SMALL = dict(width=48, noise_channels=4, noise_width=16, image_units=3, noise_units=1, aggregate_units=5)
DISCRIMINATOR = {"paper": (64, 128, 256, 512), "s": (32, 64, 128, 256)}

for colour, channels in (("color", 3), ("gray", 1)):
    for size, args in (("s", SMALL), ("paper", PAPER)):
        where = "CPU size" if size == "s" else "the paper's size"
        MODELS.register(ModelSpec(
            name=f"one-to-many-{colour}-{size}", method="one-to-many", arch=ProposalNet,
            arch_args=dict(args, channels=channels, maps=1 if channels == 1 else 2), channels=channels,
            needs_tables=True, samples=True, extras={"discriminator": DISCRIMINATOR[size]},
            description=f"One-to-Many perceptual restorer, {where} ({colour}): samples candidates, table-guided",
        ))
