"""Hostile input files, generated on the fly: every one is small and made from known pixels."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def picture(height: int = 48, width: int = 64, level: int = 128, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 around ``level``: a gradient with noise and an edge, so JPEG leaves artifacts."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = level + 40 * np.sin(x / 5.0) + 20 * (y > height // 2) + rng.normal(0, 6, (height, width))
    return np.clip(np.repeat(base[..., None], 3, axis=2) + [0, 10, -10], 0, 255).astype(np.uint8)


def jpeg_bytes(pixels: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(pixels[..., 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels)
    image.save(buffer, format="JPEG", **({"quality": 30} | options))
    return buffer.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def with_sixteen_bit_tables(data: bytes, add: int = 300) -> bytes:
    """``data`` with every DQT rewritten at 16-bit precision, entries raised by ``add``: what
    libjpeg's ``cjpeg -quality 1`` writes (steps above 255). libjpeg decodes it fine."""
    out, position = bytearray(), 2
    out += data[:2]
    while True:
        marker, length = data[position + 1], int.from_bytes(data[position + 2 : position + 4], "big")
        segment = data[position : position + 2 + length]
        if marker == 0xDB:
            body, tables = segment[4:], b""
            for offset in range(0, len(body), 65):
                table_id = body[offset] & 0x0F
                entries = body[offset + 1 : offset + 65]
                tables += bytes([0x10 | table_id]) + b"".join((v + add).to_bytes(2, "big") for v in entries)
            segment = b"\xff\xdb" + (2 + len(tables)).to_bytes(2, "big") + tables
        out += segment
        position += 2 + length
        if marker == 0xDA:
            return bytes(out) + data[position:]


def with_zero_table_entry(data: bytes) -> bytes:
    out = bytearray(data)
    out[out.index(b"\xff\xdb") + 5] = 0  # marker (2) + length (2) + precision/id (1)
    return bytes(out)


def with_stray_bytes(data: bytes, stray: bytes = b"\x00\x17") -> bytes:
    """Two bytes between the APP0 and DQT segments: libjpeg warns "extraneous bytes" and decodes."""
    dqt = data.index(b"\xff\xdb")
    return data[:dqt] + stray + data[dqt:]


def without_tables(data: bytes) -> bytes:
    """The JPEG with its DQT segments removed: components refer to tables nobody defines."""
    out, position = bytearray(data[:2]), 2
    while True:
        marker, length = data[position + 1], int.from_bytes(data[position + 2 : position + 4], "big")
        if marker != 0xDB:
            out += data[position : position + 2 + length]
        position += 2 + length
        if marker == 0xDA:
            return bytes(out) + data[position:]


def jpeg_declaring(width: int, height: int) -> bytes:
    """A ~1 KB JPEG whose frame header declares ``width`` x ``height`` (a decompression bomb)."""
    data = bytearray(jpeg_bytes(picture(16, 16)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_declaring(width: int, height: int, rows: int | None = None) -> bytes:
    """An RGB PNG of ``width`` x ``height`` black pixels whose pixel stream holds ``rows`` rows
    (all of them by default: a valid file that compresses about 1000:1)."""
    stream = zlib.compressobj(9)
    row = bytes(1 + 3 * width)
    body = b"".join(stream.compress(row) for _ in range(height if rows is None else rows)) + stream.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def png_with_junk_data(width: int, height: int) -> bytes:
    """A PNG declaring ``width`` x ``height`` with as many IDAT bytes as a real one could have,
    but junk in them: it passes every header check and fails only when decoded."""
    junk = np.random.default_rng(0).integers(0, 256, height * (1 + 3 * width) // 1000, dtype=np.uint8).tobytes()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"\x78\x9c" + junk) + _chunk(b"IEND", b"")


def float_tiff(path: Path, values: np.ndarray) -> Path:
    Image.fromarray(values.astype(np.float32), mode="F").save(path)
    return path


def int32_tiff(path: Path, values: np.ndarray) -> Path:
    Image.fromarray(values.astype(np.int32), mode="I").save(path)
    return path


def grey16_png(path: Path, values: np.ndarray) -> Path:
    Image.fromarray(values.astype(np.uint16)).save(path)
    return path


def corrupt_exif_jpeg(pixels: np.ndarray) -> bytes:
    """A JPEG whose EXIF tag points past the end of the block: Pillow warns "Corrupt EXIF data"."""
    exif = b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x0f\x00\x02\x00\x00\x10\x00\x00\x00\x00\x1a"
    return jpeg_bytes(pixels, exif=exif)


def animated_gif(path: Path, frames: int = 3) -> Path:
    images = [Image.fromarray(picture(level=60 + 40 * i)) for i in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)
    return path


def multipage_tiff(path: Path, pages: int = 3) -> Path:
    images = [Image.fromarray(picture(level=60 + 40 * i)) for i in range(pages)]
    images[0].save(path, save_all=True, append_images=images[1:])
    return path


def mpo(path: Path) -> Path:
    images = [Image.fromarray(picture(level=level)) for level in (90, 150)]
    images[0].save(path, format="MPO", save_all=True, append_images=images[1:], quality=40)
    return path
