"""Reading images: decoded pixels plus, for JPEG files, the real quantization tables.

Pixels are decoded by Pillow (libjpeg-turbo, ISLOW IDCT, fancy chroma upsampling); the
training pairs in :mod:`jpegfix.data` are decoded the same way, so the network sees at
restore time exactly the kind of input it was trained on. Quantization tables and
sampling factors come from the file's own markers (:mod:`jpegfix.markers`), read before
any pixel is decoded. Only regular files are read; the size the header declares is checked
before decoding; images deeper than 8 bits are scaled by their declared range.

16-bit PNGs and TIFFs are also read at their full depth (``DecodedImage.deep``; colour PNGs
and LZW TIFFs need the ``codecs`` extra, without it they are read at 8 bits with a note). The
metadata a photo carries comes along for the writer: EXIF (without the source container's
structural TIFF tags), ICC, XMP, IPTC, DPI and the file's modification time.

Pixels stay in the file's stored orientation, so the 8x8 block grid starts at the top-left
corner as the encoder saw it; :mod:`jpegfix.output` applies the EXIF orientation once,
to the restored result.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from jpegfix.errors import InputError, InvalidTablesError
from jpegfix.limits import check_memory
from jpegfix.markers import RAW_PROFILE_IPTC, JpegHeader, iptc_from_raw_profile, png_problem, read_header
from jpegfix.paths import special_kind

DEFAULT_MAX_PIXELS = 150_000_000
"""Refuse larger images unless the caller raises the limit (a 150 MP photo needs ~2 GB of pixels alone)."""

EXIF_ORIENTATION_TAG = 0x0112
CONTAINER_TAGS = frozenset({
    254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 284, 288, 289, 290, 291, 292, 293,
    317, 318, 319, 320, 321, 322, 323, 324, 325, 330, 338, 339, 340, 341, 347, 512, 513, 514, 515, 517, 518, 519,
    520, 521, 529, 530, 531, 532, 700, 33723, 34377, 34675, 37724, 50838, 50839,
})
"""TIFF tags that describe a file's own layout (size, samples, strips, tiles, compression, colour
map) or that carry XMP, IPTC, ICC and Photoshop data kept on their own: Pillow lists them among
a TIFF's EXIF, and written into another file's EXIF they would describe the wrong image."""
MAX_TABLE_ENTRY = 255
"""Largest quantization step the table-guided networks were trained on (baseline tables)."""



@dataclass(frozen=True)
class ComponentTable:
    """One colour component's quantization table and the pixel grid its blocks cover."""

    table: np.ndarray
    """(8, 8) integer table in natural (row-major frequency) order; entries 1..255."""
    block_height: int
    """Image rows covered by one 8x8 block of this component (8 for luma, 16 for 4:2:0 chroma)."""
    block_width: int
    """Image columns covered by one block (8 for luma, 16 for 4:2:0 and 4:2:2 chroma)."""
    origin: tuple[int, int] = (0, 0)
    """(x, y) in the image where one of this component's blocks starts: (0, 0) for a JPEG
    file; tables recovered from a cropped image's pixels sit elsewhere on its grid."""

    def __post_init__(self) -> None:
        # Every table reaches the networks' maps through here, so this is where the range is
        # enforced: the maps are table / 255, trained on baseline tables (1..255). Larger
        # entries (libjpeg's 16-bit tables below about quality 24) gave shifted colours and a
        # grid with exit 0; zero entries make no quantization interval at all.
        table = np.asarray(self.table)
        if table.shape != (8, 8):
            raise InvalidTablesError(f"quantization table has shape {table.shape}, not 8x8")
        if (table < 1).any():
            raise InvalidTablesError("quantization table has a zero entry")
        if (table > MAX_TABLE_ENTRY).any():
            raise InvalidTablesError(
                f"quantization table has entries up to {int(table.max())} (16-bit, written below about "
                f"quality 24); table-guided models know entries 1..{MAX_TABLE_ENTRY}")


