import pytest
import torch

from jpegfix.errors import UnknownModelError
from jpegfix.models import MODELS, ModelSpec, Registry
from jpegfix.models.qgcn import QGCN

from conftest import TINY_QGCN, tiny_args


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_builds_tiny_and_runs(name):
    spec = MODELS.get(name)
    net = spec.build(**tiny_args(spec)).eval()
    image = torch.rand(1, spec.channels, 32, 48)
    maps = torch.rand(1, 2 if spec.channels == 3 else 1, 32, 48)
    args = [image, maps] if spec.needs_tables else [image]
    if spec.samples:
        args.append(net.sample_noise(1, 32, 48))
    with torch.no_grad():
        out = net(*args)
    assert out.shape == image.shape and torch.isfinite(out).all()


def test_paper_size_matches_the_paper():
    net = MODELS.get("qgcn-color-paper").build()
    restoration = sum(p.numel() for n, p in net.named_parameters() if not n.startswith("global_branch"))
    global_branch = sum(p.numel() for p in net.global_branch.parameters())
    # NOTES.md: about 5.05 M (restoration) and 7.26 M (global branch, 128 channels last stage).
    assert abs(restoration / 1e6 - 5.05) < 0.1 and abs(global_branch / 1e6 - 7.26) < 0.1


def test_registry_refuses_duplicates_and_suggests_names():
    registry = Registry()
    spec = ModelSpec(name="qgcn-color-x", method="qgcn", arch=QGCN, arch_args={}, channels=3, needs_tables=True)
    registry.register(spec)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(spec)
    with pytest.raises(UnknownModelError, match="did you mean qgcn-color-x"):
        registry.get("qgcn-colour-x")


def test_hyperparameters_are_recorded_and_keyword_only():
    net = QGCN(**TINY_QGCN)
    assert net.hyperparameters["width"] == 8
    with pytest.raises(TypeError):
        QGCN(3)  # positional arguments are refused
    with pytest.raises(TypeError):
        QGCN(widht=8)  # a typo is an error, not silently ignored
