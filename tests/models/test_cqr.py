import pytest
import torch

from jpegfix.batch import RestoreOptions
from jpegfix.engine import choose_model, load_restorer
from jpegfix.errors import InputError
from jpegfix.jpeg import read_image
from jpegfix.models import MODELS
from jpegfix.models.cqr import CQRNet, CQRRanker, WindowNonLocal

from conftest import TINY_CQR, TINY_CQR_RANKER, save_jpeg
from models.test_contrastive import count_macs


def full_attention(block: WindowNonLocal, x: torch.Tensor) -> torch.Tensor:
    """The block's non-local operation over all positions at once (RNAN's original form)."""
    n, _, h, w = x.shape
    q, k, v = (conv(x).flatten(2).transpose(1, 2) for conv in (block.theta, block.phi, block.g))
    weights = torch.softmax(q @ k.transpose(1, 2) / q.shape[-1] ** 0.5, dim=-1)
    return x + block.out((weights @ v).transpose(1, 2).reshape(n, -1, h, w))


def test_one_window_over_everything_is_full_attention():
    block = WindowNonLocal(6, window=16).eval()
    x = torch.randn(2, 6, 13, 11)  # padded to 16 x 16: the masked keys must change nothing
    with torch.no_grad():
        assert torch.allclose(block(x), full_attention(block, x), atol=1e-5)


def test_windows_are_independent_on_sides_that_are_not_multiples_of_8():
    block = WindowNonLocal(6, window=4).eval()
    x = torch.randn(1, 6, 13, 21)
    with torch.no_grad():
        out = block(x)
        # A window's output depends only on its own positions: a whole window, and the
        # partial windows of the padded bottom-right corner, computed alone agree.
        assert out.shape == x.shape
        assert torch.allclose(out[..., 4:8, 8:12], full_attention(block, x[..., 4:8, 8:12]), atol=1e-5)
        assert torch.allclose(out[..., 12:13, 16:20], full_attention(block, x[..., 12:13, 16:20]), atol=1e-5)
        assert torch.allclose(out[..., 12:13, 20:21], full_attention(block, x[..., 12:13, 20:21]), atol=1e-5)


def test_attention_memory_grows_linearly():
    # 512 x 512 positions: a full attention matrix would need 256 GiB; windows need 64 MiB.
    block = WindowNonLocal(4, window=8).eval()
    with torch.no_grad():
        out = block(torch.randn(1, 4, 512, 512))
    assert out.shape == (1, 4, 512, 512) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["cqr-color-s", "cqr-gray-paper"])
def test_deblocker_any_size_and_identity_at_start(name):
    spec = MODELS.get(name)
    net = spec.build(**TINY_CQR).eval()
    image = torch.rand(2, spec.channels, 37, 53)
    with torch.no_grad():
        assert torch.equal(net(image), image)  # zero-initialised tail: the identity
        torch.nn.init.normal_(net.tail[0].weight, std=0.1)
        out = net(image)
    assert out.shape == image.shape and torch.isfinite(out).all() and not torch.equal(out, image)
    assert net.hyperparameters["dilations"] == [1, 2, 4]


def test_windows_must_sit_on_the_tiling_grid():
    with pytest.raises(ValueError, match="must divide 16"):
        CQRNet(channels=3, width=8, branch=4, groups=2, scale=2, window=16)
    with pytest.raises(TypeError):
        CQRNet(3)  # keyword-only


def test_ranker_features_scores_and_calibration_buffer():
    ranker = CQRRanker(channels=3, **TINY_CQR_RANKER).eval()
    image = torch.rand(3, 3, 64, 96)
    with torch.no_grad():
        features = ranker.features(image)
        scores = ranker(image)
    assert len(features) == 10 and len(ranker.layers) == 10
    assert features[0].shape == (3, 4, 64, 96) and features[-1].shape == (3, 32, 2, 3)
    assert scores.shape == (3,) and torch.allclose(scores, ranker.score(features))
    assert not ranker.calibrated and "calibration_scores" in ranker.state_dict()
    ranker.calibration_scores.copy_(torch.linspace(-1, 1, len(ranker.calibration_qualities)))
    assert ranker.calibrated and ranker.card_facts()["calibration"]["scores"][-1] == 1.0


def test_rankers_are_registered_but_not_restorers(tmp_path, photo):
    assert MODELS.names(role="ranker") == ["cqr-ranker-color", "cqr-ranker-gray"]
    assert "cqr-ranker-color" not in MODELS.names()
    spec = MODELS.get("cqr-ranker-gray")
    assert spec.build(**TINY_CQR_RANKER)(torch.rand(2, 1, 32, 32)).shape == (2,)
    with pytest.raises(InputError, match="not a restoration model"):
        load_restorer("cqr-ranker-color", "cpu")
    image = read_image(save_jpeg(tmp_path / "a.jpg", photo[:32, :32], quality=30))
    with pytest.raises(InputError, match="not a restoration model"):
        choose_model(image, RestoreOptions(model="cqr-ranker-color"))


def test_method_name_picks_the_cpu_model_for_the_channels(tmp_path, photo, grey_photo):
    colour = read_image(save_jpeg(tmp_path / "a.jpg", photo[:32, :32], quality=30))
    grey = read_image(save_jpeg(tmp_path / "g.jpg", grey_photo[:32, :32], quality=30))
    assert choose_model(colour, RestoreOptions(model="cqr")) == ("cqr-color-s", None, "--model, blind model (tables not used)")
    assert choose_model(grey, RestoreOptions(model="cqr"))[0] == "cqr-gray-s"


def test_costs_of_the_two_configurations():
    # MACs of convs and linear layers per pixel (window attention adds under 1%).
    small = MODELS.get("cqr-color-s").build().eval()
    paper = MODELS.get("cqr-color-paper").build().eval()
    image = torch.rand(1, 3, 32, 48)
    assert 0.15e6 < count_macs(small, image) < 0.3e6 and 3.5e6 < count_macs(paper, image) < 5e6
    assert 1.2e6 < sum(p.numel() for p in small.parameters()) < 1.8e6
    ranker = MODELS.get("cqr-ranker-color").build().eval()
    assert count_macs(ranker, torch.rand(1, 3, 96, 96)) < 0.05e6