@dataclass
class DecodedImage:
    """An image ready for restoration, with everything needed to write it back faithfully."""

    pixels: np.ndarray
    """(H, W, C) uint8, C = 1 (grey) or 3 (RGB), in the file's stored orientation."""
    format: str
    """Pillow's format name: ``JPEG``, ``PNG``, ``WEBP``, ..."""
    components: list[ComponentTable] | None = None
    """Quantization tables per component (Y, Cb, Cr or Y alone); None when the file has none."""
    tables_problem: str | None = None
    """Why a JPEG's tables were not usable, when they were not."""
    subsampling: str = ""
    """``4:2:0``, ``4:2:2``, ``4:4:4``, ... for colour JPEGs; empty otherwise."""
    progressive: bool = False
    coding: str = ""
    """``baseline``, ``extended`` or ``progressive`` for JPEGs."""
    orientation: int = 1
    """EXIF orientation (1..8) still to be applied to the result."""
    icc_profile: bytes | None = None
    exif: bytes | None = None
    """EXIF block with the orientation tag reset to 1 (the output is written upright)."""
    alpha: np.ndarray | None = None
    """(H, W) alpha channel of PNG/WebP/TIFF inputs, put back on the output (uint16 with ``deep``)."""
    deep: np.ndarray | None = None
    """(H, W, C) uint16 samples of a 16-bit file, read at full depth (``pixels`` is them
    rounded to 8 bits, for what looks at 8-bit pixels); None for 8-bit files."""
    xmp: bytes | None = None
    iptc: bytes | None = None
    """IPTC-NAA records (a JPEG's Photoshop resource 0x0404, a TIFF's tag 33723)."""
    dpi: tuple[float, float] | None = None
    mtime: float | None = None
    """The input file's modification time, given to the output."""
    extra: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """One-line remarks from decoding (only the first frame restored, a decoder warning)."""

    @property
    def bits(self) -> int:
        """Bits per sample of the file as read: 16 or 8."""
        return 16 if self.deep is not None else 8

    @property
    def source_pixels(self) -> np.ndarray:
        """The pixels at the file's own depth (uint16 for 16-bit files): what is restored."""
        return self.deep if self.deep is not None else self.pixels

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def channels(self) -> int:
        return self.pixels.shape[2]


def read_image(
    path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_memory: float | None = None
) -> DecodedImage:
    """Read ``path`` into a :class:`DecodedImage`.

    The size declared by the header is checked before any pixel is decoded: against
    ``max_pixels``, and (when given) the estimated peak memory of restoring the image against
    ``max_memory`` bytes (:func:`jpegfix.limits.check_memory`). Decoder and metadata warnings
    never reach the terminal; they become one-line ``notes``.

    Raises:
        InputError: not a regular file, empty, truncated, unreadable, unsupported or too
            large; the message names the reason in one line.
    """
    with open_regular_file(Path(path)) as file:
        decoded = _read_open_file(file, max_pixels, max_memory)
        decoded.mtime = os.fstat(file.fileno()).st_mtime
    return decoded


def unit_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 or uint16 pixels -> float32 in [0, 1], by their type's range."""
    return pixels.astype(np.float32) / np.iinfo(pixels.dtype).max


def read_bytes(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_memory: float | None = None) -> DecodedImage:
    """:func:`read_image` for an image file held in memory (an upload, stdin)."""
    return _read_open_file(io.BytesIO(data), max_pixels, max_memory)


