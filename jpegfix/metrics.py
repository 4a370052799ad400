"""Image quality metrics on uint8-rounded images (see NOTES.md, metric protocol).

All metrics take arrays of shape (H, W) or (H, W, C) holding integer pixel values (uint8 in
practice), compare them as float64 and crop no border. Colour scores run over all channels:
PSNR and PSNR-B pool the squared error of every channel (PSNR-B adds the blocking of the
luma), SSIM averages per-channel scores.
Only numpy is used, so the package does not depend on scipy or scikit-image.
"""

from __future__ import annotations

import math

import numpy as np

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
BLOCK = 8

PSNR_B_VARIANT = (
    "Yim & Bovik 2011 on the test image's 8x8 grid from the top-left corner; boundary pair "
    "counts by the paper's formula N_V (N_H / 8 - 1), fractional when a side is not a multiple "
    "of 8; colour: MSE over R, G, B plus the BEF of the test image's BT.601 luma"
)
"""The PSNR-B convention of :func:`psnr_b`, recorded in benchmark outputs."""

SSIM_VARIANT = "Wang et al. 2004: 11x11 Gaussian (sigma 1.5), K1 0.01, K2 0.03, valid region, mean over channels"


def psnr(reference: np.ndarray, test: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and channels; inf for identical images."""
    error = np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2)
    return float("inf") if error == 0 else float(10 * np.log10(data_range**2 / error))


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` luma of (H, W, 3) uint8 RGB, as (H, W) uint8.

    Y = 16 + 65.481 R + 128.553 G + 24.966 B for R, G, B in [0, 1] (ITU-R BT.601, studio
    range 16..235), rounded half up like MATLAB's conversion to uint8.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb_to_y needs an (H, W, 3) image, got shape {rgb.shape}")
    channels = rgb.astype(np.float64)
    luma = 16.0 + (65.481 * channels[..., 0] + 128.553 * channels[..., 1] + 24.966 * channels[..., 2]) / 255.0
    return np.floor(luma + 0.5).astype(np.uint8)


def ssim(reference: np.ndarray, test: np.ndarray, data_range: float = 255.0) -> float:
    """Structural similarity (Wang et al. 2004), mean over the valid region and the channels.

    The window is the normalised 11x11 Gaussian with sigma 1.5 (MATLAB ``fspecial``), applied
    without padding, so the map is (H - 10) x (W - 10); statistics use population variances.
    This equals scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255)``.

    Raises:
        ValueError: shapes differ or a side is shorter than 11 pixels.
    """
    reference, test = _channels_last(reference, test)
    if min(reference.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs sides of at least {SSIM_WINDOW} pixels, got {reference.shape[:2]}")
    window = _gaussian_window(SSIM_WINDOW, SSIM_SIGMA)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    scores = []
    for channel in range(reference.shape[2]):
        x = reference[..., channel]
        y = test[..., channel]
        mu_x = _filter_valid(x, window)
        mu_y = _filter_valid(y, window)
        var_x = _filter_valid(x * x, window) - mu_x**2
        var_y = _filter_valid(y * y, window) - mu_y**2
        cov = _filter_valid(x * y, window) - mu_x * mu_y
        index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
        scores.append(index.mean())
    return float(np.mean(scores))


def blocking_effect_factor(image: np.ndarray, block: int = BLOCK) -> float:
    """Yim & Bovik's blocking effect factor of one (H, W) channel, in squared pixel units.

    Neighbour pairs (x, x+1) whose second pixel starts a block (x+1 a multiple of ``block``)
    form the boundary set; all other pairs form the complement; rows and columns alike. The
    factor is eta * (D_B - D_Bc) when the mean squared difference across boundaries D_B
    exceeds the one inside blocks D_Bc, with eta = log2(block) / log2(min(H, W)), else 0.

    Sides that are not multiples of ``block`` (BSDS500 is 481x321): the sums run over every
    boundary pair inside the image (the partial last block has one in front of it), but the
    counts that divide them follow the paper's formula literally, N_HB = H (W / B - 1) and
    N_HBc = H (W - 1) - N_HB, fractional. With this choice our plain-JPEG PSNR-B on LIVE1
    grey reproduces the published 25.33 / 27.57 / 28.92 / 29.96 (QF 10-40) to the hundredth;
    whole-block counts (W // B - 1) give 25.33 / 27.56 / 28.92 / 29.95 and the exact pair
    counts 25.34 / 27.58 / 28.93 / 29.97. When all sides are multiples of B the three agree.
    """
    if image.ndim != 2:
        raise ValueError(f"blocking_effect_factor needs one (H, W) channel, got shape {image.shape}")
    height, width = image.shape
    if min(height, width) < 2:
        return 0.0
    pixels = image.astype(np.float64)
    across_columns = np.diff(pixels, axis=1) ** 2  # (H, W-1): pair (x, x+1) at index x
    across_rows = np.diff(pixels, axis=0) ** 2  # (H-1, W)
    column_edges = np.arange(block - 1, width - 1, block)
    row_edges = np.arange(block - 1, height - 1, block)
    boundary_sum = across_columns[:, column_edges].sum() + across_rows[row_edges, :].sum()
    inner_sum = across_columns.sum() + across_rows.sum() - boundary_sum
    boundary_count = height * max(width / block - 1, 0.0) + width * max(height / block - 1, 0.0)
    inner_count = height * (width - 1) + width * (height - 1) - boundary_count
    if boundary_count <= 0 or inner_count <= 0:
        return 0.0
    d_boundary = boundary_sum / boundary_count
    d_inner = inner_sum / inner_count
    if d_boundary <= d_inner:
        return 0.0
    eta = math.log2(block) / math.log2(min(height, width))
    return float(eta * (d_boundary - d_inner))


def psnr_b(reference: np.ndarray, test: np.ndarray, data_range: float = 255.0, block: int = BLOCK) -> float:
    """PSNR-B (Yim & Bovik 2011) in dB: 10 log10(range^2 / (MSE + BEF)).

    MSE is over all pixels and channels; BEF is :func:`blocking_effect_factor` of the *test*
    image: of its only channel, or for (H, W, 3) RGB of its BT.601 luma (unrounded). With
    that colour convention our plain-JPEG LIVE1 colour PSNR-B is 24.20 / 26.49 / 27.84 /
    28.83 at QF 10-40 against the published 24.20 / 26.49 / 27.84 / 28.84 (FBCNN, contrastive
    paper); averaging per-channel PSNR-B instead gives 23.76 at QF 10. Equals PSNR when the
    test image shows no blocking; inf when both terms are zero.

    Raises:
        ValueError: the shapes differ, or the image has neither 1 nor 3 channels.
    """
    reference, test = _channels_last(reference, test)
    if test.shape[2] == 1:
        factor = blocking_effect_factor(test[..., 0], block)
    elif test.shape[2] == 3:
        luma = 16.0 + (65.481 * test[..., 0] + 128.553 * test[..., 1] + 24.966 * test[..., 2]) / 255.0
        factor = blocking_effect_factor(luma, block)
    else:
        raise ValueError(f"PSNR-B needs 1 or 3 channels, got {test.shape[2]}")
    total = np.mean((reference - test) ** 2) + factor
    return float("inf") if total == 0 else float(10 * math.log10(data_range**2 / total))


def period2_rms(image: np.ndarray) -> float:
    """RMS amplitude, in grey levels, of the luma's 2-pixel-period patterns: the spectral
    energy on the Nyquist row and column (vertical or horizontal period 2, which includes the
    checkerboard) by Parseval. A stride-2 deconvolution's grid artifact lives there
    (One-to-Many §3.2.2); natural photos have little."""
    luma = rgb_to_y(image) if image.ndim == 3 and image.shape[2] == 3 else np.asarray(image, np.float64).reshape(image.shape[:2])
    h, w = luma.shape[0] // 2 * 2, luma.shape[1] // 2 * 2
    spectrum = np.abs(np.fft.fft2(luma[:h, :w] - luma[:h, :w].mean())) ** 2
    nyquist = spectrum[h // 2, :].sum() + spectrum[:, w // 2].sum() - spectrum[h // 2, w // 2]
    return float(math.sqrt(nyquist) / (h * w))


def _channels_last(reference: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both images as float64 (H, W, C)."""
    if reference.shape != test.shape:
        raise ValueError(f"image shapes differ: {reference.shape} vs {test.shape}")
    if reference.ndim == 2:
        reference, test = reference[..., None], test[..., None]
    return reference.astype(np.float64), test.astype(np.float64)


def _gaussian_window(size: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian taps; their outer product is MATLAB's ``fspecial('gaussian')``."""
    offsets = np.arange(size) - (size - 1) / 2
    taps = np.exp(-(offsets**2) / (2 * sigma**2))
    return taps / taps.sum()


def _filter_valid(image: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable correlation of (H, W) ``image`` with ``taps`` in both axes, valid region only."""
    size = len(taps)
    height, width = image.shape
    rows = sum(taps[i] * image[i : height - size + 1 + i, :] for i in range(size))
    return sum(taps[j] * rows[:, j : width - size + 1 + j] for j in range(size))
