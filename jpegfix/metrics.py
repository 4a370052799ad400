"""Image quality metrics on uint8-rounded images (see NOTES.md, metric protocol)."""

from __future__ import annotations

import numpy as np


def psnr(reference: np.ndarray, test: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and channels; inf for identical images."""
    error = np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2)
    return float("inf") if error == 0 else float(10 * np.log10(data_range**2 / error))
