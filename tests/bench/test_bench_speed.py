import sys

import pytest
import torch
from torch import nn

from jpegfix.bench.rows import RowRef
from jpegfix.bench.speed import count_macs, measure_rows, measure_speed, synthetic_input

from bench_helpers import SHARED_PEERS, FakeRestorer


def test_count_macs_of_conv_transposed_conv_and_linear():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(4, 2, 2, stride=2),
                        nn.Flatten(), nn.Linear(2 * 16 * 16, 5))
    unused = nn.Conv2d(4, 4, 3)
    holder = nn.ModuleDict({"used": net, "unused": unused})
    macs, params = count_macs(holder, lambda: net(torch.zeros(1, 1, 8, 8)))
    conv = 4 * 8 * 8 * (1 * 3 * 3)  # output elements x in_channels x kernel area
    transposed = (4 * 8 * 8) * 2 * 2 * 2  # input elements x out_channels x kernel area
    linear = 5 * 512
    assert macs == conv + transposed + linear
    assert params == sum(p.numel() for p in net.parameters())  # the unused conv is not counted


def test_synthetic_input_is_a_decoded_jpeg_of_the_right_shape():
    pixels, components = synthetic_input(40, 24, 3)
    assert pixels.shape == (24, 40, 3) and pixels.dtype.name == "uint8" and len(components) == 3
    grey, grey_components = synthetic_input(40, 24, 1)
    assert grey.shape == (24, 40, 1) and len(grey_components) == 1


def test_measure_speed_in_process():
    result = measure_speed("fake", FakeRestorer("fake", 3), 64, 48, repeats=2, warmup=2)
    assert len(result.seconds) == 2 and result.median_s > 0 and result.megapixels_per_s > 0
    # CPU time counts only this process's work; on one thread it cannot exceed the wall time.
    assert 0 < result.cpu_median_s and result.megapixels_per_cpu_s > 0
    assert result.macs_per_pixel == pytest.approx(3 * 3 * 9)  # one 3x3 conv, 3 -> 3 channels, per pixel
    assert result.params == 3 * 3 * 9 + 3 and result.device == "cpu" and result.threads >= 1
    if sys.platform.startswith("linux"):
        assert result.peak_memory_mb > 0 and result.memory_kind.startswith("peak RSS")


def test_errors_are_reported_not_raised(tmp_path):
    results = measure_rows([RowRef("jpeg", "jpeg"), RowRef("arcnn", "peer", str(tmp_path))], "cpu", 32, 32,
                           repeats=1, isolate=False)
    assert len(results) == 1 and "arcnn weights not found" in results[0].error


@pytest.mark.skipif(not SHARED_PEERS.is_dir(), reason="needs ../shared/peers")
def test_each_model_is_measured_in_its_own_process():
    seen = []
    results = measure_rows([RowRef("arcnn", "peer", str(SHARED_PEERS))], "cpu", 64, 48, repeats=1,
                           isolate=True, on_result=seen.append)
    (arcnn,) = results
    assert seen == results and arcnn.error == ""
    # 9x9x64 + 7x7x64x32 + 32x16 + 5x5x16 multiply-accumulates per pixel
    assert arcnn.macs_per_pixel == 81 * 64 + 49 * 64 * 32 + 32 * 16 + 25 * 16
    assert arcnn.params == 81 * 64 + 64 + 49 * 64 * 32 + 32 + 32 * 16 + 16 + 25 * 16 + 1
    if sys.platform.startswith("linux"):
        assert arcnn.peak_memory_mb > arcnn.memory_increase_mb >= 0


def test_models_without_weights_are_timed_untrained(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    (result,) = measure_rows([RowRef("qgcn-gray-paper", "jpegfix")], "cpu", 32, 32, repeats=1, warmup=1,
                             isolate=False)
    assert result.error == "" and result.untrained and result.params > 1_000_000
