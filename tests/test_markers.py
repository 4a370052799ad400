"""The marker walk against jpeglib (which reads tables through libjpeg) and on damaged files."""

import io
import tempfile

import jpeglib
import numpy as np
import pytest
from PIL import Image

from jpegfix.markers import minimum_coded_bytes, scan_jpeg


def jpeg(pixels, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", **options)
    return buffer.getvalue()


@pytest.mark.parametrize("subsampling", [0, 1, 2])
@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("quality", [5, 50, 95])
def test_tables_and_sampling_match_jpeglib(photo, subsampling, progressive, quality):
    data = jpeg(photo[:200, :232], quality=quality, subsampling=subsampling, progressive=progressive)
    header = scan_jpeg(data)
    with tempfile.NamedTemporaryFile(suffix=".jpg") as file:
        file.write(data)
        file.flush()
        dct = jpeglib.read_dct(file.name)
    tables, index = np.asarray(dct.qt), np.asarray(dct.quant_tbl_no).ravel()
    assert header.problem is None and header.stray_bytes == 0
    assert (header.width, header.height) == (232, 200)
    assert header.coding == ("progressive" if progressive else "baseline")
    np.testing.assert_array_equal(header.sampling, np.asarray(dct.samp_factor).reshape(-1, 2))
    for component, table_id in zip(header.components, index):
        np.testing.assert_array_equal(component.latched, tables[table_id])
        np.testing.assert_array_equal(header.tables[component.table], tables[table_id])


def test_sixteen_bit_tables_are_read_at_full_precision(grey_photo):
    data = bytearray(jpeg(grey_photo[:32, :32], quality=50))
    dqt = data.index(b"\xff\xdb")
    entries = bytes(data[dqt + 5 : dqt + 69])
    wide = b"".join((300 + v).to_bytes(2, "big") for v in entries)  # 16-bit table, entries 301..
    data[dqt : dqt + 69] = b"\xff\xdb" + (2 + 1 + 128).to_bytes(2, "big") + b"\x10" + wide
    header = scan_jpeg(bytes(data))
    assert header.problem is None and header.components[0].latched.min() > 300


def test_stray_bytes_between_segments_are_counted_not_fatal(photo):
    data = jpeg(photo[:32, :32], quality=80)
    dqt = data.index(b"\xff\xdb")
    header = scan_jpeg(data[:dqt] + b"\x00\x17" + data[dqt:])
    assert header.problem is None and header.stray_bytes == 2 and header.coding == "baseline"


def test_a_missing_table_is_named(photo):
    data = bytearray(jpeg(photo[:32, :32], quality=80))
    sof = data.index(b"\xff\xc0")
    data[sof + 10 + 2] = 3  # first component points at table 3, which no DQT defines
    assert "uses quantization table 3, which the file never defines" in scan_jpeg(bytes(data)).problem


def test_a_header_bomb_is_caught_from_the_byte_count(photo):
    data = bytearray(jpeg(photo[:48, :64], quality=30))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (12000).to_bytes(2, "big") * 2
    header = scan_jpeg(bytes(data))
    assert (header.width, header.height) == (12000, 12000)
    assert "decompression bomb" in header.problem and minimum_coded_bytes(header) > 100 * header.coded_bytes


def test_flat_files_pass_the_byte_count_with_margin():
    for pixels in (np.zeros((512, 512, 3), np.uint8), np.zeros((512, 512), np.uint8)):
        for progressive in (False, True):
            header = scan_jpeg(jpeg(pixels, quality=1, progressive=progressive))
            assert header.problem is None and header.coded_bytes >= 2 * minimum_coded_bytes(header)


def test_truncated_headers_and_garbage_never_raise(photo):
    data = jpeg(photo[:32, :32], quality=80)
    for cut in range(2, 700, 7):
        scan_jpeg(data[:cut])
    assert "truncated" in scan_jpeg(data[:100]).problem
    rng = np.random.default_rng(0)
    for _ in range(200):
        scan_jpeg(b"\xff\xd8" + rng.integers(0, 256, 300, dtype=np.uint8).tobytes())


def test_png_byte_count_against_the_deflate_bound():
    import struct
    import zlib

    from jpegfix.markers import png_problem

    def png(width, height, rows):
        def chunk(kind, body):
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        stream = zlib.compressobj(9)
        body = b"".join(stream.compress(bytes(1 + 3 * width)) for _ in range(rows)) + stream.flush()
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", body) + chunk(b"IEND", b""))

    assert png_problem(png(2000, 2000, 2000)) is None  # all-black: the best case for deflate still passes
    assert "decompression bomb" in png_problem(png(15000, 13000, 8))
    assert png_problem(b"\x89PNG\r\n\x1a\n") is None and png_problem(b"not a png") is None
