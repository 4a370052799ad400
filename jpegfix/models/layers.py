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