def from_pillow(image: Image.Image) -> DecodedImage:
    """The :class:`DecodedImage` of a Pillow image already in memory (nothing is read again).

    A JPEG Pillow opened keeps its quantization tables and sampling factors
    (``quantization``, ``layer``): they are used when they fit the image, as a file's are.
    Its EXIF orientation is returned as read; the caller decides whether to apply it.

    Raises:
        InputError: pixels that cannot be brought to 8-bit grey or RGB.
    """
    notes: list[str] = []
    with _decoder_messages(notes):
        image.load()
        decoded = _decoded_pixels(image, notes)
    decoded.notes = notes
    tables, layers = getattr(image, "quantization", None), getattr(image, "layer", None)
    if image.format == "JPEG" and tables and layers:
        sampling = np.array([(v, h) for _, h, v, _ in layers], dtype=np.int64)
        try:
            components = component_tables(tables, [index for *_, index in layers], sampling)
        except InvalidTablesError as error:
            decoded.tables_problem = str(error)
        else:
            if len(components) == decoded.channels:
                decoded.components = components
                if decoded.channels == 3:
                    decoded.subsampling = subsampling_name(sampling)
    return decoded


def _read_open_file(file: BinaryIO, max_pixels: int, max_memory: float | None) -> DecodedImage:
    # A JPEG is read whole: its markers are walked from the bytes. Other formats are decoded
    # straight from the file, so an oversized one is refused having read its header only.
    is_jpeg = file.read(2) == b"\xff\xd8"
    file.seek(0)
    source: BinaryIO = io.BytesIO(file.read()) if is_jpeg else file
    header = read_header(source.getvalue()) if is_jpeg else None
    if header is not None and header.problem:
        raise InputError(f"corrupt JPEG: {header.problem}")
    if header is not None and header.coding not in SUPPORTED_CODING:
        raise InputError(f"{header.coding or 'unrecognised'} JPEG coding is not supported")
    notes: list[str] = []
    with _decoder_messages(notes):
        image = _open_pillow(source)
        channels = 1 if image.mode in _GREY_MODES else 3
        check_pixels(image.width, image.height, max_pixels)
        if max_memory is not None:
            check_memory(image.width, image.height, channels, max_memory)
        if header is not None:
            components, problem = _header_components(header, channels)  # before decoding: a missing table is named
        if image.format == "PNG":  # Pillow leaves the rows of a cut-short PNG black, without an error
            png_trouble = png_problem(_whole(source))
            if png_trouble:
                raise InputError(f"corrupt PNG: {png_trouble}")
        _load(image)
        decoded = _decoded_pixels(image, notes)
        if _is_sixteen_bit(image, source):
            _read_deep(decoded, image.format, _whole(source), notes)
    decoded.notes = notes
    if header is not None:
        decoded.coding, decoded.progressive = header.coding, header.coding == "progressive"
        decoded.components, decoded.tables_problem = components, problem
        if components is not None and channels == 3:
            decoded.subsampling = subsampling_name(np.array([(c.vertical, c.horizontal) for c in header.components]))
    return decoded


def _peek(source: BinaryIO, offset: int, size: int) -> bytes:
    """``size`` bytes of ``source`` from ``offset`` without moving its position (the decoder's)."""
    if isinstance(source, io.BytesIO):
        return source.getvalue()[offset : offset + size]
    return os.pread(source.fileno(), size, offset)


def _whole(source: BinaryIO) -> bytes:
    """All bytes of ``source`` without moving its position (the decoder's)."""
    if isinstance(source, io.BytesIO):
        return source.getvalue()
    return os.pread(source.fileno(), os.fstat(source.fileno()).st_size, 0)


