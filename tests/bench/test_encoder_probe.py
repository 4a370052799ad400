import json

import numpy as np
import torch
from PIL import Image
from typer.testing import CliRunner

import jpegfix.bench.encoder_probe as probe
from jpegfix.cli.app import app
from jpegfix.models.contrastive import CompressionEncoder

from conftest import tiny_restorer


class QualityOracle(torch.nn.Module):
    """Maps a crop filled with the value q to a unit vector at angle q degrees."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        angle = torch.deg2rad(x.mean(dim=(1, 2, 3)) * 255)
        return torch.stack([angle.cos(), angle.sin()], dim=1)


def test_nearest_neighbour_probe_scores_a_perfect_encoder(monkeypatch):
    def fake_crops(images, qualities, crops, size, seed):
        labels = np.repeat(np.tile(qualities, len(images)), crops)
        owners = np.repeat(np.arange(len(images)), len(qualities) * crops)
        return np.broadcast_to(labels[:, None, None, None], (len(labels), 1, size, size)).astype(np.uint8), labels, owners

    monkeypatch.setattr(probe, "quality_crops", fake_crops)
    result = probe.probe_encoder(QualityOracle(), [np.zeros((64, 64, 1), np.uint8)] * 4, crops=2, size=16)
    assert result.accuracy == 1.0 and result.mean_abs_error == 0.0
    assert np.array_equal(np.array(result.confusion), np.diag([4] * 9))
    assert (result.references, result.queries, result.images) == (36, 36, 4)


def test_probe_on_real_crops_keeps_references_and_queries_apart(photo):
    images = [photo[:96, :128], photo[200:296, :128], photo[300:396, 200:328]]
    crops, labels, owners = probe.quality_crops(images, (10, 50, 90), crops=2, size=32, seed=0)
    assert crops.shape == (18, 3, 32, 32) and sorted(set(labels)) == [10, 50, 90]
    result = probe.probe_encoder(CompressionEncoder(channels=3, width=4), images, qualities=(10, 50, 90), crops=2, size=32)
    assert result.references == 12 and result.queries == 6  # images 0 and 2 are references
    assert sum(map(sum, result.confusion)) == 6 and 0 <= result.accuracy <= 1


def test_probe_encoder_command(tmp_path, photo, monkeypatch):
    import jpegfix.engine as engine

    monkeypatch.setattr(engine, "load_restorer", lambda name, device, **runtime: tiny_restorer(name))
    for i in range(2):
        Image.fromarray(photo[i * 100 : i * 100 + 64, :96]).save(tmp_path / f"{i}.png")
    runner = CliRunner()
    result = runner.invoke(app, ["probe-encoder", "--model", "contrastive-color-s", "--data", str(tmp_path), "--crops", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model"] == "contrastive-color-s" and len(report["confusion"]) == 9 and report["queries"] == 9
    text = runner.invoke(app, ["probe-encoder", "--data", str(tmp_path), "--crops", "1"]).output
    assert "accuracy" in text and "chance 0.111" in text
    assert runner.invoke(app, ["probe-encoder", "--model", "qgcn-color-s", "--data", str(tmp_path)]).exit_code == 2
