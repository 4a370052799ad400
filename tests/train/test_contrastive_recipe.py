import json

import numpy as np
import pytest
import torch

from jpegfix.engine import load_restorer
from jpegfix.errors import JpegfixError
from jpegfix.models import MODELS
from jpegfix.models.contrastive import CompressionEncoder
from jpegfix.train.export import export_run
from jpegfix.train.loop import CHECKPOINT, train
from jpegfix.train.recipes import make_recipe
from jpegfix.train.recipes.contrastive import MoCo, fft_l1, make_contrast_bank

from conftest import TINY_CONTRASTIVE

SETTINGS = [
    "encoder_steps=4", "encoder_batch=4", "encoder_crop=32", "queue=16",
    "restore_steps=3", "restore_batch=2", "restore_size=32",
    "val_images=2", "val_crop=64", "probe_crops=1",
]


@pytest.fixture
def tiny_models(monkeypatch):
    """Swap in a tiny contrastive-color-s (the registry copy keeps MODELS untouched)."""
    import jpegfix.train.export as export_module
    import jpegfix.train.recipes.contrastive as recipe_module

    registry = MODELS.copy()
    spec = registry.get("contrastive-color-s")
    registry._specs[spec.name] = type(spec)(**{**spec.__dict__, "arch_args": {**spec.arch_args, **TINY_CONTRASTIVE}})
    monkeypatch.setattr(recipe_module, "MODELS", registry)
    monkeypatch.setattr(export_module, "MODELS", registry)
    monkeypatch.setattr("jpegfix.engine.MODELS", registry)
    return registry


def test_momentum_update_and_queue():
    encoder = CompressionEncoder(channels=1, width=4)
    moco = MoCo(encoder, queue=5, momentum=0.9, temperature=0.07)
    before = [p.clone() for p in moco.key_encoder.parameters()]
    with torch.no_grad():
        for p in encoder.parameters():
            p.add_(1.0)
    moco.momentum_update(encoder)
    for key, old, query in zip(moco.key_encoder.parameters(), before, encoder.parameters()):
        assert torch.allclose(key, 0.9 * old + 0.1 * query)

    moco.enqueue(torch.full((3, 16), 1.0))
    moco.enqueue(torch.full((3, 16), 2.0))  # wraps around: the oldest key is replaced
    assert moco.queue[:, 0].tolist() == [2.0, 1.0, 1.0, 2.0, 2.0] and int(moco.pointer) == 1


def test_shuffled_keys_come_back_in_order():
    encoder = CompressionEncoder(channels=1, width=4)
    moco = MoCo(encoder, queue=4, momentum=0.99, temperature=0.07)
    images = torch.rand(6, 1, 16, 16)
    keys = moco.keys(images, torch.tensor([3, 0, 5, 1, 4, 2]), groups=1)  # one BN batch: order-free
    assert moco.key_encoder.training  # batch statistics, as in MoCo
    with torch.no_grad():
        assert torch.allclose(keys, moco.key_encoder(images), atol=1e-5)


def test_infonce_prefers_the_positive():
    moco = MoCo(CompressionEncoder(channels=1, width=4), queue=8, momentum=0.99, temperature=0.07)
    query = torch.nn.functional.normalize(torch.randn(4, 16), dim=1)
    right, top1 = moco.loss(query, query)
    wrong, _ = moco.loss(query, -query)
    assert right < wrong and top1 == 1.0


def test_queued_keys_of_the_querys_quality_are_not_negatives():
    moco = MoCo(CompressionEncoder(channels=1, width=4), queue=4, momentum=0.99, temperature=0.07)
    query = torch.nn.functional.normalize(torch.randn(1, 16), dim=1)
    positive = torch.nn.functional.normalize(query + 0.5 * torch.randn(1, 16), dim=1)
    moco.enqueue(query.repeat(4, 1), torch.tensor([30, 30, 30, 70]))  # look exactly like the query
    masked, _ = moco.loss(query, positive, quality=torch.tensor([30]))
    unmasked, _ = moco.loss(query, positive)
    only_q70 = -torch.log_softmax(torch.stack([(query * positive).sum(), torch.tensor(1.0)]) / 0.07, 0)[0]
    assert masked < unmasked and masked == pytest.approx(only_q70.item(), rel=1e-4)


