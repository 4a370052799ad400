import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from jpegfix.engine import load_restorer
from jpegfix.models import MODELS
from jpegfix.train.export import export_run
from jpegfix.train.loop import CHECKPOINT, cosine_with_warmup, train
from jpegfix.train.recipe import apply_overrides
from jpegfix.train.recipes import make_recipe
from jpegfix.train.recipes.qgcn import QGCNConfig

from conftest import TINY_QGCN_RUN as SETTINGS


def test_train_resume_export_and_load(tmp_path, folders, tiny_qgcn, monkeypatch):
    recipe = make_recipe("qgcn", SETTINGS, [folders[0]], [folders[1]], tmp_path / "run" / "cache")
    state = train(recipe, tmp_path / "run", val_every=3, checkpoint_every=2)
    assert state.stage_index == 2 and [p["stage"] for p in state.curve] == ["small", "small", "large"]
    assert all(np.isfinite(p["psnr_gain"]) for p in state.curve)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 3 and "l1" in log[0]

    # Resuming a finished run trains nothing more and keeps the curve.
    again = train(recipe, tmp_path / "run", resume=True)
    assert again.curve == state.curve

    paths = export_run(recipe, tmp_path / "run", state, "qgcn-color-s", tmp_path / "weights", "jpegfix train ...")
    card = json.loads((tmp_path / "weights" / "qgcn-color-s.json").read_text())
    assert card["arch_args"]["width"] == 8 and card["steps"] == {"small": 6, "large": 2}
    assert len(card["sha256"]) == 64 and card["validation"]["psnr_gain"] == state.curve[-1]["psnr_gain"]

    monkeypatch.setenv("JPEGFIX_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setattr("jpegfix.engine.MODELS", tiny_qgcn)
    restorer = load_restorer("qgcn-color-s", "cpu")
    checkpoint = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=False)
    for key, value in restorer.net.state_dict().items():
        assert torch.equal(value, checkpoint["modules"]["net"][key])


def test_resume_mid_stage_continues_where_it_stopped(tmp_path, folders, tiny_qgcn):
    recipe = make_recipe("qgcn", SETTINGS, [folders[0]], [folders[1]], tmp_path / "run" / "cache")
    stop = RuntimeError("interrupted")
    calls = []

    def interrupt(progress):
        calls.append((progress.stage, progress.step))
        if len(calls) == 4:
            raise stop

    with pytest.raises(RuntimeError):
        train(recipe, tmp_path / "run", val_every=100, checkpoint_every=2, on_progress=interrupt)
    resumed = []
    train(recipe, tmp_path / "run", resume=True, val_every=100, on_progress=lambda p: resumed.append((p.stage, p.step)))
    assert resumed[0] == ("small", 5) and resumed[-1] == ("large", 2)


def test_banks_are_redrawn_after_each_pass_and_spent_draws_deleted(tmp_path, folders, tiny_qgcn):
    # bank_patches=1: 4 patches of 32px, two steps of 2 per pass, so steps 0-1 / 2-3 / 4-5 each walk a new draw
    cache = tmp_path / "cache"
    recipe = make_recipe("qgcn", SETTINGS + ["bank_patches=1"], [folders[0]], [folders[1]], cache)
    batch_of = recipe.stages()[0].make_batches(SimpleNamespace(device="cpu"))
    draws = [batch_of(step)[1] for step in range(6)]
    assert torch.equal(batch_of(0)[1], draws[0])  # deterministic in the step, as resuming needs
    firsts = [torch.cat(draws[r * 2 : r * 2 + 2]) for r in range(3)]
    assert not torch.equal(firsts[0], firsts[1]) and not torch.equal(firsts[1], firsts[2])
    # the first draw stays cached for later runs; of the later ones only the one in use is kept
    assert sorted(p.name.rsplit("-", 2)[-1] for p in cache.glob("bank-*-32-*")) == ["1.npz", "r2.npz"]

    one = make_recipe("qgcn", SETTINGS + ["bank_patches=1", "bank_passes=0"], [folders[0]], [folders[1]], cache)
    same = one.stages()[0].make_batches(SimpleNamespace(device="cpu"))
    assert torch.equal(same(4)[1], draws[0])  # bank_passes=0: the first bank, cycled


def test_overrides_are_validated():
    config = apply_overrides(QGCNConfig(), ["small_steps=7", "lr=0.001"])
    assert config.small_steps == 7 and config.lr == 0.001
    with pytest.raises(ValueError, match="unknown setting"):
        apply_overrides(QGCNConfig(), ["smal_steps=7"])