@contextlib.contextmanager
def open_regular_file(path: Path) -> Iterator[BinaryIO]:
    """``path`` opened for reading, refusing anything but a non-empty regular file without
    blocking on it (opening a named pipe normally waits for a writer forever).

    Raises:
        InputError: not a regular file, empty, or the file cannot be read.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as error:
        raise InputError(f"cannot read file: {error.strerror or error}") from None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise InputError(f"not a regular file ({special_kind(status.st_mode)})")
        if status.st_size == 0:
            raise InputError("empty file (0 bytes)")
        file = os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise
    with file:
        try:
            yield file
        except OSError as error:  # EIO and the like while reading; decoding errors are InputErrors
            raise InputError(f"cannot read file: {error.strerror or error}") from None


@contextlib.contextmanager
def _decoder_messages(notes: list[str]):
    """Collect what decoders would print: Python warnings (Pillow's EXIF and decompression-bomb
    warnings) and libjpeg's messages, which it writes straight to file descriptor 2 ("Corrupt
    JPEG data: 2 extraneous bytes before marker 0xdb"). Each becomes a one-line note.

    Pillow's own pixel limit is lifted inside: :func:`check_pixels` applies ``--max-megapixels``
    instead, so a limit above Pillow's 179 MP works.
    """
    saved_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    printed = [""]
    try:
        with warnings.catch_warnings(record=True) as caught, _captured_stderr(printed):
            warnings.simplefilter("always")
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved_limit
    for warning in caught:  # reached only when decoding succeeded; a failure is its own line
        if not issubclass(warning.category, Image.DecompressionBombWarning):
            _add_note(notes, f"metadata: {warning.message}")
    for line in printed[0].splitlines():
        _add_note(notes, f"decoder: {line}")


def _add_note(notes: list[str], text: str) -> None:
    line = " ".join(text.split())[:200]
    if line and line not in notes:
        notes.append(line)


@contextlib.contextmanager
def _captured_stderr(captured: list[str]):
    """Redirect file descriptor 2 into a temporary file; ``captured[0]`` holds what was
    written there once the block ends."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable descriptor 2: nothing to capture
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured[0] = sink.read(4096).decode("utf-8", "replace")


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    """Raises InputError for images over ``max_pixels`` (checked from the header)."""
    pixels = width * height
    if pixels > max_pixels:
        raise InputError(
            f"image has {pixels / 1e6:.1f} MP, over the {max_pixels / 1e6:g} MP limit "
            "(raise it with --max-megapixels)"
        )


def _open_pillow(source: BinaryIO) -> Image.Image:
    try:
        image = Image.open(source)
    except UnidentifiedImageError:
        raise InputError("not an image (unknown file format)") from None
    except Exception as error:  # Pillow raises many types for corrupt headers
        raise InputError(f"unreadable image header: {_one_line(error)}") from None
    if image.mode == "CMYK":
        raise InputError("CMYK images are not supported (convert to RGB first)")
    if image.width < 1 or image.height < 1:
        raise InputError(f"image declares an empty size ({image.width}x{image.height})")
    return image


def _load(image: Image.Image) -> None:
    try:
        image.load()
    except OSError as error:
        raise InputError(f"truncated or corrupt image data: {_one_line(error)}") from None
    except Exception as error:  # decoders raise ValueError, SyntaxError, struct.error, ...
        raise InputError(f"cannot decode image: {_one_line(error)}") from None


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


SUPPORTED_CODING = {"baseline", "extended", "progressive"}
"""Huffman codings libjpeg decodes everywhere; lossless, hierarchical and arithmetic are refused."""
_GREY_MODES = {"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"}
_FRAMES = {"GIF": "animated GIF has {n} frames", "MPO": "MPO file holds {n} pictures",
           "TIFF": "TIFF has {n} pages", "WEBP": "animated WebP has {n} frames", "PNG": "animated PNG has {n} frames"}


def _decoded_pixels(image: Image.Image, notes: list[str]) -> DecodedImage:
    info, file_format = image.info, image.format or ""
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        what = _FRAMES.get(file_format, "file has {n} frames").format(n=frames)
        _add_note(notes, f"{what}; only the first is restored")
    orientation, exif_bytes = _exif(image, notes)
    alpha = None
    mode = image.mode
    try:
        if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in info):
            rgba = image.convert("LA" if mode in ("LA", "La") else "RGBA")
            alpha = np.asarray(rgba)[..., -1].copy()
            image = rgba.convert("L" if rgba.mode == "LA" else "RGB")
            pixels = np.asarray(image, dtype=np.uint8)
        elif mode in ("I", "F") or mode.startswith("I;16"):
            pixels = _wide_to_8bit(image)
        elif mode in ("1", "L", "RGB"):
            pixels = np.asarray(image.convert("L") if mode == "1" else image, dtype=np.uint8)
        else:
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except InputError:
        raise
    except Exception as error:  # modes Pillow cannot convert to RGB (LAB, HSV, ...)
        raise InputError(f"cannot convert {mode} pixels to RGB: {_one_line(error)}") from None
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return DecodedImage(
        pixels=np.ascontiguousarray(pixels),
        format=file_format,
        orientation=orientation,
        icc_profile=info.get("icc_profile") or None,
        exif=exif_bytes,
        alpha=alpha,
        xmp=_upright_xmp(_xmp(info)) if orientation != 1 else _xmp(info),
        iptc=_iptc(image),
        dpi=_dpi(info),
    )


