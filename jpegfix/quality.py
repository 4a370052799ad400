"""Compression-quality readout: how strongly an image (JPEG or not) looks compressed.

A trained CQR ranker (:class:`jpegfix.models.cqr.CQRRanker`) scores an image; its
calibration table (its median score on training images at known JPEG qualities, measured at
the end of stage ``ranker`` and saved with its weights) turns the score into the JPEG quality
the image looks like. This works on pixels alone, so it also tells a user whether a PNG
saved from a JPEG needs cleaning.

Protocol, shared by the readout, the calibration and ``jpegfix probe-ranker``: the ranker
scores up to ``READOUT_GRID`` x ``READOUT_GRID`` crops of its training crop size, spread
evenly over the image on the 16-pixel grid (so the JPEG block grid is kept), and the image's
score is their mean. Cost: about 0.05 s on one CPU core, whatever the image size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from jpegfix.data import jpeg_roundtrip
from jpegfix.errors import MissingWeightsError

RANKERS = {3: "cqr-ranker-color", 1: "cqr-ranker-gray"}
"""The ranker that reads images of each channel count."""
READOUT_GRID = 3
GRID = 16


def readout_crops(pixels: np.ndarray, size: int, grid: int = READOUT_GRID) -> np.ndarray:
    """(K, C, size, size) uint8 crops of (H, W, C) ``pixels``: up to grid x grid positions,
    evenly spread, on the 16-pixel grid. Images smaller than ``size`` are edge-padded."""
    height, width = pixels.shape[:2]
    if height < size or width < size:
        pixels = np.pad(pixels, ((0, max(0, size - height)), (0, max(0, size - width)), (0, 0)), mode="edge")
        height, width = pixels.shape[:2]
    tops = sorted({int(t) // GRID * GRID for t in np.linspace(0, height - size, grid)})
    lefts = sorted({int(l) // GRID * GRID for l in np.linspace(0, width - size, grid)})
    crops = [pixels[t : t + size, l : l + size].transpose(2, 0, 1) for t in tops for l in lefts]
    return np.ascontiguousarray(np.stack(crops))


@torch.no_grad()
def image_score(ranker: nn.Module, pixels: np.ndarray) -> float:
    """The ranker's score of (H, W, C) uint8 ``pixels``: the mean over its readout crops.

    The ranker is run in eval mode (its own mode is put back afterwards).
    """
    device = next(ranker.parameters()).device
    crops = torch.from_numpy(readout_crops(pixels, ranker.crop)).to(device).float() / 255
    training = ranker.training
    ranker.eval()
    try:
        return float(ranker(crops).float().mean())
    finally:
        ranker.train(training)


def calibrate(ranker: nn.Module, images: list[np.ndarray], qualities: tuple[int, ...]) -> np.ndarray:
    """(len(qualities),) median image score of ``images`` compressed by Pillow at each quality
    (4:2:0 for colour, as most photos are)."""
    return np.array([np.median([image_score(ranker, jpeg_roundtrip(image, q)) for image in images]) for q in qualities])


def monotone(values: np.ndarray) -> np.ndarray:
    """The non-decreasing sequence closest to ``values`` in least squares (pool adjacent
    violators): a calibration table whose noise made it dip is flattened, not reordered."""
    blocks: list[list[float]] = []  # [mean, count]
    for value in map(float, values):
        blocks.append([value, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean, count = blocks.pop()
            previous, before = blocks.pop()
            blocks.append([(previous * before + mean * count) / (before + count), before + count])
    return np.repeat([m for m, _ in blocks], [int(c) for _, c in blocks])


def quality_from_score(score: float, qualities: list[int], scores: list[float]) -> tuple[float, str]:
    """(estimated JPEG quality, ``within`` / ``above`` / ``below``) for a ranker ``score``.

    The table is made monotone, then interpolated linearly; scores beyond its ends give the
    end quality and say so (``above``: better than the best calibrated quality). Qualities
    sharing one pooled score are averaged.
    """
    flat = monotone(np.asarray(scores, dtype=float))
    levels, inverse = np.unique(flat, return_inverse=True)
    mean_quality = np.array([np.mean(np.asarray(qualities, dtype=float)[inverse == i]) for i in range(len(levels))])
    if score > levels[-1]:
        return float(mean_quality[-1] if len(levels) > 1 else max(qualities)), "above"
    if score < levels[0]:
        return float(mean_quality[0] if len(levels) > 1 else min(qualities)), "below"
    return float(np.interp(score, levels, mean_quality)), "within"


@dataclass
class QualityReadout:
    """A ranker's verdict on one image."""

    model: str
    score: float
    """Higher means better quality; only meaningful relative to the calibration."""
    quality: int | None
    """The JPEG quality the image looks like (None for an uncalibrated ranker)."""
    position: str
    """``within`` the calibrated range, ``above`` its best quality, ``below`` its worst, or
    ``uncalibrated``."""
    calibrated_range: tuple[int, int] | None

    def to_dict(self) -> dict:
        return asdict(self)

    def sentence(self) -> str:
        """"looks like JPEG quality ≈ 23" and the like."""
        if self.quality is None:
            return "no calibration table in the ranker weights"
        if self.position == "above":
            return f"looks like JPEG quality ≥ {self.quality} (little or no visible compression)"
        if self.position == "below":
            return f"looks like JPEG quality ≤ {self.quality} (very strong compression)"
        return f"looks like JPEG quality ≈ {self.quality}"


