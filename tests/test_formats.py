"""Every output format round-trips the source's metadata, read back with Pillow and tifffile;
16-bit inputs stay 16-bit; a TIFF's layout tags never reach another file's EXIF."""

import io
import os
import struct

import numpy as np
import pytest
import tifffile
from PIL import Image

from jpegfix.batch import RestoreOptions, plan_jobs, restore_files
from jpegfix.jpeg import read_image, unit_float
from jpegfix.output import is_complete_output, write_image

from conftest import tiny_restorer

XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>Ann Example</dc:creator>'
       b"</rdf:Description></rdf:RDF></x:xmpmeta>")
IPTC = b"\x1c\x02\x50\x00\x0bAnn Example"  # record 2, dataset 80 (By-line)
ICC = b"\x00" * 128 + b"jpegfix test profile"
MTIME = 1_600_000_000.0
GPS_LATITUDE = (52.0, 31.0, 12.5)


def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: the output must be upright with orientation 1
    exif[0x010F] = "jpegfix-camera"
    exif.get_ifd(0x8769)[0x9003] = "2024:05:06 07:08:09"  # DateTimeOriginal
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", GPS_LATITUDE
    return exif


def _with_app13(jpeg: bytes, iptc: bytes) -> bytes:
    """A JPEG with a Photoshop APP13 segment holding ``iptc``, as cameras' software writes it."""
    payload = b"Photoshop 3.0\x00" + b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(iptc)) + iptc + b"\x00" * (len(iptc) % 2)
    return jpeg[:2] + b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


@pytest.fixture
def tagged_jpeg(tmp_path, photo):
    buffer = io.BytesIO()
    Image.fromarray(photo[:40, :64]).save(buffer, "JPEG", quality=30, exif=_exif().tobytes(), icc_profile=ICC,
                                          xmp=XMP, dpi=(300, 300))
    path = tmp_path / "tagged.jpg"
    path.write_bytes(_with_app13(buffer.getvalue(), IPTC))
    os.utime(path, (MTIME, MTIME))
    return path


CASES = [("png", 8, "PNG"), ("png", 16, "PNG"), ("tif", 8, "TIFF"), ("tif", 16, "TIFF"), ("webp", 8, "WEBP"),
         ("jpg", 8, "JPEG")]
HOLDS_IPTC = {"PNG", "TIFF", "JPEG"}  # PNG: the "Raw profile type iptc" text chunk
HOLDS_DPI = {"PNG", "TIFF", "JPEG"}


@pytest.mark.parametrize("extension,bits,kind", CASES)
def test_every_format_round_trips_the_metadata(tmp_path, tagged_jpeg, extension, bits, kind):
    source = read_image(tagged_jpeg)
    assert (source.xmp, source.iptc, source.dpi, source.mtime) == (XMP, IPTC, (300.0, 300.0), MTIME)
    target = tmp_path / f"out.{extension}"
    write_image(target, unit_float(source.pixels), source, bits)
    assert os.stat(target).st_mtime == MTIME
    assert is_complete_output(target)
    with Image.open(target) as out:
        assert out.format == kind and out.size == (40, 64)  # turned upright
        exif = out.getexif()
        assert exif[0x010F] == "jpegfix-camera" and exif.get(0x0112, 1) == 1
        assert exif.get_ifd(0x8769)[0x9003] == "2024:05:06 07:08:09"
        assert exif.get_ifd(0x8825)[1] == "N" and tuple(map(float, exif.get_ifd(0x8825)[2])) == GPS_LATITUDE
        assert out.info.get("icc_profile") == ICC
        if kind in HOLDS_DPI:
            assert tuple(round(float(d)) for d in out.info["dpi"]) == (300, 300)
    back = read_image(target)  # jpegfix's own reader finds it all again
    assert b"<dc:creator>Ann Example</dc:creator>" in back.xmp
    assert back.iptc == (IPTC if kind in HOLDS_IPTC else None)
    assert back.bits == bits
    if kind == "TIFF":
        with tifffile.TiffFile(target) as tiff:
            page = tiff.pages[0]
            assert page.bitspersample == bits and page.shape == (64, 40, 3)
            assert page.tags["ExifTag"].value["DateTimeOriginal"] == "2024:05:06 07:08:09"


def test_jpeg_output_is_444_at_the_chosen_quality(tmp_path, tagged_jpeg):
    from jpegfix.qmaps import estimate_quality

    source = read_image(tagged_jpeg)
    write_image(tmp_path / "q.jpg", unit_float(source.pixels), source, jpeg_quality=90)
    back = read_image(tmp_path / "q.jpg")
    assert back.subsampling == "4:4:4"
    assert estimate_quality(back.components[0].table)[0] == 90


def test_a_cut_off_output_is_not_complete(tmp_path, tagged_jpeg):
    source = read_image(tagged_jpeg)
    for extension in ("png", "tif", "webp", "jpg"):
        whole = tmp_path / f"whole.{extension}"
        write_image(whole, unit_float(source.pixels), source)
        cut = tmp_path / f"cut.{extension}"
        cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
        assert is_complete_output(whole) and not is_complete_output(cut), extension


