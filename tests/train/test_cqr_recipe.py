import json

import numpy as np
import pytest
import torch
from PIL import Image

from jpegfix.engine import load_restorer
from jpegfix.models import MODELS
from jpegfix.train.export import export_run
from jpegfix.train.loop import train
from jpegfix.train.recipes import make_recipe
from jpegfix.train.recipes.cqr import dihedral, make_rank_bank, quality_levels, ranking_loss

from conftest import TINY_CQR, TINY_CQR_RANKER

SETTINGS = [
    "ranker_steps=2", "ranker_batch=2", "ranker_bank=4", "calibration_images=2",
    "deblock_steps=2", "deblock_batch=2", "deblock_size=32", "val_images=2", "val_crop=64",
]


@pytest.fixture
def tiny_models(monkeypatch):
    """Swap in tiny cqr-color-s and cqr-ranker-color (the registry copy keeps MODELS untouched)."""
    import jpegfix.train.export as export_module
    import jpegfix.train.recipes.cqr as recipe_module

    registry = MODELS.copy()
    for name, tiny in (("cqr-color-s", TINY_CQR), ("cqr-ranker-color", TINY_CQR_RANKER)):
        spec = registry.get(name)
        registry._specs[name] = type(spec)(**{**spec.__dict__, "arch_args": {**spec.arch_args, **tiny}})
    monkeypatch.setattr(recipe_module, "MODELS", registry)
    monkeypatch.setattr(export_module, "MODELS", registry)
    monkeypatch.setattr("jpegfix.engine.MODELS", registry)
    return registry


def test_quality_levels_cover_the_range():
    assert quality_levels(1, 30, 3) == [(1, 10), (11, 20), (21, 30)]  # the paper's levels
    levels = quality_levels(5, 95, 9)
    assert levels[0][0] == 5 and levels[-1][1] == 95 and all(a[1] + 1 == b[0] for a, b in zip(levels, levels[1:]))
    with pytest.raises(ValueError):
        quality_levels(5, 7, 9)


def test_ranking_loss_orders_a_toy_pair():
    levels, content = torch.tensor([0, 1]), torch.tensor([0, 0])
    right, accuracy = ranking_loss(torch.tensor([0.0, 1.0]), levels, content, margin=0.5, cross_gap=2, cross_weight=0.5)
    close, _ = ranking_loss(torch.tensor([0.0, 0.2]), levels, content, margin=0.5, cross_gap=2, cross_weight=0.5)
    wrong, bad = ranking_loss(torch.tensor([1.0, 0.0]), levels, content, margin=0.5, cross_gap=2, cross_weight=0.5)
    assert right == 0 and accuracy == 1 and abs(float(close) - 0.3) < 1e-6 and abs(float(wrong) - 1.5) < 1e-6 and bad == 0


def test_ranking_loss_cross_content_pairs_need_a_level_gap():
    scores = torch.zeros(4)
    levels, content = torch.tensor([0, 1, 0, 3]), torch.tensor([0, 0, 1, 1])
    loss, _ = ranking_loss(scores, levels, content, margin=0.5, cross_gap=2, cross_weight=0.5)
    # same content: (0<1), (0<3); cross content at least 2 apart: (0 -> 3) from crop 0 only.
    assert abs(float(loss) - (0.5 + 0.5 * 0.5)) < 1e-6
    same_only, _ = ranking_loss(scores, levels, content, margin=0.5, cross_gap=2, cross_weight=0.0)
    assert float(same_only) == 0.5


def test_rank_bank_holds_one_crop_at_distinct_levels(photo):
    levels = quality_levels(5, 95, 9)
    bank = make_rank_bank([photo[:200, :200]], count=5, size=32, levels=levels, per_crop=3, seed=0, share_444=0.0)
    assert bank.crops.shape == (5, 3, 3, 32, 32)
    assert (np.diff(bank.level, axis=1) > 0).all()
    assert all(levels[l][0] <= q <= levels[l][1] for l, q in zip(bank.level.ravel(), bank.quality.ravel()))
    assert not (bank.crops[:, 0] == bank.crops[:, 2]).all()


def test_dihedral_transforms_are_distinct():
    x = torch.arange(16.0).view(1, 4, 4)
    outs = {tuple(dihedral(x, i).flatten().tolist()) for i in range(8)}
    assert len(outs) == 8


