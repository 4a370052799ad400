"""Validation shared by the blind methods' recipes: PSNR gain over the decoded JPEG."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from jpegfix.data import jpeg_roundtrip
from jpegfix.metrics import psnr

VALIDATION_QUALITIES = (10, 20, 30, 40, 70)
"""Qualities validated; 70 watches that a blind model leaves light compression alone."""
HEADLINE_QUALITIES = (10, 20, 30, 40)
"""Qualities averaged into ``psnr_gain``: the published tables' columns."""


@torch.no_grad()
def blind_gains(net: nn.Module, images: list[np.ndarray], device: torch.device) -> dict[str, float]:
    """``psnr_gain`` (mean over the headline qualities), ``gain_qN`` per quality and
    ``worst_gain`` (the smallest single-image gain) of ``net`` on Pillow JPEGs of ``images``
    ((H, W, C) uint8, sides multiples of the network's size multiple)."""
    gains: dict[int, list[float]] = {q: [] for q in VALIDATION_QUALITIES}
    for clean in images:
        for q in VALIDATION_QUALITIES:
            jpeg = jpeg_roundtrip(clean, q)
            x = torch.from_numpy(jpeg.transpose(2, 0, 1)[None].copy()).float().to(device) / 255
            y = net(x).clamp(0, 1)
            out = (y[0].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
            gains[q].append(psnr(clean, out) - psnr(clean, jpeg))
    scores = {f"gain_q{q}": float(np.mean(v)) for q, v in gains.items()}
    headline = float(np.mean([scores[f"gain_q{q}"] for q in HEADLINE_QUALITIES]))
    worst = float(min(min(v) for v in gains.values()))
    return {"psnr_gain": headline, **scores, "worst_gain": worst}