def test_contrast_bank_pairs_quality_and_content(photo):
    bank = make_contrast_bank([photo[:200, :200]], count=6, size=32, qualities=(10, 50, 90), seed=0, share_444=0.0)
    assert bank.query.shape == bank.positive.shape == bank.negative.shape == (6, 3, 32, 32)
    assert set(bank.quality) <= {10, 50, 90} and (bank.quality != bank.negative_quality).all()
    assert not (bank.query == bank.positive).all(axis=(1, 2, 3)).any()  # different quarters


def test_fft_loss():
    clean = torch.rand(2, 3, 16, 16)
    assert fft_l1(clean, clean) == 0 and fft_l1(clean + 0.01, clean) > 0


def test_two_stages_freeze_the_encoder_export_and_load(tmp_path, folders, tiny_models, monkeypatch):
    recipe = make_recipe("contrastive", SETTINGS, [folders[0]], [folders[1]], tmp_path / "run" / "cache")
    modules, seen = {}, {}
    build = recipe.build
    recipe.build = lambda ctx: modules.update(build(ctx)) or modules

    def watch(progress):
        net = modules["net"]
        if (progress.stage, progress.step) == ("encoder", 4):
            seen["encoder"] = {k: v.clone() for k, v in net.encoder.state_dict().items()}
        if (progress.stage, progress.step) == ("restore", 3):  # after a validation at step 2
            seen["modes"] = (net.training, net.encoder.training, any(p.requires_grad for p in net.encoder.parameters()))

    state = train(recipe, tmp_path / "run", val_every=2, checkpoint_every=2, on_progress=watch)

    assert [p["stage"] for p in state.curve] == ["encoder", "encoder", "restore", "restore"]
    assert 0 <= state.curve[1]["probe_accuracy"] <= 1 and np.isfinite(state.curve[-1]["psnr_gain"])
    # Stage restore trained the net around a frozen encoder in eval mode: same weights and
    # the same BatchNorm statistics as at the end of stage encoder.
    assert seen["modes"] == (True, False, False)
    after = modules["net"].encoder.state_dict()
    assert all(torch.equal(after[k], v) for k, v in seen["encoder"].items())

    paths = export_run(recipe, tmp_path / "run", state, "contrastive-color-s", tmp_path / "weights", "jpegfix train ...")
    card = json.loads((tmp_path / "weights" / "contrastive-color-s.json").read_text())
    assert card["arch_args"]["width"] == 8 and card["steps"] == {"encoder": 4, "restore": 3}
    assert card["qualities"] == [10, 20, 30, 40, 50, 60, 70, 80, 90]

    monkeypatch.setenv("JPEGFIX_WEIGHTS", str(tmp_path / "weights"))
    restorer = load_restorer("contrastive-color-s", "cpu")
    checkpoint = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=False)
    for key, value in restorer.net.state_dict().items():
        assert torch.equal(value, checkpoint["modules"]["net"][key])


def test_stages_run_one_at_a_time(tmp_path, folders, tiny_models):
    recipe = make_recipe("contrastive", SETTINGS, [folders[0]], [folders[1]], tmp_path / "run" / "cache")
    with pytest.raises(JpegfixError, match="needs stage 'encoder' finished"):
        train(recipe, tmp_path / "run", stage="restore")
    first = train(recipe, tmp_path / "run", stage="encoder", val_every=100)
    assert first.stage_index == 1 and {p["stage"] for p in first.curve} == {"encoder"}
    with pytest.raises(JpegfixError, match="already finished"):
        train(recipe, tmp_path / "run", stage="encoder", resume=True)
    second = train(recipe, tmp_path / "run", stage="restore", val_every=100)
    assert second.stage_index == 2 and [p["stage"] for p in second.curve] == ["encoder", "restore"]
    with pytest.raises(JpegfixError, match="no stage 'decoder'"):
        train(recipe, tmp_path / "run", stage="decoder")
