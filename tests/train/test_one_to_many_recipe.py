import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from jpegfix.cli.app import app
from jpegfix.models import MODELS
from jpegfix.train.export import export_run
from jpegfix.train.loop import train
from jpegfix.train.perceptual import VGG16Features, perceptual_loss
from jpegfix.train.recipes import make_recipe
from jpegfix.models.one_to_many import Discriminator
from jpegfix.train.recipes.one_to_many import discriminator_loss, judge, make_coefficient_bank

from conftest import TINY_CQR_RANKER, TINY_ONE_TO_MANY, save_jpeg

SETTINGS = ["patch=32", "batch=2", "bank=6", "proposal_steps=2", "adversarial_steps=2", "val_images=1", "val_crop=48"]


@pytest.fixture
def tiny_models(monkeypatch, tmp_path):
    """Tiny one-to-many-color-s and an untrained tiny ranker file as feature network."""
    import jpegfix.train.export as export_module
    import jpegfix.train.recipes.one_to_many as recipe_module
    from safetensors.torch import save_file

    registry = MODELS.copy()
    for name, tiny in (("one-to-many-color-s", TINY_ONE_TO_MANY), ("cqr-ranker-color", TINY_CQR_RANKER)):
        spec = registry.get(name)
        registry._specs[name] = type(spec)(**{**spec.__dict__, "arch_args": {**spec.arch_args, **tiny}})
    spec = registry.get("one-to-many-color-s")
    registry._specs[spec.name] = type(spec)(**{**spec.__dict__, "extras": {"discriminator": (4, 4, 8, 8)}})
    for module in (recipe_module, export_module):
        monkeypatch.setattr(module, "MODELS", registry)
    monkeypatch.setattr("jpegfix.engine.MODELS", registry)
    ranker = tmp_path / "ranker.safetensors"
    save_file(registry.get("cqr-ranker-color").build().state_dict(), str(ranker))
    return ranker


def test_coefficient_bank_holds_what_the_files_store(photo):
    bank = make_coefficient_bank([photo[:200, :200]], count=3, size=32, quality_range=(10, 20), seed=0)
    assert bank.luma.shape == (3, 4, 4, 8, 8) and bank.chroma.shape == (3, 2, 2, 2, 8, 8)
    assert bank.tables.shape == (3, 3, 8, 8) and ((10 <= bank.patches.quality) & (bank.patches.quality <= 20)).all()
    # The stored DC of the first luma block matches the decoded patch's mean brightness.
    patch = bank.patches.degraded[0].astype(float)
    luma = 0.299 * patch[0] + 0.587 * patch[1] + 0.114 * patch[2]
    dc = bank.luma[0, 0, 0, 0, 0] * bank.tables[0, 0, 0, 0] / 8 + 128
    assert abs(dc - luma[:8, :8].mean()) < bank.tables[0, 0, 0, 0]


def test_discriminator_learns_to_tell_blocky_outputs_from_originals():
    # Scored one batch at a time, BatchNorm would normalise originals and outputs alike and
    # D would stay at chance (loss 2 ln 2 = 1.386, measured 1.379 here); ``judge`` scores
    # both in one batch.
    torch.manual_seed(0)
    disc = Discriminator(channels=1, widths=(4, 4, 8, 8))
    optimizer = torch.optim.Adam(disc.parameters(), 1e-2, betas=(0.5, 0.999))
    for _ in range(40):
        real = torch.rand(4, 1, 1, 1) * 0.5 + 0.25 + 0.02 * torch.randn(4, 1, 32, 32)
        blocks = 0.1 * torch.randn(4, 1, 4, 4).repeat_interleave(8, 2).repeat_interleave(8, 3)
        loss = discriminator_loss(*judge(disc, real, real + blocks))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5