def _xmp(info: dict) -> bytes | None:
    """The XMP packet: Pillow's ``xmp`` (JPEG, WebP, TIFF) or a PNG's iTXt chunk."""
    xmp = info.get("xmp") or info.get("XML:com.adobe.xmp")
    return (xmp.encode("utf-8") if isinstance(xmp, str) else bytes(xmp)) if xmp else None


_XMP_ORIENTATION = re.compile(rb'(tiff:Orientation\s*=\s*["\']|<tiff:Orientation>)\s*\d+')


def _upright_xmp(xmp: bytes | None) -> bytes | None:
    """The XMP packet with ``tiff:Orientation`` (attribute or element) set to 1: the pixels
    are turned upright on reading, and a viewer that trusts XMP over EXIF would turn them again."""
    return _XMP_ORIENTATION.sub(rb"\g<1>1", xmp) if xmp else xmp


def _iptc(image: Image.Image) -> bytes | None:
    """IPTC-NAA records: a JPEG's Photoshop resource 0x0404, a TIFF's tag 33723 or a PNG's
    "Raw profile type iptc" text chunk (:func:`jpegfix.markers.iptc_from_raw_profile`)."""
    iptc = (image.info.get("photoshop") or {}).get(0x0404)
    if iptc is None and isinstance(image.info.get(RAW_PROFILE_IPTC), str):
        iptc = iptc_from_raw_profile(image.info[RAW_PROFILE_IPTC])
    tags = getattr(image, "tag_v2", None)
    if iptc is None and tags is not None and 33723 in tags:
        # Photoshop declares the tag LONG; its raw bytes are the records (as Pillow's getiptcinfo reads them)
        iptc = tags.get(33723) if isinstance(tags.get(33723), bytes) else getattr(tags, "_tagdata", {}).get(33723)
    return bytes(iptc) if isinstance(iptc, (bytes, bytearray)) and iptc else None


def _dpi(info: dict) -> tuple[float, float] | None:
    try:
        x, y = (float(v) for v in info["dpi"])
    except (KeyError, TypeError, ValueError):
        return None
    return (round(x, 2), round(y, 2)) if x > 0 and y > 0 else None


def _is_sixteen_bit(image: Image.Image, source: BinaryIO) -> bool:
    """Whether a PNG or TIFF stores 16-bit unsigned samples."""
    if image.format == "PNG":
        return _peek(source, 24, 1) == b"\x10"  # IHDR's bit depth
    if image.format == "TIFF":
        bits, fmt = image.tag_v2.get(258, 1), image.tag_v2.get(339, 1)
        bits, fmt = (bits if isinstance(bits, tuple) else (bits,)), (fmt if isinstance(fmt, tuple) else (fmt,))
        return set(bits) == {16} and set(fmt) == {1}
    return False


def _read_deep(decoded: DecodedImage, file_format: str, data: bytes, notes: list[str]) -> None:
    """Put the 16-bit samples of a PNG or TIFF on ``decoded`` (and its 8-bit ``pixels`` from
    them); leaves it 8-bit, with a note, when this install cannot decode them."""
    from jpegfix import deep

    try:
        samples = deep.read_png16(data) if file_format == "PNG" else deep.read_tiff16(data)
    except deep.NotReadable as reason:
        _add_note(notes, f"16-bit {file_format} read at 8 bits: {reason}")
        return
    channels = decoded.channels + (decoded.alpha is not None)
    if samples.shape != (decoded.height, decoded.width, channels):
        _add_note(notes, f"16-bit {file_format} read at 8 bits: its samples are laid out as {samples.shape}")
        return
    colour = samples[..., : decoded.channels]
    decoded.deep = np.ascontiguousarray(colour)
    decoded.pixels = np.round(colour / 257).astype(np.uint8)
    if decoded.alpha is not None:
        decoded.alpha = np.ascontiguousarray(samples[..., -1])


