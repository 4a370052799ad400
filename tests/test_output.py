import numpy as np
import pytest
from PIL import Image

from jpegfix.jpeg import read_image
from jpegfix.output import upright, write_image

from conftest import save_jpeg


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_matches_pillow_exif_transpose(orientation):
    from PIL import ImageOps

    pixels = np.arange(6 * 4 * 3, dtype=np.uint8).reshape(6, 4, 3)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(image))
    np.testing.assert_array_equal(upright(pixels, orientation), expected)


@pytest.mark.parametrize("bits", [8, 16])
def test_png_keeps_icc_exif_and_orientation(tmp_path, photo, bits):
    exif = Image.Exif()
    exif[0x0112] = 8
    exif[0x010F] = "jpegfix-camera"
    icc = b"\x00" * 128 + b"profile"
    source = read_image(save_jpeg(tmp_path / "a.jpg", photo[:40, :64], quality=90, exif=exif, icc_profile=icc))
    restored = source.pixels.astype(np.float32) / 255
    write_image(tmp_path / "a.png", restored, source, bits)
    with Image.open(tmp_path / "a.png") as out:
        assert out.size == (40, 64)  # rotated upright
        assert out.info.get("icc_profile") == icc
        written = out.getexif()
        assert written[0x010F] == "jpegfix-camera" and written.get(0x0112, 1) == 1
        out.load()
    assert not list(tmp_path.glob("*.part"))


def test_sixteen_bit_png_values(tmp_path, photo):
    source = read_image(save_jpeg(tmp_path / "a.jpg", photo[:16, :24], quality=90))
    restored = np.linspace(0, 1, 16 * 24 * 3, dtype=np.float32).reshape(16, 24, 3)
    write_image(tmp_path / "a.png", restored, source, 16)
    import zlib, struct
    data = (tmp_path / "a.png").read_bytes()
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert (width, height, depth, colour) == (24, 16, 16, 2)
    idat = data.index(b"IDAT")
    length = struct.unpack(">I", data[idat - 4 : idat])[0]
    raw = np.frombuffer(zlib.decompress(data[idat + 4 : idat + 4 + length]), np.uint8).reshape(16, -1)
    assert (raw[:, 0] == 1).all()  # Sub filter: undo it by summing along each row, pixel by pixel
    rows = raw[:, 1:].reshape(16, 24, 6).cumsum(axis=1, dtype=np.uint8)
    values = rows.reshape(16, -1).view(">u2").reshape(16, 24, 3)
    np.testing.assert_array_equal(values, np.round(restored * 65535).astype(np.uint16))
