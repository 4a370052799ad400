"""Building blocks shared by several methods' networks."""

from __future__ import annotations

import torch
from torch import nn


class ResBlock(nn.Module):
    """conv3-ReLU-conv3 plus skip (EDSR's and RNAN's residual block, no BatchNorm)."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(width, width, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Modulation(nn.Module):
    """Per-channel affine modulation of a feature map by a conditioning vector (FiLM):
    x * (1 + gamma(v)) + beta(v). Zero-initialised, so it starts as the identity."""

    def __init__(self, dim: int, width: int):
        super().__init__()
        self.affine = nn.Linear(dim, 2 * width)
        nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)

    def forward(self, x: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.affine(vector.to(x.dtype)).chunk(2, dim=1)
        return x * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
