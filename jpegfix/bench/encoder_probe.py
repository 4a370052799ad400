"""Does a compression-quality encoder separate JPEG qualities? A nearest-neighbour probe.

Protocol: every image is compressed as a whole by Pillow at each quality (4:2:0 for colour),
and ``crops`` crops of ``size`` pixels are cut at the same random positions on the 16-pixel
grid at every quality. Images alternate between a reference half (even positions in the
list) and a query half (odd positions), so a query never has a reference of its own content.
Each query crop is labelled with the quality of the reference whose encoder vector is most
similar (cosine). Chance accuracy is 1 / len(qualities).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from jpegfix.data import jpeg_roundtrip

QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90)


@dataclass
class ProbeResult:
    qualities: list[int]
    accuracy: float
    """Share of query crops given their true quality."""
    mean_abs_error: float
    """Mean |predicted - true| quality over query crops."""
    confusion: list[list[int]]
    """``confusion[i][j]``: query crops of quality ``qualities[i]`` labelled ``qualities[j]``."""
    references: int
    queries: int
    images: int
    crop: int

    @property
    def chance(self) -> float:
        return 1 / len(self.qualities)


def crop_positions(height: int, width: int, size: int, count: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """``count`` top-left corners on the 16-pixel grid of ``size`` crops inside the image."""
    rows, cols = (height - size) // 16 + 1, (width - size) // 16 + 1
    return [(int(rng.integers(rows)) * 16, int(rng.integers(cols)) * 16) for _ in range(count)]


def quality_crops(
    images: list[np.ndarray], qualities: tuple[int, ...], crops: int, size: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(crops (M, C, size, size) uint8, quality (M,), image index (M,)) over all images and
    qualities; images smaller than ``size`` are skipped."""
    rng = np.random.default_rng(seed)
    patches, labels, owners = [], [], []
    for index, image in enumerate(images):
        height, width = image.shape[:2]
        if height < size or width < size:
            continue
        positions = crop_positions(height, width, size, crops, rng)
        for quality in qualities:
            compressed = jpeg_roundtrip(image, quality)
            for top, left in positions:
                patches.append(compressed[top : top + size, left : left + size].transpose(2, 0, 1))
                labels.append(quality)
                owners.append(index)
    return np.stack(patches), np.array(labels), np.array(owners)


@torch.no_grad()
def encode(encoder: nn.Module, crops: np.ndarray, batch: int = 64) -> torch.Tensor:
    """(M, D) unit vectors of uint8 (M, C, S, S) crops; the encoder runs in eval mode."""
    device = next(encoder.parameters()).device
    training = encoder.training
    encoder.eval()
    try:
        vectors = [
            encoder(torch.from_numpy(crops[i : i + batch]).to(device).float() / 255).float().cpu()
            for i in range(0, len(crops), batch)
        ]
    finally:
        encoder.train(training)
    return torch.nn.functional.normalize(torch.cat(vectors), dim=1)


def probe_encoder(
    encoder: nn.Module,
    images: list[np.ndarray],
    *,
    qualities: tuple[int, ...] = QUALITIES,
    crops: int = 8,
    size: int = 64,
    seed: int = 0,
) -> ProbeResult:
    """Nearest-neighbour quality classification of held-out crops from encoder vectors.

    ``images`` are (H, W, C) uint8 with the encoder's channel count; at least two must be at
    least ``size`` pixels on each side.

    Raises:
        ValueError: fewer than two usable images.
    """
    patches, labels, owners = quality_crops(images, tuple(qualities), crops, size, seed)
    used = sorted(set(owners.tolist()))
    if len(used) < 2:
        raise ValueError(f"the probe needs at least two images of at least {size}x{size} pixels")
    is_reference = np.isin(owners, used[0::2])
    vectors = encode(encoder, patches)
    references, queries = vectors[torch.from_numpy(is_reference)], vectors[torch.from_numpy(~is_reference)]
    nearest = (queries @ references.T).argmax(dim=1).numpy()
    predicted, truth = labels[is_reference][nearest], labels[~is_reference]
    position = {q: i for i, q in enumerate(qualities)}
    confusion = np.zeros((len(qualities), len(qualities)), dtype=int)
    for t, p in zip(truth, predicted):
        confusion[position[int(t)], position[int(p)]] += 1
    return ProbeResult(
        qualities=list(qualities), accuracy=float(np.mean(predicted == truth)),
        mean_abs_error=float(np.mean(np.abs(predicted - truth))), confusion=confusion.tolist(),
        references=int(is_reference.sum()), queries=int((~is_reference).sum()), images=len(used), crop=size,
    )
