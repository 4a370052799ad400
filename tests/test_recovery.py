import numpy as np
import pytest
from PIL import Image

from jpegfix.data import jpeg_roundtrip
from jpegfix.jpeg import ComponentTable
from jpegfix.qmaps import IJG_CHROMA, ijg_components, ijg_table
from jpegfix.recovery import (
    at_origin, downsampled_chroma, find_earlier_compression, grid_padding, recover_tables, ycbcr_planes,
)


@pytest.fixture(scope="module")
def crop(photo):
    return np.ascontiguousarray(photo[96:288, 64:320])  # 192 x 256, face and background


@pytest.mark.parametrize("quality", [20, 50, 85])
def test_luma_table_of_a_png_copy_is_exact(crop, quality):
    recovery = recover_tables(jpeg_roundtrip(crop, quality))
    assert recovery.found and recovery.offset == (0, 0) and recovery.subsampling == "4:2:0"
    assert recovery.quality == quality and recovery.table_error == 0
    np.testing.assert_array_equal(recovery.components[0].table, ijg_table(quality))
    assert [(c.block_height, c.block_width) for c in recovery.components] == [(8, 8), (16, 16), (16, 16)]


def test_chroma_tables_and_444(photo):
    recovery = recover_tables(jpeg_roundtrip(photo, 60, "4:4:4"))
    assert recovery.found and recovery.subsampling == "4:4:4"
    np.testing.assert_array_equal(recovery.components[1].table, ijg_table(60, IJG_CHROMA))
    assert recovery.components[1].block_height == 8


def test_grid_offset_of_a_crop_off_the_grid(photo):
    decoded = jpeg_roundtrip(photo, 40)
    recovery = recover_tables(decoded[3:, 5:])
    # Cropping 5 columns and 3 rows puts the first whole block at x = 3, y = 5 ...
    assert recovery.found and recovery.offset == (3, 5) and recovery.quality == 40
    assert recovery.components[0].origin == (3, 5)
    # ... and the first whole 16-pixel chroma block at (16 - 5, 16 - 3).
    assert recovery.subsampling == "4:2:0" and recovery.components[1].origin == (11, 13)
    np.testing.assert_array_equal(recovery.components[1].table, ijg_table(40, IJG_CHROMA))


def test_grey_images(grey_photo):
    recovery = recover_tables(jpeg_roundtrip(grey_photo[:256, :256, None], 30))
    assert recovery.found and recovery.quality == 30 and len(recovery.components) == 1 and recovery.subsampling == ""


def test_clean_resized_and_tiny_images_are_not_found(crop):
    assert not recover_tables(crop).found
    decoded = jpeg_roundtrip(crop, 30)
    resized = np.asarray(Image.fromarray(decoded).resize((192, 144), Image.BICUBIC))
    assert not recover_tables(resized).found
    tiny = recover_tables(decoded[:16, :16])
    assert not tiny.found and "smaller" in tiny.reason


def test_flat_drawing_is_not_found():
    # Flat colour areas put every block's DC on multiples of 8 at any offset: not evidence.
    drawing = np.zeros((128, 128, 3), np.uint8)
    drawing[:, :64] = (200, 30, 30)
    drawing[40:90, 20:110] = (10, 120, 240)
    assert not recover_tables(drawing).found


def test_chroma_downsampling_undoes_the_decoder_upsampling():
    # libjpeg's fancy upsampling: each output sample is 3/4 of its own sample and 1/4 of
    # the nearer neighbour, in each direction (edges repeat).
    samples = np.random.default_rng(1).uniform(0, 255, (12, 10))
    def triangle(a, axis):
        a = np.moveaxis(a, axis, 0)
        before, after = np.concatenate([a[:1], a[:-1]]), np.concatenate([a[1:], a[-1:]])
        out = np.stack([(3 * a + before) / 4, (3 * a + after) / 4], axis=1).reshape(2 * len(a), *a.shape[1:])
        return np.moveaxis(out, 0, axis)
    upsampled = triangle(triangle(samples, 0), 1)
    np.testing.assert_allclose(downsampled_chroma(upsampled, 0, 0), samples, atol=1e-6)


@pytest.mark.parametrize("first, second", [(20, 90), (30, 95)])
def test_earlier_compression_under_a_jpeg(crop, first, second):
    twice = jpeg_roundtrip(jpeg_roundtrip(crop, first), second)
    earlier = find_earlier_compression(twice, ijg_components(second, 3))
    assert earlier.found and earlier.quality == first
    np.testing.assert_array_equal(earlier.components[0].table, ijg_table(first))
    assert (earlier.components[1].block_height, earlier.components[1].block_width) == (16, 16)


@pytest.mark.parametrize("quality", [50, 90])
def test_single_compression_has_no_earlier_one(crop, quality):
    assert not find_earlier_compression(jpeg_roundtrip(crop, quality), ijg_components(quality, 3)).found


def test_a_smooth_quality_100_jpeg_has_no_earlier_one(crop):
    """LIVE1's parrots at q100 once "showed" quality 1: its small coefficients sit within the
    tolerance of zero, which fits any step; restoring with quality-1 tables cost 15 dB."""
    from scipy.ndimage import gaussian_filter

    smooth = gaussian_filter(crop.astype(np.float64), sigma=(3, 3, 0)).round().astype(np.uint8)
    assert not find_earlier_compression(jpeg_roundtrip(smooth, 100), ijg_components(100, 3)).found
    twice = jpeg_roundtrip(jpeg_roundtrip(crop, 10), 100)
    assert find_earlier_compression(twice, ijg_components(100, 3)).quality == 10


def test_grid_padding_puts_recovered_grids_at_the_origin():
    luma = ComponentTable(ijg_table(50), 8, 8, (3, 5))
    chroma = ComponentTable(ijg_table(50, IJG_CHROMA), 16, 16, (11, 13))
    assert grid_padding([luma, chroma, chroma]) == (3, 5)  # rows, columns: 13 + 3 = 16, 11 + 5 = 16
    assert grid_padding([luma]) == (3, 5)
    assert grid_padding(ijg_components(50, 3)) == (0, 0)
    assert all(c.origin == (0, 0) for c in at_origin([luma, chroma]))


def test_large_images_are_analysed_on_a_central_crop_that_keeps_the_grid():
    from jpegfix.recovery import central_crop

    rows, cols = np.mgrid[0:3000, 0:2100]
    crop = central_crop(np.stack([rows, cols, rows], axis=2), side=1024)
    assert crop.shape == (1024, 1024, 3)
    assert crop[0, 0, 0] % 16 == 0 and crop[0, 0, 1] % 16 == 0  # the 16-pixel grid is kept
