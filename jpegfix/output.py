"""Writing restored images: PNG, 8 or 16 bits, upright, with ICC profile, EXIF and alpha kept.

Files go through :func:`jpegfix.writer.write_exclusive`: a crash or a full disk never leaves
a half-written PNG under the final name, and an existing output is replaced only on request.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from jpegfix.jpeg import DecodedImage, open_regular_file
from jpegfix.writer import write_exclusive

# EXIF orientation -> how to turn a stored (H, W, ...) array upright.
_UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, k=-1),
    7: lambda a: np.rot90(a, k=2).swapaxes(0, 1),
    8: lambda a: np.rot90(a, k=1),
}


def upright(array: np.ndarray, orientation: int) -> np.ndarray:
    """(H, W, ...) array in stored orientation -> as it should be displayed."""
    turn = _UPRIGHT.get(orientation)
    return np.ascontiguousarray(turn(array)) if turn else array


def quantize(restored: np.ndarray, bits: int) -> np.ndarray:
    """Float image in [0, 1] -> uint8 or uint16, rounded."""
    top = 255 if bits == 8 else 65535
    dtype = np.uint8 if bits == 8 else np.uint16
    return np.clip(np.round(restored * top), 0, top).astype(dtype)


def write_png(path: Path, restored: np.ndarray, source: DecodedImage, bits: int = 8, *, overwrite: bool = False) -> None:
    """Write (H, W, C) float ``restored`` in [0, 1] as an upright PNG with the source's metadata.

    Raises:
        TargetExistsError: ``path`` exists and ``overwrite`` is False.
        OSError: the PNG could not be written (nothing is left behind).
    """
    pixels = quantize(restored, bits)
    if source.alpha is not None:
        alpha = source.alpha.astype(np.uint16) * 257 if bits == 16 else source.alpha
        pixels = np.concatenate([pixels, alpha[..., None].astype(pixels.dtype)], axis=2)
    pixels = upright(pixels, source.orientation)
    path.parent.mkdir(parents=True, exist_ok=True)

    def encode(temporary: Path) -> None:
        if bits == 8:
            _write_png8(temporary, pixels, source)
        else:
            temporary.write_bytes(encode_png16(pixels, source.icc_profile, source.exif))

    write_exclusive(path, encode, overwrite=overwrite)


def is_complete_png(path: Path) -> bool:
    """Whether ``path`` is a PNG whose every chunk is present with a valid checksum (what
    --skip-existing trusts; a 0-byte or cut-off file from an older crash is not complete)."""
    try:  # opened like an input: a named pipe in the output folder must not block the run
        with open_regular_file(path) as file, Image.open(file) as image:
            if image.format != "PNG":
                return False
            image.verify()
        return True
    except Exception:  # any reading or decoding problem means "not a complete output"
        return False


def _write_png8(path: Path, pixels: np.ndarray, source: DecodedImage) -> None:
    modes = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
    image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels, modes[pixels.shape[2]])
    options = {}
    if source.icc_profile:
        options["icc_profile"] = source.icc_profile
    if source.exif:
        options["exif"] = source.exif
    image.save(path, format="PNG", **options)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png16(pixels: np.ndarray, icc_profile: bytes | None = None, exif: bytes | None = None) -> bytes:
    """A 16-bit PNG of (H, W, C) uint16 pixels (C = 1..4). Pillow cannot write 16-bit colour PNGs."""
    height, width, channels = pixels.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    rows = pixels.astype(">u2").reshape(height, width * channels).view(np.uint8)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1)  # filter type 0 per row
    body = [_chunk(b"IHDR", header)]
    if icc_profile:
        body.append(_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc_profile)))
    if exif:
        body.append(_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    body.append(_chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)))
    body.append(_chunk(b"IEND", b""))
    return b"\x89PNG\r\n\x1a\n" + b"".join(body)
