import numpy as np
import torch

import jpegfix.bench.ranker_probe as probe


class BrightnessOracle(torch.nn.Module):
    """Scores an image by its mean value; with images filled with their quality it is perfect."""

    crop = 32
    calibration_qualities = (10, 50, 90)

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.register_buffer("calibration_scores", torch.tensor([10.0, 50.0, 90.0]) / 255)

    calibrated = True

    def forward(self, x):
        return x.mean(dim=(1, 2, 3))


def test_spearman_known_cases():
    assert probe.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert probe.spearman([4, 3, 2, 1], [10, 20, 30, 40]) == -1.0
    assert probe.ranks(np.array([5.0, 1.0, 5.0])).tolist() == [2.5, 1.0, 2.5]
    assert probe.spearman([1, 1, 1], [1, 2, 3]) == 0.0
    assert abs(probe.spearman([1, 3, 2, 4], [1, 2, 3, 4]) - 0.8) < 1e-12


def test_probe_scores_a_perfect_ranker(monkeypatch):
    monkeypatch.setattr(probe, "jpeg_roundtrip", lambda image, q: np.full_like(image, q))
    result = probe.probe_ranker(BrightnessOracle(), [np.zeros((40, 40, 1), np.uint8)] * 3, qualities=(10, 30, 50, 90))
    assert result.spearman == 1.0 and result.per_image_spearman == 1.0 and result.images == 3
    assert result.quality_mae < 1e-4 and result.mean_scores[-1] == round(90 / 255, 4)