def test_a_tiffs_layout_tags_never_reach_another_files_exif(tmp_path, photo):
    exif = Image.Exif()
    exif[0x010F] = "scanner"
    Image.fromarray(photo[:24, :32]).save(tmp_path / "scan.tif", exif=exif.tobytes(), tiffinfo={700: XMP})
    source = read_image(tmp_path / "scan.tif")
    write_image(tmp_path / "scan.png", unit_float(source.pixels), source)
    with Image.open(tmp_path / "scan.png") as out:
        tags = set(out.getexif())
    assert tags.isdisjoint({256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 700})
    assert read_image(tmp_path / "scan.png").xmp == XMP


def _restore_auto(tmp_path, monkeypatch, source):
    import jpegfix.engine as engine

    monkeypatch.setattr(engine, "load_restorer", lambda name, device, **runtime: tiny_restorer(name))
    jobs, problems = plan_jobs([str(source)], tmp_path / "out")
    assert problems == []
    # A model is named: a synthetic never-compressed picture is otherwise passed through as decoded.
    [result] = restore_files(jobs, RestoreOptions(model="cqr"))
    assert result.status == "ok", result.error
    return jobs[0].target


def test_a_16_bit_tiff_stays_16_bit_end_to_end(tmp_path, photo, monkeypatch):
    deep = (photo[:48, :64].astype(np.uint16) * 257) ^ np.uint16(0x55)  # low bytes that 8 bits would lose
    tifffile.imwrite(tmp_path / "scan.tif", deep, photometric="rgb", compression="zlib")
    source = read_image(tmp_path / "scan.tif")
    assert source.bits == 16 and np.array_equal(source.deep, deep)
    target = _restore_auto(tmp_path, monkeypatch, tmp_path / "scan.tif")
    assert target.name == "scan.tif"
    restored = tifffile.imread(target)
    assert restored.dtype == np.uint16 and restored.shape == deep.shape
    assert len(np.unique(restored % 257)) > 1  # not 8-bit values scaled up


def test_a_16_bit_grey_png_stays_16_bit(tmp_path, grey_photo, monkeypatch):
    deep = grey_photo[:48, :64].astype(np.uint16) * 257 + 3
    Image.fromarray(deep).save(tmp_path / "grey.png")  # Pillow writes I;16 as a 16-bit grey PNG
    source = read_image(tmp_path / "grey.png")
    assert source.bits == 16 and np.array_equal(source.deep[..., 0], deep)
    target = _restore_auto(tmp_path, monkeypatch, tmp_path / "grey.png")
    assert target.name == "grey.png"
    with Image.open(target) as out:
        assert out.mode in ("I;16", "I") and np.asarray(out).max() > 255


def test_a_16_bit_colour_png_is_read_at_16_bits_with_the_codecs_extra(tmp_path, photo):
    pytest.importorskip("imagecodecs")
    from jpegfix.output import encode_png16

    deep = photo[:16, :24].astype(np.uint16) * 257 + 1
    (tmp_path / "deep.png").write_bytes(encode_png16(deep))
    source = read_image(tmp_path / "deep.png")
    assert source.bits == 16 and np.array_equal(source.deep, deep)
    assert np.array_equal(source.pixels, np.round(deep / 257).astype(np.uint8))


def test_a_jpeg_named_png_is_read_as_a_jpeg_with_its_tables(tmp_path, photo):
    Image.fromarray(photo[:32, :32]).save(tmp_path / "mislabelled.png", format="JPEG", quality=20)
    image = read_image(tmp_path / "mislabelled.png")
    assert image.format == "JPEG" and image.components is not None
    jobs, problems = plan_jobs([str(tmp_path)], tmp_path / "out")
    assert problems == [] and jobs[0].target.name == "mislabelled.png"  # a JPEG: auto writes a PNG


def test_iptc_that_photoshop_declares_long_is_read_as_its_bytes(tmp_path):
    records = IPTC + b"\x00" * (-len(IPTC) % 4)
    longs = np.frombuffer(records, "<u4").tolist()
    tifffile.imwrite(tmp_path / "ps.tif", np.zeros((8, 8, 3), np.uint8), photometric="rgb",
                     extratags=[(33723, "I", len(longs), longs, True)])
    assert read_image(tmp_path / "ps.tif").iptc == records


def test_png_iptc_profile_is_the_hex_layout_other_tools_read():
    from jpegfix.markers import iptc_from_raw_profile, iptc_raw_profile

    records = IPTC * 5  # 80 bytes: three hex lines
    text = iptc_raw_profile(records)
    assert text.startswith("\niptc\n      80\n") and max(map(len, text.split("\n"))) == 72
    assert iptc_from_raw_profile(text) == records
    assert iptc_from_raw_profile("\niptc\n  12\nnot hex\n") is None