def read_quality(ranker: nn.Module, name: str, pixels: np.ndarray) -> QualityReadout:
    """Score ``pixels`` and read the score through the ranker's calibration table."""
    score = image_score(ranker, pixels)
    if not ranker.calibrated:
        return QualityReadout(name, round(score, 4), None, "uncalibrated", None)
    qualities = list(ranker.calibration_qualities)
    quality, position = quality_from_score(score, qualities, ranker.calibration_scores.tolist())
    return QualityReadout(name, round(score, 4), int(round(quality)), position, (min(qualities), max(qualities)))


def missing_hint(channels: int) -> str:
    """How to get the ranker weights for ``channels``-channel images."""
    name = RANKERS[channels]
    colour = "color" if channels == 3 else "gray"
    return (f"no quality ranker weights ({name}); train them with `jpegfix train --method cqr "
            f"--set model=cqr-{colour}-s --data DIR --out runs/cqr-{colour}-s --stage ranker --export {name}` "
            f"or put {name}.safetensors and its card in $JPEGFIX_WEIGHTS")


class QualityReader:
    """Reads images with the ranker for their channel count, loading each ranker once.

    Never downloads (a readout must not stall a batch on the network) and never raises for
    missing weights: :meth:`read` then returns ``{"unavailable": hint}``.
    """

    def __init__(self, backend: str = "auto") -> None:
        self._rankers: dict[int, nn.Module | str] = {}
        self.backend = backend
        """Runtime of the rankers (:mod:`jpegfix.runtime`; float32: a readout is a number, not pixels)."""

    def ranker(self, channels: int) -> nn.Module | str:
        """The loaded ranker, or the reason there is none."""
        if channels not in self._rankers:
            from jpegfix.models import MODELS
            from jpegfix.weights import load_model

            try:
                from jpegfix.runtime import Accelerated

                ranker = load_model(MODELS.get(RANKERS[channels]), download=False)[0]
                self._rankers[channels] = Accelerated(ranker, "cpu", self.backend, name=RANKERS[channels])
            except MissingWeightsError as error:
                self._rankers[channels] = missing_hint(channels) if "no weights" in str(error) else str(error)
            except (OSError, RuntimeError, ValueError) as error:  # unreadable or mismatched files
                self._rankers[channels] = f"cannot load {RANKERS[channels]}: {error}"
        return self._rankers[channels]

    def read(self, pixels: np.ndarray) -> dict:
        """The readout of (H, W, C) uint8 ``pixels`` as plain data, or ``{"unavailable": why}``."""
        channels = pixels.shape[2]
        ranker = self.ranker(channels)
        if isinstance(ranker, str):
            return {"unavailable": ranker}
        readout = read_quality(ranker, RANKERS[channels], pixels)
        return {**readout.to_dict(), "summary": readout.sentence()}