def _exif(image: Image.Image, notes: list[str]) -> tuple[int, bytes | None]:
    """(orientation still to apply, EXIF block with orientation reset to 1, or None)."""
    try:
        exif = image.getexif()
        orientation = int(exif.get(EXIF_ORIENTATION_TAG, 1) or 1)
        if EXIF_ORIENTATION_TAG in exif:
            exif[EXIF_ORIENTATION_TAG] = 1
        for tag in CONTAINER_TAGS & set(exif):
            del exif[tag]
        exif_bytes = exif.tobytes() if len(exif) else None
    except Exception as error:  # corrupt EXIF must not cost the picture
        _add_note(notes, f"metadata: EXIF unreadable, not kept ({_one_line(error)})")
        return 1, None
    return (orientation if orientation in range(1, 9) else 1), exif_bytes


def _wide_to_8bit(image: Image.Image) -> np.ndarray:
    """Grey images of more than 8 bits -> uint8 by their declared range, never by their content:
    16-bit samples span 0..65535 even when every value is below 256, 32-bit integers their
    full range, floating point 0..1.

    Raises:
        InputError: floating-point values outside 0..1 or not finite, negative integers.
    """
    values = np.asarray(image)
    if image.mode == "F":
        if not np.isfinite(values).all():
            raise InputError("floating-point image holds NaN or infinite values")
        low, high = float(values.min()), float(values.max())
        if low < -1e-3 or high > 1 + 1e-3:
            raise InputError(f"floating-point image values span {low:g}..{high:g}; expected 0..1")
        return np.clip(np.round(values.astype(np.float64) * 255), 0, 255).astype(np.uint8)
    bits, signed = _integer_format(image)
    if signed and values.min() < 0:
        raise InputError(f"{bits}-bit image holds negative values (min {int(values.min())})")
    top = 2 ** (bits - 1 if signed else bits) - 1
    scaled = np.round(values.astype(np.float64) * (255 / top))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _integer_format(image: Image.Image) -> tuple[int, bool]:
    """(bits per sample, signed) of an ``I`` / ``I;16`` image, as its file declares them."""
    if image.mode.startswith("I;16"):
        return 16, False
    tags = getattr(image, "tag_v2", None)
    if tags is not None:  # TIFF: BitsPerSample (258) and SampleFormat (339: 1 unsigned, 2 signed)
        bits = tags.get(258, 32)
        fmt = tags.get(339, 1)
        bits = int(bits[0] if isinstance(bits, tuple) else bits)
        fmt = int(fmt[0] if isinstance(fmt, tuple) else fmt)
        return bits, fmt == 2
    if image.format == "PNG":  # older Pillow opens 16-bit grey PNGs as mode I
        return 16, False
    return 32, True


def _header_components(header: JpegHeader, channels: int) -> tuple[list[ComponentTable] | None, str | None]:
    """(component tables, None) or (None, why the header's tables cannot be used)."""
    sampling = np.array([(c.vertical, c.horizontal) for c in header.components], dtype=np.int64).reshape(-1, 2)
    for component in header.components:  # refused here, or libjpeg says "broken data stream"
        if component.table not in header.tables:
            raise InputError(f"JPEG component {component.ident} uses quantization table {component.table}, "
                             "which the file never defines")
    try:
        if not header.components or (sampling < 1).any():
            raise InvalidTablesError("JPEG frame header declares no usable components")
        components = component_tables(header.tables, [c.table for c in header.components], sampling)
    except InvalidTablesError as error:
        return None, str(error)
    if len(components) != channels:
        return None, f"{len(components)} JPEG components for a {channels}-channel image"
    return components, None