class _FixedOutput(torch.nn.Module):
    """A "network" that answers every input with the same image, so the loss is known."""

    def __init__(self, output: torch.Tensor):
        super().__init__()
        self.output = output

    def forward(self, image, qmaps=None):
        return self.output


@pytest.mark.parametrize("settings, expected", [
    ([], lambda r, d: (r.abs().mean(dim=(1, 2, 3)) / d.abs().mean(dim=(1, 2, 3))).mean()),
    (["relative_loss=false"], lambda r, d: r.abs().mean()),
    (["relative_loss=false", "loss_power=2"], lambda r, d: (r ** 2).mean()),
    (["loss_power=2"], lambda r, d: ((r ** 2).mean(dim=(1, 2, 3)) / (d ** 2).mean(dim=(1, 2, 3))).mean()),
])
def test_the_loss_is_the_configured_power_of_the_error(tmp_path, folders, settings, expected):
    recipe = make_recipe("qgcn", SETTINGS + settings, [folders[0]], [folders[1]], tmp_path / "cache")
    generator = torch.Generator().manual_seed(0)
    clean, degraded, restored = (torch.rand(2, 3, 8, 8, generator=generator) for _ in range(3))
    losses = []
    ctx = SimpleNamespace(net=lambda name: _FixedOutput(restored), autocast=lambda: torch.autocast("cpu", enabled=False),
                          backward=lambda loss, name: losses.append(loss))
    logged = recipe._step((degraded, clean, torch.zeros(2, 3, 8, 8)), ctx)
    assert losses[0].item() == pytest.approx(expected(restored - clean, degraded - clean).item(), rel=1e-5)
    assert logged["l1"] == pytest.approx((restored - clean).abs().mean().item(), rel=1e-5)


def test_an_unknown_loss_power_is_refused(tmp_path, folders):
    with pytest.raises(ValueError, match="loss_power"):
        make_recipe("qgcn", SETTINGS + ["loss_power=3"], [folders[0]], [folders[1]], tmp_path / "cache")


def test_a_deeper_variant_trains_from_the_shipped_weights_as_exactly_that_net(tmp_path, folders):
    from jpegfix.train.loop import _initialise
    from jpegfix.weights import load_model

    deeper = ["model=qgcn-unet-gray-s", 'arch={"down_blocks": [1, 1, 2, 6]}']
    recipe = make_recipe("qgcn", SETTINGS + deeper, [folders[0]], [folders[1]], tmp_path / "cache")
    assert recipe.arch_overrides("net") == {"down_blocks": [1, 1, 2, 6]}
    ctx = SimpleNamespace(modules=recipe.build(None))
    record = _initialise(recipe, ctx, "qgcn-unet-gray-s")
    assert record["grown"] == ["encoder.0.blocks.0"] and len(record["sha256"]) == 64
    shipped, _ = load_model(MODELS.get("qgcn-unet-gray-s"), download=False)
    image = torch.rand(1, 1, 64, 64)
    maps = torch.full((1, 1, 64, 64), 20 / 255)
    with torch.no_grad():
        assert torch.equal(ctx.modules["net"].eval()(image, maps), shipped(image, maps))


def test_init_refuses_weights_of_another_shape(tmp_path, folders):
    from jpegfix.errors import JpegfixError
    from jpegfix.train.loop import _initialise

    wider = ["model=qgcn-unet-gray-s", 'arch={"widths": [16, 32, 64, 256]}']
    recipe = make_recipe("qgcn", SETTINGS + wider, [folders[0]], [folders[1]], tmp_path / "cache")
    with pytest.raises(JpegfixError, match="do not fit"):
        _initialise(recipe, SimpleNamespace(modules=recipe.build(None)), "qgcn-unet-gray-s")


def test_learning_rate_schedule_warms_up_and_decays():
    factor = cosine_with_warmup(1000)
    assert factor(0) < factor(19) <= 1.0 and factor(999) < 0.05


def test_a_recipe_can_ask_for_a_longer_warm_up(tmp_path, folders):
    factor = cosine_with_warmup(1000, warmup=100)
    assert factor(19) == pytest.approx(0.2) and factor(99) == 1.0
    recipe = make_recipe("qgcn", SETTINGS + ["warmup_steps=100"], [folders[0]], [folders[1]], tmp_path / "cache")
    assert [stage.warmup for stage in recipe.stages()] == [100, 0]


