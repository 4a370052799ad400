import math

import numpy as np
import pytest

from jpegfix.metrics import blocking_effect_factor, psnr, psnr_b, rgb_to_y, ssim


def smooth_image(rng, height, width, channels=None):
    """A smooth random image with texture, uint8, (H, W) or (H, W, channels)."""
    y, x = np.mgrid[0:height, 0:width]
    base = 120 + 50 * np.sin(x / 7.0) * np.cos(y / 5.0)
    if channels:
        base = base[..., None]
    shape = (height, width) if channels is None else (height, width, channels)
    return np.clip(base + rng.normal(0, 20, shape), 0, 255).astype(np.uint8)


def diagonal_ramp(height, width):
    """Equal steps between all neighbours, across block boundaries or not: no blocking."""
    y, x = np.mgrid[0:height, 0:width]
    return (3 * x + 3 * y).astype(np.uint8)


def block_checkerboard(height, width, low=0, high=10):
    """Blocks of 8x8 alternating between two values: all blocking, no texture inside blocks."""
    y, x = np.mgrid[0:height, 0:width]
    return np.where(((y // 8) + (x // 8)) % 2 == 0, low, high).astype(np.uint8)


def reference_bef(image, block=8):
    """Brute force over the pair sets of Yim & Bovik, with the paper's count formula."""
    height, width = image.shape
    img = image.astype(np.float64)
    boundary = inner = 0.0
    for yy in range(height):
        for xx in range(width - 1):
            d = (img[yy, xx] - img[yy, xx + 1]) ** 2
            if (xx + 1) % block == 0:
                boundary += d
            else:
                inner += d
    for yy in range(height - 1):
        for xx in range(width):
            d = (img[yy, xx] - img[yy + 1, xx]) ** 2
            if (yy + 1) % block == 0:
                boundary += d
            else:
                inner += d
    n_b = height * (width / block - 1) + width * (height / block - 1)
    n_c = height * (width - 1) + width * (height - 1) - n_b
    d_b, d_c = boundary / n_b, inner / n_c
    eta = math.log2(block) / math.log2(min(height, width))
    return eta * (d_b - d_c) if d_b > d_c else 0.0


def test_psnr_of_identical_images_is_inf():
    image = np.random.default_rng(1).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    assert psnr(image, image) == math.inf
    ramp = diagonal_ramp(16, 24)
    assert psnr_b(ramp, ramp) == math.inf


def test_psnr_of_a_constant_offset_is_exact():
    image = np.random.default_rng(2).integers(10, 240, (32, 40, 3), dtype=np.uint8)
    shifted = image + np.uint8(5)
    assert psnr(image, shifted) == pytest.approx(10 * math.log10(255**2 / 25), abs=1e-12)
    one_channel = image.copy()
    one_channel[..., 1] += 6  # RGB PSNR pools the squared error of all channels: MSE = 36 / 3
    assert psnr(image, one_channel) == pytest.approx(10 * math.log10(255**2 / 12), abs=1e-12)


def test_rgb_to_y_is_matlab_bt601_luma():
    pixels = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128]]], np.uint8)
    # 16 + 65.481 = 81.481; 16 + 128.553 = 144.553; 16 + 24.966 = 40.966; 16 + 219 * 128 / 255 = 125.93
    assert rgb_to_y(pixels).tolist() == [[16, 235, 81, 145, 41, 126]]
    with pytest.raises(ValueError):
        rgb_to_y(pixels[..., :1])


def test_ssim_of_identical_images_is_one():
    image = smooth_image(np.random.default_rng(3), 24, 30, 3)
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("channels", [None, 3])
def test_ssim_matches_scikit_image_configured_as_wang_2004(channels):
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(4)
    clean = smooth_image(rng, 41, 57, channels)
    noisy = np.clip(clean + rng.normal(0, 15, clean.shape), 0, 255).astype(np.uint8)
    expected = metrics.structural_similarity(
        clean, noisy, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255,
        channel_axis=None if channels is None else 2)
    assert ssim(clean, noisy) == pytest.approx(expected, abs=1e-9)


def test_ssim_refuses_images_smaller_than_its_window():
    with pytest.raises(ValueError):
        ssim(np.zeros((10, 40), np.uint8), np.zeros((10, 40), np.uint8))


def test_psnr_b_equals_psnr_without_blocking():
    rng = np.random.default_rng(5)
    reference = rng.integers(0, 256, (32, 48), dtype=np.uint8)
    ramp = diagonal_ramp(32, 48)
    assert blocking_effect_factor(ramp) == 0.0
    assert psnr_b(reference, ramp) == pytest.approx(psnr(reference, ramp), abs=1e-12)
    flat = np.full((32, 48, 3), 100, np.uint8)
    assert psnr_b(reference[..., None].repeat(3, 2), flat) == pytest.approx(psnr(reference[..., None].repeat(3, 2), flat))


def test_blocking_factor_of_pure_blocks():
    blocks = block_checkerboard(64, 64)
    # every boundary pair differs by 10, no pair inside a block does; eta = 3 / log2(64) = 0.5
    assert blocking_effect_factor(blocks) == pytest.approx(0.5 * 100)
    assert psnr_b(blocks, blocks) == pytest.approx(10 * math.log10(255**2 / 50))


def test_blocking_factor_when_sides_are_not_multiples_of_8():
    blocks = block_checkerboard(13, 21)
    # boundary pairs: columns 7|8 and 15|16 on 13 rows, row 7|8 on 21 columns, each 10^2;
    # counts by the paper's formula: 13 (21/8 - 1) + 21 (13/8 - 1) = 21.125 + 13.125
    expected = math.log2(8) / math.log2(13) * (13 * 2 * 100 + 21 * 100) / 34.25
    assert blocking_effect_factor(blocks) == pytest.approx(expected, rel=1e-12)
    rng = np.random.default_rng(6)
    for height, width in [(13, 21), (17, 9), (33, 27), (24, 40)]:
        image = np.clip(block_checkerboard(height, width, 90, 130) + rng.normal(0, 4, (height, width)), 0, 255)
        assert blocking_effect_factor(image) == pytest.approx(reference_bef(image), rel=1e-10)


def test_blocking_factor_of_tiny_images_is_zero():
    assert blocking_effect_factor(np.arange(6, dtype=np.float64).reshape(2, 3)) == 0.0
    assert blocking_effect_factor(np.zeros((1, 20))) == 0.0


def test_colour_psnr_b_adds_the_blocking_of_the_luma():
    grey = block_checkerboard(32, 32, 100, 140)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    reference = np.full_like(rgb, 120)
    mse = np.mean((reference.astype(float) - rgb) ** 2)
    luma_bef = blocking_effect_factor(grey) * (219 / 255) ** 2  # R = G = B: luma = 16 + v * 219/255
    assert psnr_b(reference, rgb) == pytest.approx(10 * math.log10(255**2 / (mse + luma_bef)), rel=1e-12)
    with pytest.raises(ValueError):
        psnr_b(reference[..., :2], rgb[..., :2])
