import numpy as np
import pytest
import torch

from jpegfix.dct import (
    block_dct, block_idct, dct_matrix, interval_excess, jpeg_loss, project_in_bands, project_to_intervals, share_inside,
)
from jpegfix.jpeg import compress_with_coefficients


def as_tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels.transpose(2, 0, 1)[None].copy()).double() / 255


def test_dct_matrix_is_orthonormal_and_a_flat_block_has_only_dc():
    m = dct_matrix(torch.float64)
    assert torch.allclose(m @ m.T, torch.eye(8, dtype=torch.float64), atol=1e-12)
    coefficients = block_dct(torch.full((1, 8, 8), 138.0, dtype=torch.float64))[0, 0, 0]
    assert abs(float(coefficients[0, 0]) - 80.0) < 1e-9  # 8 x (138 - 128)
    assert float(coefficients.flatten()[1:].abs().max()) < 1e-9


@pytest.mark.parametrize("grey", [False, True])
@pytest.mark.parametrize("quality", [10, 50])
def test_a_decoded_jpeg_lies_inside_its_own_intervals(photo, grey_photo, grey, quality):
    pixels = grey_photo[:64, :96, None] if grey else photo[:64, :96]
    sample = compress_with_coefficients(np.ascontiguousarray(pixels), quality)
    luma, table = sample.quantized[0], sample.components[0].table
    assert share_inside(sample.decoded, luma, table) > 0.99
    # The original photo is what was quantized: it is inside by construction, up to the
    # encoder's colour conversion rounding.
    assert share_inside(np.ascontiguousarray(pixels), luma, table) > 0.97


def test_jpeg_loss_is_near_zero_for_the_decoding_and_grows_outside(photo):
    sample = compress_with_coefficients(np.ascontiguousarray(photo[:64, :64]), 20)
    quantized = [torch.from_numpy(q.astype(np.float32))[None] for q in sample.quantized]
    tables = [torch.from_numpy(c.table.astype(np.float32)) for c in sample.components]
    decoded = as_tensor(sample.decoded).float()
    inside = float(jpeg_loss(decoded, quantized, tables))
    brighter = float(jpeg_loss((decoded + 0.2).clamp(0, 1), quantized, tables))
    assert inside < 1e-3 < brighter


def test_interval_excess_counts_quantization_steps():
    table = torch.full((8, 8), 10.0)
    k = torch.zeros(1, 1, 1, 8, 8)
    d = torch.zeros(1, 1, 1, 8, 8)
    d[..., 0, 0], d[..., 0, 1] = 4.0, 20.0  # inside (0.4 step), 1.5 steps past the edge
    excess = interval_excess(d, k, table)
    assert float(excess[..., 0, 0]) == 0 and abs(float(excess[..., 0, 1]) - 1.5) < 1e-6


def test_block_idct_inverts_block_dct():
    plane = torch.rand(2, 16, 24, dtype=torch.float64) * 255
    assert torch.allclose(block_idct(block_dct(plane)) + 128, plane, atol=1e-9)


@pytest.mark.parametrize("subsampling", ["4:2:0", "4:2:2", "4:4:4"])
def test_projection_keeps_a_decoded_jpeg_and_pulls_a_blur_back_toward_it(photo, subsampling):
    from jpegfix.data import jpeg_roundtrip
    from jpegfix.metrics import psnr
    from jpegfix.qmaps import ijg_components

    pixels = np.ascontiguousarray(photo[:72, :100])  # partial blocks on both sides
    decoded = jpeg_roundtrip(pixels, 90, subsampling)
    components = ijg_components(90, 3, subsampling)
    as_float = lambda a: torch.from_numpy(a.transpose(2, 0, 1)[None].copy()).float() / 255
    to_uint8 = lambda t: (t[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    itself = to_uint8(project_to_intervals(as_float(decoded), as_float(decoded), components))
    assert np.abs(itself.astype(int) - decoded).max() <= 1
    blur = torch.nn.functional.avg_pool2d(as_float(decoded), 5, 1, 2, count_include_pad=False)
    projected = to_uint8(project_in_bands(blur, as_float(decoded), components, rows=32))
    assert psnr(pixels, projected) > psnr(pixels, to_uint8(blur)) + 3


def test_projection_in_bands_equals_the_whole_image(photo):
    from jpegfix.data import jpeg_roundtrip
    from jpegfix.qmaps import ijg_components

    decoded = jpeg_roundtrip(np.ascontiguousarray(photo[:80, :64]), 40)
    x = torch.from_numpy(decoded.transpose(2, 0, 1)[None].copy()).float() / 255
    noisy = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    components = ijg_components(40, 3)
    whole = project_to_intervals(noisy, x, components)
    assert torch.allclose(project_in_bands(noisy, x, components, rows=16), whole, atol=1e-5)
