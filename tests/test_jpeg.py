import numpy as np
import pytest
from PIL import Image

from jpegfix.errors import InputError, InvalidTablesError
from jpegfix.jpeg import component_tables, read_image
from jpegfix.qmaps import IJG_CHROMA, IJG_LUMA, ijg_table

from conftest import save_jpeg


@pytest.mark.parametrize("subsampling, name, chroma_block", [
    (0, "4:4:4", (8, 8)), (1, "4:2:2", (8, 16)), (2, "4:2:0", (16, 16)),
])
def test_colour_jpeg_tables_and_grid(tmp_path, photo, subsampling, name, chroma_block):
    path = save_jpeg(tmp_path / "a.jpg", photo[:100, :120], quality=30, subsampling=subsampling)
    image = read_image(path)
    assert image.pixels.shape == (100, 120, 3) and image.subsampling == name
    luma, cb, cr = image.components
    np.testing.assert_array_equal(luma.table, ijg_table(30, IJG_LUMA))
    np.testing.assert_array_equal(cb.table, ijg_table(30, IJG_CHROMA))
    assert (luma.block_height, luma.block_width) == (8, 8)
    assert (cr.block_height, cr.block_width) == chroma_block


def test_pixels_match_pillow_decoding(tmp_path, photo):
    path = save_jpeg(tmp_path / "a.jpg", photo, quality=10)
    np.testing.assert_array_equal(read_image(path).pixels, np.asarray(Image.open(path)))


def test_grey_and_progressive(tmp_path, grey_photo):
    path = save_jpeg(tmp_path / "g.jpg", grey_photo[:64, :80], quality=25, progressive=True)
    image = read_image(path)
    assert image.pixels.shape == (64, 80, 1) and image.progressive and image.coding == "progressive"
    assert len(image.components) == 1


def test_table_index_is_followed(tmp_path):
    tables = np.stack([np.full((8, 8), 3), np.full((8, 8), 7)])
    sampling = np.array([[1, 1], [1, 1], [1, 1]])
    # Cb points at table 1, Y and Cr at table 0: no assumption that chroma uses table 1.
    y, cb, cr = component_tables(tables, [0, 1, 0], sampling)
    assert y.table[0, 0] == 3 and cb.table[0, 0] == 7 and cr.table[0, 0] == 3


@pytest.mark.parametrize("tables, index, message", [
    (np.full((1, 8, 8), 300), [0], "entries up to 300"),  # 16-bit tables: beyond the maps' range
    (np.concatenate([np.zeros((1, 8, 8)), np.ones((1, 8, 8))]), [0], "zero entry"),
    (np.ones((1, 8, 8)), [2], "missing"),
])
def test_invalid_tables_are_refused(tables, index, message):
    with pytest.raises(InvalidTablesError, match=message):
        component_tables(tables, index, np.array([[1, 1]]))


def test_zero_table_entry_in_a_file_is_reported(tmp_path, photo):
    path = save_jpeg(tmp_path / "a.jpg", photo[:32, :32], quality=50)
    data = bytearray(path.read_bytes())
    dqt = data.index(b"\xff\xdb")
    data[dqt + 5] = 0  # first entry of the first table
    path.write_bytes(bytes(data))
    image = read_image(path)
    assert image.components is None and "zero entry" in image.tables_problem


def test_orientation_icc_and_exif_are_kept_for_output(tmp_path, photo):
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "jpegfix-camera"
    icc = b"\x00" * 128 + b"fake-profile"
    path = save_jpeg(tmp_path / "a.jpg", photo[:40, :64], quality=80, exif=exif, icc_profile=icc)
    image = read_image(path)
    assert image.orientation == 6 and image.pixels.shape[:2] == (40, 64)  # stored orientation
    assert image.icc_profile == icc
    kept = Image.Exif()
    kept.load(image.exif)
    assert kept[0x0112] == 1 and kept[0x010F] == "jpegfix-camera"


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"this is text, not an image", "not an image"),
])
def test_unreadable_files(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_image(path)


def test_truncated_jpeg(tmp_path, photo):
    path = save_jpeg(tmp_path / "a.jpg", photo, quality=50)
    path.write_bytes(path.read_bytes()[:4000])
    with pytest.raises(InputError, match="truncated"):
        read_image(path)


def test_cmyk_is_refused(tmp_path, photo):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(photo[:32, :32]).convert("CMYK").save(path, quality=80)
    with pytest.raises(InputError, match="CMYK"):
        read_image(path)


def test_arithmetic_coding_is_refused(tmp_path, photo):
    path = save_jpeg(tmp_path / "a.jpg", photo[:32, :32], quality=80)
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 1] = 0xC9  # SOF9: extended sequential, arithmetic coding
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="arithmetic"):
        read_image(path)


def test_pixel_limit(tmp_path, photo):
    path = save_jpeg(tmp_path / "a.jpg", photo, quality=80)
    with pytest.raises(InputError, match="limit"):
        read_image(path, max_pixels=512 * 511)


def test_png_has_no_tables_and_keeps_alpha(tmp_path, photo):
    rgba = np.dstack([photo[:20, :30], np.full((20, 30), 128, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    assert image.format == "PNG" and image.components is None and image.channels == 3
    assert (image.alpha == 128).all()
