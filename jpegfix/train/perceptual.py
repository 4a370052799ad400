"""Feature networks for perceptual losses.

One-to-Many's perceptual loss compares high-level features of the output and the original
(the paper: VGG16's last conv layer). ImageNet weights cannot be downloaded by jpegfix, so
the default feature network is one the project trains itself, the CQR compression-quality
ranker (``cqr-ranker-color`` / ``-gray``): a 10-layer VGG-style network whose features were
trained to see compression artifacts, which is what a perceptual loss for deblocking should
be sensitive to. A user who has VGG16 weights (torchvision's layout, ``features.N.weight``)
can pass that file instead.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
"""torchvision's ``vgg16().features`` up to relu5_3 (the last conv layer; the paper names
"relu5_4", which only VGG19 has)."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class RankerFeatures(nn.Module):
    """The chosen layers' outputs of a trained :class:`jpegfix.models.cqr.CQRRanker`."""

    def __init__(self, ranker: nn.Module, layers: tuple[int, ...]):
        super().__init__()
        if not layers or max(layers) >= len(ranker.layers):
            raise ValueError(f"ranker feature layers must be in 0..{len(ranker.layers) - 1}")
        self.ranker, self.layers = ranker, tuple(layers)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        maps, x = [], image * 2 - 1
        for index, layer in enumerate(self.ranker.layers[: max(self.layers) + 1]):
            x = layer(x)
            if index in self.layers:
                maps.append(x)
        return maps


class VGG16Features(nn.Module):
    """VGG16's conv stack in torchvision's module layout; returns relu5_3 (after ImageNet
    normalisation; grey images are repeated to three channels)."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        previous = 3
        for item in VGG16_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(previous, item, 3, padding=1), nn.ReLU(inplace=True)]
                previous = item
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        if image.shape[1] == 1:
            image = image.expand(-1, 3, -1, -1)
        return [self.features((image - self.mean) / self.std)]

    @classmethod
    def from_file(cls, path: str | Path) -> "VGG16Features":
        """Load a VGG16 state dict (``.pth`` or ``.safetensors``; classifier keys are ignored).

        Raises:
            ValueError: the file lacks VGG16's conv weights or they have other shapes.
        """
        path = Path(path)
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        net = cls()
        wanted = {k: v for k, v in state.items() if k.startswith("features.")}
        missing = [k for k in net.state_dict() if k.startswith("features.") and k not in wanted]
        if missing:
            raise ValueError(f"{path} is not a VGG16 state dict (missing {missing[0]})")
        try:
            net.load_state_dict(wanted, strict=False)
        except RuntimeError as error:
            raise ValueError(f"{path}: {str(error).splitlines()[0]}") from None
        return net


def perceptual_loss(features: nn.Module, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the feature network's layers of the mean squared feature difference (paper
    eq. 1: the squared L2 distance divided by the feature size)."""
    with torch.no_grad():
        wanted = features(target)
    got = features(output)
    return sum(F.mse_loss(a, b) for a, b in zip(got, wanted)) / len(got)
