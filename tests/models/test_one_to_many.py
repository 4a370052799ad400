import pytest
import torch

from jpegfix.models import MODELS
from jpegfix.models.one_to_many import Discriminator, ProposalNet, shift_and_average

from conftest import TINY_ONE_TO_MANY


def test_shift_and_average_evens_out_the_deconvolution_grid():
    # A stride-2 deconvolution of a constant gives a 2-pixel pattern (paper §3.2.2).
    deconv = torch.nn.ConvTranspose2d(1, 1, 4, stride=2, padding=1, bias=False)
    torch.nn.init.uniform_(deconv.weight, 0.5, 1.5)
    out = deconv(torch.ones(1, 1, 8, 8)).detach()[..., 2:-2, 2:-2]
    assert float(out.std()) > 0.01
    assert float(shift_and_average(deconv(torch.ones(1, 1, 8, 8)).detach())[..., 2:-2, 2:-2].std()) < 1e-6


def test_untrained_network_returns_the_input_and_noise_matters_once_trained():
    net = ProposalNet(channels=3, maps=2, **TINY_ONE_TO_MANY).eval()
    x, maps = torch.rand(1, 3, 32, 48), torch.rand(1, 2, 32, 48)
    z0, z1 = (net.sample_noise(1, 32, 48, torch.Generator().manual_seed(s)) for s in (0, 1))
    assert z0.shape == (1, 2, 16, 24)
    assert torch.equal(net(x, maps, z0), x)
    torch.nn.init.normal_(net.upsample.weight, std=0.1)
    with torch.no_grad():
        a, b = net(x, maps, z0), net(x, maps, z1)
    assert a.shape == x.shape and float((a - b).abs().mean()) > 1e-4
    with torch.no_grad():
        assert torch.equal(a, net(x, maps, net.sample_noise(1, 32, 48, torch.Generator().manual_seed(0))))


@pytest.mark.parametrize("side", [16, 64, 96])
def test_discriminator_gives_one_logit_per_image_at_any_patch_size(side):
    disc = Discriminator(channels=1, widths=(4, 4, 8, 8))
    convs = [m for m in disc.features if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in disc.features if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == 12 and len(norms) == 11  # every conv but the last has BN + LeakyReLU
    assert disc(torch.rand(3, 1, side, side)).shape == (3,)


def test_registered_variants_sample_and_need_tables():
    for name in ("one-to-many-color-s", "one-to-many-gray-s", "one-to-many-color-paper"):
        spec = MODELS.get(name)
        assert spec.samples and spec.needs_tables and spec.method == "one-to-many"
    small = MODELS.get("one-to-many-color-s").build()
    assert 0.3e6 < sum(p.numel() for p in small.parameters()) < 0.4e6
