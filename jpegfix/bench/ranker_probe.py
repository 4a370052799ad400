"""Does a CQR ranker's score order JPEG qualities? Spearman correlation on held-out images.

Protocol: every image is compressed as a whole by Pillow at each quality (4:2:0 for colour)
and scored with the readout protocol of :mod:`jpegfix.quality` (the mean over a grid of
crops). The headline is the Spearman rank correlation between score and true quality over
all (image, quality) points pooled: it needs scores that compare across images, which is
what the quality readout relies on. The mean per-image correlation (ordering within one
content, what the paper's ranking loss trains) and, for a calibrated ranker, the mean
absolute error of the estimated quality are reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from jpegfix.data import jpeg_roundtrip
from jpegfix.quality import image_score, quality_from_score

QUALITIES = tuple(range(5, 100, 10))
"""5, 15, ..., 95."""


@dataclass
class RankerProbeResult:
    qualities: list[int]
    spearman: float
    """Rank correlation of score and quality over all points pooled."""
    per_image_spearman: float
    """Mean over images of the rank correlation within one image."""
    mean_scores: list[float]
    """Mean score at each quality."""
    quality_mae: float | None
    """Mean |estimated - true| quality through the calibration table (None if uncalibrated)."""
    images: int


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their average rank."""
    order = np.argsort(values, kind="stable")
    ranked = np.empty(len(values))
    ranked[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        ranked[tied] = ranked[tied].mean()
    return ranked


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (Pearson correlation of the ranks); 0 when either is constant."""
    rx, ry = ranks(np.asarray(x, dtype=float)), ranks(np.asarray(y, dtype=float))
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def probe_ranker(ranker: nn.Module, images: list[np.ndarray], *, qualities: tuple[int, ...] = QUALITIES) -> RankerProbeResult:
    """Score every image at every quality; ``images`` are (H, W, C) uint8 with the ranker's
    channel count.

    Raises:
        ValueError: no images.
    """
    if not images:
        raise ValueError("the ranker probe needs at least one image")
    scores = np.array([[image_score(ranker, jpeg_roundtrip(image, q)) for q in qualities] for image in images])
    truth = np.broadcast_to(np.asarray(qualities, dtype=float), scores.shape)
    quality_mae = None
    if ranker.calibrated:
        table = (list(ranker.calibration_qualities), ranker.calibration_scores.tolist())
        estimates = np.vectorize(lambda s: quality_from_score(s, *table)[0])(scores)
        quality_mae = float(np.abs(estimates - truth).mean())
    return RankerProbeResult(
        qualities=list(qualities), spearman=spearman(scores.ravel(), truth.ravel()),
        per_image_spearman=float(np.mean([spearman(row, qualities) for row in scores])),
        mean_scores=[round(float(s), 4) for s in scores.mean(axis=0)], quality_mae=quality_mae, images=len(images),
    )