def test_two_stages_train_export_and_restore_candidates(tmp_path, folders, tiny_models, monkeypatch):
    recipe = make_recipe("one-to-many", SETTINGS + [f"ranker_weights={tiny_models}", "feature_layers=[0,3]"],
                         [folders[0]], [folders[1]], tmp_path / "run" / "cache")
    modes = {}

    def watch(progress):
        modes[progress.stage] = dict(progress.scalars)

    state = train(recipe, tmp_path / "run", val_every=1, on_progress=watch)
    assert [p["stage"] for p in state.curve] == ["proposal"] * 2 + ["adversarial"] * 2
    assert {"perceptual", "jpeg", "pixel"} <= set(modes["proposal"]) and "discriminator" not in modes["proposal"]
    assert {"naturalness", "discriminator"} <= set(modes["adversarial"])
    assert {"psnr_gain", "inside", "diversity"} <= set(state.curve[-1])
    export_run(recipe, tmp_path / "run", state, "one-to-many-color-s", tmp_path / "weights", "jpegfix train ...")
    card = json.loads((tmp_path / "weights" / "one-to-many-color-s.json").read_text())
    assert card["arch_args"]["shift_average"] is True and card["steps"] == {"proposal": 2, "adversarial": 2}

    monkeypatch.setenv("JPEGFIX_WEIGHTS", str(tmp_path / "weights"))
    photo = np.asarray(Image.open(folders[1] / "v0.png"))
    source = save_jpeg(tmp_path / "in.jpg", photo, quality=15)
    result = CliRunner().invoke(app, ["restore", str(source), "-o", str(tmp_path / "out"), "--model", "one-to-many",
                                      "--samples", "3", "--seed", "4", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output[result.output.index("["):])[0]
    assert [c["seed"] for c in record["details"]["candidates"]] == [4, 5, 6]
    again = CliRunner().invoke(app, ["restore", str(source), "-o", str(tmp_path / "again"), "--model", "one-to-many",
                                     "--seed", "5", "--tile", "64"])
    assert again.exit_code == 0, again.output
    second = np.asarray(Image.open(tmp_path / "out" / "in_2.png"))
    assert np.array_equal(second, np.asarray(Image.open(tmp_path / "again" / "in.png")))  # same seed, any tiling


def test_shift_average_ablation_is_exported_as_trained(tmp_path, folders, tiny_models):
    recipe = make_recipe("one-to-many", SETTINGS + [f"ranker_weights={tiny_models}", "shift_average=false",
                                                    "adversarial_steps=0"], [folders[0]], [folders[1]], tmp_path / "c")
    state = train(recipe, tmp_path / "run", val_every=100)
    export_run(recipe, tmp_path / "run", state, "one-to-many-color-s", tmp_path / "w", "jpegfix train ...")
    assert json.loads((tmp_path / "w" / "one-to-many-color-s.json").read_text())["arch_args"]["shift_average"] is False


def test_pixel_on_mean_trains_two_candidates_per_patch(tmp_path, folders, tiny_models):
    recipe = make_recipe("one-to-many", SETTINGS + [f"ranker_weights={tiny_models}", "pixel_on_mean=true"],
                         [folders[0]], [folders[1]], tmp_path / "c")
    ctx = SimpleNamespace(device=torch.device("cpu"), modules={"net": recipe.build(None)["net"]})
    batch = recipe._batches(ctx)(0)
    assert len(batch[3]) == 2 * len(batch[0])  # two noise maps per patch
    state = train(recipe, tmp_path / "run", val_every=100)
    assert [p["stage"] for p in state.curve] == ["proposal", "adversarial"]


def test_vgg16_state_dict_loads_and_gives_relu5_3(tmp_path):
    state = VGG16Features().state_dict()
    path = tmp_path / "vgg16.pth"
    torch.save({**{k: torch.randn_like(v) for k, v in state.items() if k.startswith("features.")},
                "classifier.0.weight": torch.zeros(2, 2)}, path)
    net = VGG16Features.from_file(path)
    (features,) = net(torch.rand(1, 1, 32, 32))
    assert features.shape == (1, 512, 2, 2)
    assert float(perceptual_loss(net, torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)).detach()) > 0
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not a VGG16"):
        VGG16Features.from_file(tmp_path / "bad.pth")


def test_samples_need_a_sampling_model(tmp_path, photo):
    source = save_jpeg(tmp_path / "a.jpg", photo[:64, :64], quality=20)
    result = CliRunner().invoke(app, ["restore", str(source), "-o", str(tmp_path / "o"), "--model", "qgcn", "--samples", "2"])
    assert result.exit_code == 2 and "sampling model" in result.output
