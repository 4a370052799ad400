"""The architecture-race trunks with QGCN's conditioning: U-Net (B) and block DCT (C)."""

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from jpegfix.bench.speed import count_macs
from jpegfix.dct import block_dct, jpeg_planes, rgb_to_ycbcr, ycbcr_to_rgb
from jpegfix.engine import restore_pixels
from jpegfix.models import MODELS
from jpegfix.models.qgcn_dct import BlockDCT, BlockIDCT, QGCNDCT, steps_of
from jpegfix.models.qgcn_unet import QGCNUNet
from jpegfix.models.restorer import Restorer
from jpegfix.qmaps import build_qmaps, ijg_components, ijg_table, IJG_CHROMA, IJG_LUMA

from conftest import TINY_QGCN_DCT, TINY_QGCN_UNET

NAMES = ["qgcn-unet-color-s", "qgcn-unet-gray-s", "qgcn-dct-color-s", "qgcn-dct-gray-s"]
TINY = {"QGCNUNet": TINY_QGCN_UNET, "BlindQGCNUNet": TINY_QGCN_UNET, "QGCNDCT": TINY_QGCN_DCT}


def tiny(name: str, **overrides) -> torch.nn.Module:
    spec = MODELS.get(name)
    return spec.build(**{**TINY[spec.arch.__name__], **overrides})


def wake_outputs(net: torch.nn.Module) -> None:
    """Random output layers: untrained, these networks return their input unchanged."""
    for name, module in net.named_modules():
        if name in ("tail", "luma_out", "chroma_out", "refine.2"):
            torch.nn.init.normal_(module.weight, std=0.05)


def maps_for(quality: int, channels: int, height: int, width: int, subsampling: str = "4:2:0") -> torch.Tensor:
    return torch.from_numpy(build_qmaps(ijg_components(quality, channels, subsampling), height, width))[None]


def jpeg_batch(photo: np.ndarray, quality: int, count: int, size: int, grey: bool = False):
    """(degraded, clean, maps) tensors of ``count`` block-aligned crops of ``photo``."""
    pairs = []
    for i in range(count):
        crop = photo[i * size : (i + 1) * size, 64 : 64 + size]
        crop = crop[..., 0] if grey else crop
        buffer = io.BytesIO()
        Image.fromarray(crop).save(buffer, format="JPEG", quality=quality)
        degraded = np.asarray(Image.open(buffer))
        pairs.append((degraded, crop))
    as_tensor = lambda a: torch.from_numpy(np.stack(a)).float().div(255).reshape(count, size, size, -1).permute(0, 3, 1, 2)
    degraded, clean = (as_tensor([p[k] for p in pairs]) for k in (0, 1))
    maps = maps_for(quality, 1 if grey else 3, size, size).expand(count, -1, -1, -1)
    return degraded, clean, maps


@pytest.mark.parametrize("name", NAMES)
def test_shapes_identity_at_start_and_keyword_only(name):
    net = tiny(name).eval()
    channels = MODELS.get(name).channels
    image = torch.rand(2, channels, 48, 64)
    maps = maps_for(20, channels, 48, 64).expand(2, -1, -1, -1)
    with torch.no_grad():
        assert torch.allclose(net(image, maps), image, atol=1e-4)  # zero-initialised outputs
        wake_outputs(net)
        out = net(image, maps)
        vector = net.global_vector(image)
    assert out.shape == image.shape and torch.isfinite(out).all() and not torch.allclose(out, image, atol=1e-3)
    assert vector.shape == (2, 8)
    assert net.hyperparameters["channels"] == channels
    with pytest.raises(TypeError):
        type(net)(channels)


def test_unet_needs_consistent_levels():
    with pytest.raises(ValueError, match="one width"):
        QGCNUNet(widths=(4, 8), down_blocks=(0, 1), up_blocks=(0, 1))


