import numpy as np
import pytest
import torch

from jpegfix.bench.candidates import probe_candidates
from jpegfix.metrics import period2_rms
from jpegfix.models import MODELS
from jpegfix.models.restorer import Restorer

from conftest import TINY_ONE_TO_MANY, tiny_restorer


def sampling_restorer(shift_average: bool = True) -> Restorer:
    spec = MODELS.get("one-to-many-color-s")
    net = spec.build(**TINY_ONE_TO_MANY, shift_average=shift_average).eval()
    torch.nn.init.normal_(net.upsample.weight, std=0.05)  # untrained it would return the input
    return Restorer(spec=spec, net=net, device=torch.device("cpu"))


def test_period2_rms_measures_two_pixel_patterns():
    flat = np.full((32, 32, 1), 100, np.uint8)
    checker = flat.copy()
    checker[::2, ::2] += 8
    assert period2_rms(flat) == 0 and period2_rms(checker) > 1


def test_probe_reports_inside_share_diversity_reproducibility_and_grid_energy(photo):
    images = [np.ascontiguousarray(photo[:64, :80])]
    results = probe_candidates(sampling_restorer(), images, (20,), samples=3, reference=tiny_restorer(),
                               ablation=sampling_restorer(shift_average=False))
    (result,) = results
    assert result.reproducible and result.diversity > 0
    assert result.inside["jpeg"] > 0.99 and 0 <= result.inside["candidates"] <= 1
    assert set(result.period2) == {"original", "jpeg", "qgcn-color-s", "candidates", "no shift-and-average"}
    with pytest.raises(ValueError):
        probe_candidates(tiny_restorer(), images, (20,))