def test_two_stages_freeze_the_ranker_calibrate_export_and_load(tmp_path, folders, tiny_models, monkeypatch):
    recipe = make_recipe("cqr", SETTINGS, [folders[0]], [folders[1]], tmp_path / "run" / "cache")
    modules, seen = {}, {}
    build = recipe.build
    recipe.build = lambda ctx: modules.update(build(ctx)) or modules

    def watch(progress):
        if (progress.stage, progress.step) == ("ranker", 2):
            seen["ranker"] = {k: v.clone() for k, v in modules["ranker"].state_dict().items()}
        if progress.stage == "deblock":
            seen["modes"] = (modules["net"].training, modules["ranker"].training,
                             any(p.requires_grad for p in modules["ranker"].parameters()))

    state = train(recipe, tmp_path / "run", val_every=1, checkpoint_every=2, on_progress=watch)
    assert [p["stage"] for p in state.curve] == ["ranker", "ranker", "deblock", "deblock"]
    assert -1 <= state.curve[1]["spearman"] <= 1 and np.isfinite(state.curve[-1]["psnr_gain"])
    assert "gain_q70" in state.curve[-1] and "worst_gain" in state.curve[-1]
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert {"l1", "quality", "features"} <= set(log[-1]) and "pair_accuracy" in log[0]
    # The ranker was calibrated at its validations and then frozen in eval mode: same weights,
    # BatchNorm statistics and calibration table after stage deblock.
    assert seen["modes"] == (True, False, False)
    after = modules["ranker"].state_dict()
    assert all(torch.equal(after[k], v) for k, v in seen["ranker"].items())
    assert modules["ranker"].calibrated

    only_deblocker = export_run(recipe, tmp_path / "run", state, "cqr-color-s", tmp_path / "deblock", "...", "deblock")
    assert [p.name for p in only_deblocker] == ["cqr-color-s.safetensors", "cqr-color-s.json"]
    export_run(recipe, tmp_path / "run", state, "cqr-color-s", tmp_path / "weights", "jpegfix train ...")
    net_card = json.loads((tmp_path / "weights" / "cqr-color-s.json").read_text())
    ranker_card = json.loads((tmp_path / "weights" / "cqr-ranker-color.json").read_text())
    assert net_card["arch_args"]["width"] == 8 and net_card["steps"] == {"ranker": 2, "deblock": 2}
    assert "psnr_gain" in net_card["validation"] and "spearman" in ranker_card["validation"]
    assert len(ranker_card["calibration"]["scores"]) == len(ranker_card["calibration"]["qualities"])
    assert None not in ranker_card["calibration"]["scores"]

    monkeypatch.setenv("JPEGFIX_WEIGHTS", str(tmp_path / "weights"))
    restorer = load_restorer("cqr-color-s", "cpu")
    assert all(torch.equal(v, modules["net"].state_dict()[k]) for k, v in restorer.net.state_dict().items())
    from jpegfix.quality import QualityReader

    readout = QualityReader().read(np.asarray(Image.open(folders[1] / "v0.png")))
    assert readout["model"] == "cqr-ranker-color" and readout["quality"] is not None


def test_l1_ablation_has_no_ranker_stage_and_exports_only_the_net(tmp_path, folders, tiny_models):
    recipe = make_recipe("cqr", SETTINGS + ["ranker_losses=false"], [folders[0]], [folders[1]], tmp_path / "run" / "cache")
    assert [s.name for s in recipe.stages()] == ["deblock"] and recipe.card()["loss"].startswith("L1 only")
    state = train(recipe, tmp_path / "run", val_every=100)
    assert [p["stage"] for p in state.curve] == ["deblock"]
    paths = export_run(recipe, tmp_path / "run", state, "cqr-color-s-l1", tmp_path / "weights", "jpegfix train ...")
    assert sorted(p.name for p in paths) == ["cqr-color-s-l1.json", "cqr-color-s-l1.safetensors"]


def test_ranker_stage_alone_exports_only_the_ranker_which_a_later_run_reuses(tmp_path, folders, tiny_models):
    recipe = make_recipe("cqr", SETTINGS, [folders[0]], [folders[1]], tmp_path / "run" / "cache")
    state = train(recipe, tmp_path / "run", stage="ranker", val_every=100)
    paths = export_run(recipe, tmp_path / "run", state, "cqr-color-s", tmp_path / "weights", "jpegfix train ...")
    assert sorted(p.name for p in paths) == ["cqr-ranker-color.json", "cqr-ranker-color.safetensors"]

    reuse = make_recipe("cqr", SETTINGS + [f"ranker_weights={tmp_path / 'weights' / 'cqr-ranker-color.safetensors'}"],
                        [folders[0]], [folders[1]], tmp_path / "run2" / "cache")
    assert [s.name for s in reuse.stages()] == ["deblock"] and "ranker" not in reuse.exports()
    modules = reuse.build(None)
    assert modules["ranker"].calibrated
    second = train(reuse, tmp_path / "run2", val_every=100)
    assert [p["stage"] for p in second.curve] == ["deblock"] and np.isfinite(second.curve[-1]["psnr_gain"])