def component_tables(
    tables, table_index: list[int], sampling: np.ndarray
) -> list[ComponentTable]:
    """Map each component to its own table through its table index.

    ``tables`` is indexable by table index (a sequence, or a dict of the tables the file
    defines); ``sampling`` holds (vertical, horizontal) factors per component.

    Raises:
        InvalidTablesError: a component points at a missing table, a table entry is outside
            1..255, or the sampling factors do not divide the largest ones.
    """
    max_v, max_h = int(sampling[:, 0].max()), int(sampling[:, 1].max())
    defined = tables.keys() if isinstance(tables, dict) else range(len(tables))
    components = []
    for index, (v, h) in zip(table_index, sampling):
        if index not in defined:
            raise InvalidTablesError(f"component uses quantization table {index}, which is missing")
        if max_v % v or max_h % h:
            raise InvalidTablesError(f"unsupported sampling factors {sampling.tolist()}")
        table = np.asarray(tables[index]).reshape(8, 8).copy()
        components.append(ComponentTable(table, 8 * max_v // int(v), 8 * max_h // int(h)))
    return components


def subsampling_name(sampling: np.ndarray) -> str:
    """Name the chroma subsampling from (vertical, horizontal) factors of Y, Cb, Cr."""
    (yv, yh), (cv, ch) = sampling[0], sampling[1]
    ratio = (int(yh // ch), int(yv // cv))
    names = {(1, 1): "4:4:4", (2, 1): "4:2:2", (2, 2): "4:2:0", (1, 2): "4:4:0", (4, 1): "4:1:1"}
    return names.get(ratio, f"{int(yh)}x{int(yv)},{int(ch)}x{int(cv)}")


@dataclass
class CompressedSample:
    """A Pillow JPEG of known pixels, with what the file stores: for training and evaluation
    of methods that use the quantized coefficients themselves (One-to-Many's JPEG loss)."""

    decoded: np.ndarray
    """(H, W, C) uint8, Pillow's decoding of the file."""
    quantized: list[np.ndarray]
    """Per component (Y[, Cb, Cr]) the integer coefficients k, (H/8, W/8, 8, 8) for luma
    (natural order, [.., vertical, horizontal] frequency), on the chroma grid for chroma."""
    components: list[ComponentTable]
    """Per component its table and block footprint, as :func:`read_image` reports them."""


def compress_with_coefficients(pixels: np.ndarray, quality: int, subsampling: str = "4:2:0") -> CompressedSample:
    """Compress (H, W, C) uint8 ``pixels`` with Pillow, then read the file back with Pillow
    (pixels) and jpeglib (quantized coefficients and tables). H and W must be multiples of
    the MCU (8 for grey and 4:4:4, 16 for 4:2:0) so that every block is whole."""
    import tempfile

    import jpeglib

    image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(quality), subsampling=subsampling)
    with Image.open(io.BytesIO(buffer.getvalue())) as file:
        decoded = np.asarray(file, dtype=np.uint8)
    decoded = decoded[..., None] if decoded.ndim == 2 else decoded
    with tempfile.TemporaryDirectory() as folder:  # jpeglib reads files, not buffers
        path = Path(folder) / "sample.jpg"
        path.write_bytes(buffer.getvalue())
        dct = jpeglib.read_dct(str(path))
        planes = [dct.Y] + ([dct.Cb, dct.Cr] if pixels.shape[2] == 3 else [])
        quantized = [np.asarray(p, dtype=np.int16).copy() for p in planes]
        tables = np.asarray(dct.qt, dtype=np.int64)
        index = [int(i) for i in np.asarray(dct.quant_tbl_no).ravel()]
        sampling = np.asarray(dct.samp_factor, dtype=np.int64).reshape(-1, 2)
    return CompressedSample(decoded, quantized, component_tables(tables, index, sampling))