def test_train_command_logs_stages_and_exports(tmp_path, folders, tiny_qgcn, monkeypatch):
    from typer.testing import CliRunner

    from jpegfix.cli.app import app
    from jpegfix.cli.train import TrainingDisplay

    monkeypatch.setattr(TrainingDisplay, "PLAIN_EVERY", 2)
    args = ["train", "--method", "qgcn", "--data", str(folders[0]), "--val", str(folders[1]), "--out",
            str(tmp_path / "run"), "--val-every", "3", "--export", "qgcn-color-s", "--weights-dir", str(tmp_path / "w")]
    for setting in SETTINGS:
        args += ["--set", setting]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    # Not a terminal: plain lines that name the stage (not eaten as Rich markup), validation lines.
    assert "[small] step 2/6 loss=" in result.output and "[large] step 2/2" in result.output
    assert "[small] step 3/6" in result.output and "psnr_gain=" in result.output
    assert (tmp_path / "w" / "qgcn-color-s.safetensors").is_file()
    bad = CliRunner().invoke(app, ["train", "--method", "qgcn", "--out", str(tmp_path / "r2"), "--stage", "nope",
                                   "--data", str(folders[0])] + sum([["--set", s] for s in SETTINGS], []))
    assert bad.exit_code == 1 and "no stage 'nope'" in bad.output


def test_raising_the_last_stages_steps_extends_a_finished_run(tmp_path, folders, tiny_qgcn):
    recipe = make_recipe("qgcn", SETTINGS, [folders[0]], [folders[1]], tmp_path / "run" / "cache")
    train(recipe, tmp_path / "run", val_every=100)
    longer = make_recipe("qgcn", SETTINGS + ["large_steps=4"], [folders[0]], [folders[1]], tmp_path / "run" / "cache")
    steps = []
    state = train(longer, tmp_path / "run", resume=True, val_every=100, on_progress=lambda p: steps.append((p.stage, p.step)))
    assert steps == [("large", 3), ("large", 4)] and state.stage_index == 2
    assert [(p["stage"], p["step"]) for p in state.curve] == [("small", 6), ("large", 2), ("large", 4)]


def test_runs_record_cpu_time_every_invocation_and_data_by_name(tmp_path, folders, tiny_qgcn):
    recipe = make_recipe("qgcn", SETTINGS, [folders[0]], [folders[1]], tmp_path / "run" / "cache")
    state = train(recipe, tmp_path / "run", val_every=3, command=f"jpegfix train --data {folders[0]}")
    longer = make_recipe("qgcn", [*SETTINGS, "large_steps=3"], [folders[0]], [folders[1]], tmp_path / "run" / "cache")
    state = train(longer, tmp_path / "run", resume=True, val_every=3, command="jpegfix train --resume")
    assert [h["command"] for h in state.history] == [f"jpegfix train --data {folders[0]}", "jpegfix train --resume"]
    assert state.history[1]["stage"] == "large" and state.history[1]["step"] == 2
    assert all(p["cpu_seconds"] > 0 for p in state.curve) and state.cpu_seconds >= state.curve[-1]["cpu_seconds"] - 0.05
    export_run(longer, tmp_path / "run", state, "qgcn-color-s", tmp_path / "w", f"jpegfix train --data {folders[0]}")
    card = json.loads((tmp_path / "w" / "qgcn-color-s.json").read_text())
    assert card["training_data"] == [folders[0].name] and str(folders[0]) not in json.dumps(card)
    assert len(card["history"]) == 2 and card["cpu_time_s"] > 0
    assert card["wall_time_s"] == state.curve[-1]["seconds"]  # cumulative over stages, not summed again


def test_init_starts_from_a_models_weights_and_keeps_its_lineage(tmp_path, folders, tiny_qgcn, monkeypatch):
    recipe = make_recipe("qgcn", SETTINGS, [folders[0]], [folders[1]], tmp_path / "a" / "cache")
    first = train(recipe, tmp_path / "a", val_every=3)
    export_run(recipe, tmp_path / "a", first, "qgcn-color-s", tmp_path / "w", "jpegfix train (first)")
    monkeypatch.setenv("JPEGFIX_WEIGHTS", str(tmp_path / "w"))
    monkeypatch.setattr("jpegfix.models.MODELS", tiny_qgcn)
    fresh = make_recipe("qgcn", [*SETTINGS, "small_steps=1", "large_steps=1"], [folders[0]], [folders[1]], tmp_path / "b" / "cache")
    second = train(fresh, tmp_path / "b", init="qgcn-color-s")
    assert second.init["model"] == "qgcn-color-s" and second.init["command"] == "jpegfix train (first)"
    assert second.init["validation_curve"] == first.curve