def test_unet_uses_the_maps_and_the_global_vector_at_every_scale():
    net = tiny("qgcn-unet-color-s").eval()
    wake_outputs(net)
    for level in list(net.encoder) + list(net.decoder):
        torch.nn.init.normal_(level.modulation.affine.weight, std=0.5)
    image = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        base = net(image, maps_for(20, 3, 32, 32))
        other_maps = net(image, maps_for(80, 3, 32, 32))
        other_vector = net(image, maps_for(20, 3, 32, 32), torch.randn(1, 8))
    assert not torch.allclose(base, other_maps) and not torch.allclose(base, other_vector)


def test_a_deeper_unet_starts_as_exactly_the_shallower_one_it_grows_from():
    shallow = tiny("qgcn-unet-gray-s")
    wake_outputs(shallow)
    deeper = tiny("qgcn-unet-gray-s", down_blocks=(1, 1, 1, 2), up_blocks=(2, 1, 1))
    new = deeper.load_shallower(shallow.state_dict())
    assert new == ["decoder.0.blocks.0", "decoder.0.blocks.1", "encoder.0.blocks.0", "encoder.3.blocks.1"]
    image, maps = torch.rand(1, 1, 32, 32), maps_for(20, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(deeper(image, maps), shallow(image, maps))
    with pytest.raises(RuntimeError):
        tiny("qgcn-unet-gray-s", widths=(4, 8, 8, 32)).load_shallower(shallow.state_dict())
    with pytest.raises(RuntimeError, match="fewer blocks"):
        shallow.load_shallower(deeper.state_dict())


@pytest.mark.parametrize("colour", ["color", "gray"])
def test_blind_unet_takes_the_table_guided_weights_and_no_maps(colour):
    guided, blind = tiny(f"qgcn-unet-{colour}-s"), tiny(f"qgcn-unet-blind-{colour}-s")
    wake_outputs(guided)
    blind.load_state_dict(guided.state_dict())  # --init from the table-guided weights
    channels = MODELS.get(f"qgcn-unet-{colour}-s").channels
    image = torch.rand(1, channels, 32, 48)
    no_quantization = torch.zeros(1, 2 if channels == 3 else 1, 32, 48)
    with torch.no_grad():
        vector = blind.global_vector(image)
        assert torch.allclose(blind(image, vector), guided(image, no_quantization, vector))
    assert not MODELS.get(f"qgcn-unet-blind-{colour}-s").needs_tables


def test_blind_global_vector_reads_full_resolution_crops():
    net = tiny("qgcn-unet-blind-color-s").eval()
    size = net.global_branch.size
    image = torch.rand(2, 3, 300, 200)
    with torch.no_grad():
        vector = net.global_vector(image)
        corner = net.global_branch(image[..., :size, :size] * 2 - 1)
        small = net.global_vector(image[..., :40, :50])  # padded up to one crop
    assert vector.shape == (2, 8) and small.shape == (2, 8)
    # Nine crops, one of them the top-left corner at full resolution, averaged per image.
    tops, lefts = (sorted({round((side - size) * i / 2) // 8 * 8 for i in range(3)}) for side in (300, 200))
    crops = [net.global_branch(image[..., t : t + size, l : l + size] * 2 - 1) for t in tops for l in lefts]
    assert torch.allclose(vector, torch.stack(crops).mean(dim=0), atol=1e-5)
    assert any(torch.allclose(c, corner) for c in crops)


def test_block_dct_layers_match_jpegs_transform_and_invert():
    plane = torch.rand(2, 1, 16, 24) * 255
    coefficients = BlockDCT()(plane - 128)
    reference = block_dct(plane[:, 0])  # (N, H/8, W/8, v, u)
    assert torch.allclose(coefficients.permute(0, 2, 3, 1).reshape(reference.shape), reference, atol=1e-3)
    assert torch.allclose(BlockIDCT()(coefficients) + 128, plane, atol=1e-3)
    assert "weight" not in BlockDCT().state_dict()  # fixed basis: never trained, never saved


def test_ycbcr_round_trip():
    rgb = torch.rand(1, 3, 8, 8) * 255
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-3)


def test_steps_recover_the_tables_on_the_block_grid():
    maps = maps_for(30, 3, 32, 48)
    luma = steps_of(maps[:, :1])
    chroma = steps_of(F.avg_pool2d(maps[:, 1:2], 2))  # 4:2:0: each entry covers 2x2 pixels
    assert luma.shape == (1, 64, 4, 6) and chroma.shape == (1, 64, 2, 3)
    assert torch.equal(luma[0, :, 1, 2].reshape(8, 8), torch.from_numpy(ijg_table(30, IJG_LUMA)).float())
    assert torch.equal(chroma[0, :, 1, 2].reshape(8, 8), torch.from_numpy(ijg_table(30, IJG_CHROMA)).float())


@pytest.mark.parametrize("quality", [10, 95])
def test_dct_correction_is_in_units_of_the_quantization_step(quality):
    # A constant output of 0.5 in every coefficient moves each one by half its step: at
    # quality 95 (steps 1-5) the change is small, at quality 10 large.
    net = tiny("qgcn-dct-gray-s", refine_width=0).eval()
    torch.nn.init.constant_(net.luma_out.bias, 0.5)
    image = torch.full((1, 1, 32, 32), 0.5)
    with torch.no_grad():
        out = net(image, maps_for(quality, 1, 32, 32))
    change = block_dct((out - image)[:, 0] * 255 + 128)  # block_dct level-shifts by 128
    expected = torch.from_numpy(ijg_table(quality, IJG_LUMA)).float() / 2
    assert torch.allclose(change, expected.expand_as(change), atol=1e-3)


@pytest.mark.parametrize("name", NAMES + ["qgcn-unet-blind-color-s"])
def test_tiled_and_whole_agree_through_the_engine(name, photo):
    spec = MODELS.get(name)
    net = tiny(name).eval()
    wake_outputs(net)
    restorer = Restorer(spec=spec, net=net, device=torch.device("cpu"))
    pixels = photo[:150, :210] if spec.channels == 3 else photo[:150, :210, :1]
    components = ijg_components(20, spec.channels) if spec.needs_tables else None
    whole = restore_pixels(restorer, pixels, components, tile=4096)
    tiled = restore_pixels(restorer, pixels, components, tile=96, overlap=32, context=96)
    assert whole.shape == tiled.shape == pixels.shape
    assert np.abs(whole - tiled).max() <= 1 / 255
    assert np.abs(whole - pixels / 255).max() > 2 / 255  # the network did change the image


@pytest.mark.parametrize("name, size", [("qgcn-unet-color-s", dict(widths=(8, 16, 16, 32))),
                                        ("qgcn-dct-color-s", dict(width=32)), ("qgcn-dct-gray-s", dict(width=32))])
def test_a_few_training_steps_reduce_the_loss(name, size, photo):
    # Small rather than tiny widths: the tiniest trunks barely move in a few dozen steps.
    net = tiny(name, **size)
    degraded, clean, maps = jpeg_batch(photo, 10, 4, 64, grey=name.endswith("gray-s"))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(50):
        loss = F.l1_loss(net(degraded, maps), clean)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(F.l1_loss(degraded, clean).item(), rel=1e-3)  # starts at the JPEG
    assert np.mean(losses[-5:]) < 0.95 * losses[0]


@pytest.mark.parametrize("name", ["qgcn-color-s"] + NAMES)
def test_registered_sizes_stay_within_the_inference_budget(name):
    # Issue 11: at most 0.3 MMAC per pixel for the default; counted on a 256x256 input, the
    # global branch included.
    net = MODELS.get(name).build().eval()
    channels = MODELS.get(name).channels
    image, maps = torch.rand(1, channels, 256, 256), maps_for(30, channels, 256, 256)
    with torch.no_grad():
        macs, params = count_macs(net, lambda: net(image, maps))
    assert 0.02e6 < macs / 256**2 <= 0.3e6 and params > 0
