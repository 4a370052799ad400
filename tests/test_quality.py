import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from jpegfix.cli.app import app
from jpegfix.models import MODELS
from jpegfix.quality import (QualityReader, image_score, monotone, quality_from_score, read_quality,
                             readout_crops)
from jpegfix.weights import save_model

from conftest import TINY_CQR_RANKER, save_jpeg, tiny_restorer

runner = CliRunner()


def tiny_ranker(channels: int = 3, calibrated: bool = True):
    ranker = MODELS.get("cqr-ranker-color" if channels == 3 else "cqr-ranker-gray").build(**TINY_CQR_RANKER).eval()
    if calibrated:
        ranker.calibration_scores.copy_(torch.linspace(-2, 2, len(ranker.calibration_qualities)))
    return ranker


@pytest.fixture
def ranker_weights(tmp_path, monkeypatch):
    """Tiny calibrated rankers saved where the weights resolver looks first."""
    folder = tmp_path / "weights"
    for channels, name in ((3, "cqr-ranker-color"), (1, "cqr-ranker-gray")):
        save_model(tiny_ranker(channels), folder, name, {"name": name})
    monkeypatch.setenv("JPEGFIX_WEIGHTS", str(folder))
    return folder


@pytest.fixture
def no_ranker_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("JPEGFIX_WEIGHTS", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("jpegfix.weights.package_folder", lambda: tmp_path / "empty")


def test_monotone_pools_violators():
    assert monotone(np.array([1.0, 3.0, 2.0, 4.0])).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert monotone(np.array([3.0, 2.0, 1.0])).tolist() == [2.0, 2.0, 2.0]
    assert monotone(np.array([0.0, 1.0])).tolist() == [0.0, 1.0]


def test_score_to_quality_is_monotone_and_says_when_out_of_range():
    qualities, scores = [5, 10, 20, 40, 90], [-2.0, -1.0, -1.2, 0.5, 2.0]  # a noisy dip at 20
    estimates = [quality_from_score(s, qualities, scores)[0] for s in np.linspace(-2, 2, 41)]
    assert all(b >= a for a, b in zip(estimates, estimates[1:]))
    assert quality_from_score(0.5, qualities, scores) == (40.0, "within")
    assert quality_from_score(-1.1, qualities, scores) == (15.0, "within")  # pooled 10 and 20
    assert quality_from_score(3.0, qualities, scores) == (90.0, "above")
    assert quality_from_score(-5.0, qualities, scores) == (5.0, "below")


def test_readout_crops_keep_the_block_grid(photo):
    crops = readout_crops(photo[:200, :300], 64)
    assert crops.shape == (9, 3, 64, 64)
    assert np.array_equal(crops[0], photo[:64, :64].transpose(2, 0, 1))
    assert np.array_equal(crops[-1], photo[128:192, 224:288].transpose(2, 0, 1))  # 136 and 236 down to the 16 grid
    assert readout_crops(photo[:20, :40], 64).shape == (1, 3, 64, 64)  # small images are padded


def test_read_quality_with_and_without_calibration(photo):
    pixels = photo[:128, :128]
    ranker = tiny_ranker()
    readout = read_quality(ranker, "cqr-ranker-color", pixels)
    assert readout.score == round(image_score(ranker, pixels), 4)
    assert 5 <= readout.quality <= 95 and readout.calibrated_range == (5, 95)
    assert "JPEG quality" in readout.sentence()
    bare = read_quality(tiny_ranker(calibrated=False), "cqr-ranker-color", pixels)
    assert (bare.quality, bare.position) == (None, "uncalibrated")


def test_reader_without_weights_says_how_to_get_them(photo, no_ranker_weights):
    readout = QualityReader().read(photo[:64, :64])
    assert "jpegfix train --method cqr" in readout["unavailable"] and "cqr-ranker-color" in readout["unavailable"]


def test_info_reads_quality_with_and_without_a_ranker(tmp_path, photo, grey_photo, no_ranker_weights, monkeypatch):
    jpeg = save_jpeg(tmp_path / "a.jpg", photo[:96, :128], quality=20)
    Image.fromarray(grey_photo[:80, :80]).save(tmp_path / "g.png")
    result = runner.invoke(app, ["info", str(jpeg), str(tmp_path / "g.png")])
    assert result.exit_code == 0, result.output
    assert result.output.count("compression quality score: unavailable") == 2

    folder = tmp_path / "weights"
    for channels, name in ((3, "cqr-ranker-color"), (1, "cqr-ranker-gray")):
        save_model(tiny_ranker(channels), folder, name, {"name": name})
    monkeypatch.setenv("JPEGFIX_WEIGHTS", str(folder))
    result = runner.invoke(app, ["info", str(jpeg), str(tmp_path / "g.png"), "--json"])
    colour, grey = json.loads(result.stdout)
    assert colour["compression_quality"]["model"] == "cqr-ranker-color"
    assert grey["compression_quality"]["model"] == "cqr-ranker-gray"
    assert 5 <= grey["compression_quality"]["quality"] <= 95
    text = runner.invoke(app, ["info", str(tmp_path / "g.png")]).output
    assert "compression quality score" in text and "looks like JPEG quality" in text


def test_restore_json_records_the_readout(tmp_path, photo, ranker_weights, monkeypatch):
    import jpegfix.engine as engine

    monkeypatch.setattr(engine, "load_restorer", lambda name, device, **runtime: tiny_restorer(name))
    save_jpeg(tmp_path / "a.jpg", photo[:64, :96], quality=15)
    result = runner.invoke(app, ["restore", str(tmp_path / "a.jpg"), "-o", str(tmp_path / "out"), "--json",
                                 "--model", "cqr"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)[0]
    assert record["model"] == "cqr-color-s"
    assert record["details"]["compression_quality"]["model"] == "cqr-ranker-color"
    assert runner.invoke(app, ["restore", "x.jpg", "-o", str(tmp_path), "--model", "cqr-ranker-color"]).exit_code == 2


def test_probe_ranker_command(tmp_path, photo, ranker_weights):
    data = tmp_path / "held_out"
    data.mkdir()
    for i in range(2):
        Image.fromarray(photo[i * 100 : i * 100 + 64, :96]).save(data / f"{i}.png")
    result = runner.invoke(app, ["probe-ranker", "--data", str(data), "--qf", "10,50,90", "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["qualities"] == [10, 50, 90] and report["images"] == 2 and -1 <= report["spearman"] <= 1
    assert report["quality_mae"] is not None
    text = runner.invoke(app, ["probe-ranker", "--data", str(data), "--qf", "10,90", "--device", "cpu"]).output
    assert "Spearman" in text
    assert runner.invoke(app, ["probe-ranker", "--data", str(data), "--model", "cqr-color-s"]).exit_code == 2