def test_compression_mix_draws_every_kind_of_file(photo):
    from jpegfix.data import CompressionMix, make_patch_bank
    from jpegfix.table_sets import named

    bank = make_patch_bank([photo], count=300, size=32, seed=1, mix=CompressionMix(), realworld=named("realworld"))
    assert set(bank.subsampling) == {"4:2:0", "4:2:2", "4:4:4"}
    assert bank.quality.min() <= 10 and (bank.quality >= 91).mean() > 0.1 and bank.tables.max() <= 255
    maps = bank.qmaps(np.arange(300))
    # The maps carry each patch's own luma table: not every table is one of IJG's.
    from jpegfix.qmaps import ijg_table

    ijg = {ijg_table(q).tobytes() for q in range(1, 101)}
    assert 0.2 < np.mean([bank.tables[i, 0].astype(np.int64).tobytes() not in ijg for i in range(300)]) < 0.7
    assert np.allclose(maps[:, 0, :8, :8] * 255, bank.tables[:, 0])


def test_halved_jpeg_sources(tmp_path, photo):
    from PIL import Image

    from jpegfix.data import load_image

    Image.fromarray(photo[:64, :96]).save(tmp_path / "a.jpg", quality=95)
    Image.fromarray(photo[:64, :96]).save(tmp_path / "b.png")
    assert load_image(tmp_path / "a.jpg", 3, 0.5).shape == (32, 48, 3)
    assert load_image(tmp_path / "b.png", 3, 0.5).shape == (64, 96, 3)  # lossless sources stay whole


def _blocking_phase(clean: np.ndarray, degraded: np.ndarray) -> np.ndarray:
    """Mean jump of the JPEG error across each column boundary phase 0-7: JPEG blocks put
    it at phase 7 (between columns 8k+7 and 8k+8)."""
    error = degraded.astype(np.float64) - clean
    jumps = np.abs(np.diff(error, axis=1)).mean(axis=(0, 2))
    return np.array([jumps[phase::8].mean() for phase in range(8)])


@pytest.mark.parametrize("kind", ["jpeg", "clean", "shifted", "resized"])
def test_blind_patches_as_a_png_of_a_jpeg_can_arrive(kind, photo):
    from jpegfix.data import CompressionMix, degrade

    mix = CompressionMix(quality_bands=((1.0, 8, 8),), table_kinds=(("ijg", 1.0),),
                         subsamplings=(("4:4:4", 1.0),), double_share=0.0)
    rng = np.random.default_rng(3)
    phases = []
    for _ in range(6):
        clean, degraded, tables, quality, _ = degrade(kind, photo, 64, rng, mix)
        assert clean.shape == degraded.shape == (64, 64, 3) and tables.shape == (2, 8, 8)
        phases.append(_blocking_phase(clean, degraded) if kind != "clean" else None)
    if kind == "clean":
        assert np.array_equal(clean, degraded) and quality == 100 and tables.max() == 1
        return
    strongest = [int(np.argmax(p)) for p in phases]
    peak = np.mean([p.max() / np.median(p) for p in phases])
    if kind == "jpeg":
        assert strongest == [7] * 6 and peak > 1.5  # blocking on the 8x8 grid
    elif kind == "shifted":
        assert any(s != 7 for s in strongest) and peak > 1.5  # blocking, off the grid
    else:
        assert peak < 1.5  # resizing spreads the blocks' edges over every phase


def test_blind_model_trains_on_every_kind_and_validates_what_it_must_leave_alone(tmp_path, folders, monkeypatch):
    import jpegfix.train.recipes.qgcn as recipe_module
    from conftest import TINY_QGCN_UNET

    registry = MODELS.copy()
    spec = registry.get("qgcn-unet-blind-color-s")
    registry._specs[spec.name] = type(spec)(**{**spec.__dict__, "arch_args": {**spec.arch_args, **TINY_QGCN_UNET}})
    monkeypatch.setattr(recipe_module, "MODELS", registry)
    recipe = make_recipe("qgcn", [*SETTINGS, "model=qgcn-unet-blind-color-s"], [folders[0]], [folders[1]], tmp_path / "cache")
    assert dict(recipe.after_decoding) == {"clean": 0.1, "resized": 0.15, "shifted": 0.1}
    state = train(recipe, tmp_path / "run", val_every=6)
    point = state.curve[-1]
    assert {"clean_psnr", "clean_psnr_min", "gain_resized_q30", "gain_resized_q90", "gain_shifted_q30", "gain_q10"} <= set(point)
    assert point["clean_psnr_min"] <= point["clean_psnr"] <= 99
    assert recipe.card()["after_decoding"] == {"clean": 0.1, "resized": 0.15, "shifted": 0.1}
    # Table-guided models keep their banks: nothing after decoding unless asked.
    assert make_recipe("qgcn", SETTINGS, [folders[0]], [folders[1]], tmp_path / "c").after_decoding == ()
