import numpy as np
import pytest

from jpegfix.jpeg import ComponentTable, read_image
from jpegfix.qmaps import (IJG_CHROMA, IJG_LUMA, MAP_SCALE, build_qmaps, component_map, estimate_quality,
                           ijg_components, ijg_table)

from conftest import save_jpeg


@pytest.mark.parametrize("quality", [1, 10, 37, 50, 75, 95, 100])
def test_ijg_tables_match_pillow(tmp_path, photo, quality):
    image = read_image(save_jpeg(tmp_path / "a.jpg", photo[:16, :16], quality=quality))
    np.testing.assert_array_equal(image.components[0].table, ijg_table(quality, IJG_LUMA))
    np.testing.assert_array_equal(image.components[1].table, ijg_table(quality, IJG_CHROMA))


def test_quality_estimate_is_exact_for_ijg_and_approximate_otherwise():
    assert estimate_quality(ijg_table(42)) == (42, 0.0)
    quality, error = estimate_quality(ijg_table(42) + 1)
    assert abs(quality - 42) <= 2 and error > 0


def test_chroma_map_follows_the_subsampled_grid():
    table = np.arange(64).reshape(8, 8) + 1
    chroma = component_map(ComponentTable(table, 16, 16), 32, 32) * MAP_SCALE
    # One chroma coefficient spans 2x2 pixels; the pattern repeats every 16 pixels.
    assert chroma[0, 0] == chroma[1, 1] == 1 and chroma[0, 2] == 2 and chroma[2, 0] == 9
    np.testing.assert_array_equal(chroma[:16, :16], chroma[16:, 16:])
    luma = component_map(ComponentTable(table, 8, 8), 20, 20) * MAP_SCALE
    assert luma[0, 1] == 2 and luma[8, 9] == 2 and luma.shape == (20, 20)


def test_build_qmaps_channels():
    assert build_qmaps(ijg_components(30, 3), 24, 40).shape == (2, 24, 40)
    assert build_qmaps(ijg_components(30, 1), 24, 40).shape == (1, 24, 40)


def test_quality_outside_range():
    with pytest.raises(ValueError):
        ijg_table(0)
