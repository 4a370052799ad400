"""Reading images: decoded pixels plus, for JPEG files, the real quantization tables.

Pixels are decoded by Pillow (libjpeg-turbo, ISLOW IDCT, fancy chroma upsampling); the
training pairs in :mod:`jpegfix.data` are decoded the same way, so the network sees at
restore time exactly the kind of input it was trained on. Quantization tables and
sampling factors come from jpeglib, which reads them from the file itself.

Pixels stay in the file's stored orientation, so the 8x8 block grid starts at the top-left
corner as the encoder saw it; :mod:`jpegfix.output` applies the EXIF orientation once,
to the restored result.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from jpegfix.errors import InputError, InvalidTablesError

DEFAULT_MAX_PIXELS = 150_000_000
"""Refuse larger images unless the caller raises the limit (a 150 MP photo needs ~2 GB of pixels alone)."""

EXIF_ORIENTATION_TAG = 0x0112

# Start-of-frame markers: which coding each one means. Huffman baseline/extended/progressive
# are what libjpeg decodes everywhere; the rest are refused with a clear message.
_SOF_CODING = {
    0xC0: "baseline", 0xC1: "extended", 0xC2: "progressive", 0xC3: "lossless",
    0xC5: "hierarchical", 0xC6: "hierarchical", 0xC7: "hierarchical",
    0xC9: "arithmetic", 0xCA: "arithmetic", 0xCB: "arithmetic",
    0xCD: "arithmetic", 0xCE: "arithmetic", 0xCF: "arithmetic",
}
_SUPPORTED_CODING = {"baseline", "extended", "progressive"}


@dataclass(frozen=True)
class ComponentTable:
    """One colour component's quantization table and the pixel grid its blocks cover."""

    table: np.ndarray
    """(8, 8) integer table in natural (row-major frequency) order; entries 1..65535."""
    block_height: int
    """Image rows covered by one 8x8 block of this component (8 for luma, 16 for 4:2:0 chroma)."""
    block_width: int
    """Image columns covered by one block (8 for luma, 16 for 4:2:0 and 4:2:2 chroma)."""
    origin: tuple[int, int] = (0, 0)
    """(x, y) in the image where one of this component's blocks starts: (0, 0) for a JPEG
    file; tables recovered from a cropped image's pixels sit elsewhere on its grid."""


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
    """(H, W) uint8 alpha channel of PNG/WebP inputs, put back on the output."""
    extra: dict = field(default_factory=dict)

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def channels(self) -> int:
        return self.pixels.shape[2]


def read_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Read ``path`` into a :class:`DecodedImage`.

    Raises:
        InputError: empty, truncated, unreadable or unsupported files, and images over
            ``max_pixels``; the message names the reason in one line.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read file: {error.strerror or error}") from None
    if not data:
        raise InputError("empty file (0 bytes)")
    is_jpeg = data[:2] == b"\xff\xd8"
    coding = _jpeg_coding(data) if is_jpeg else ""
    if is_jpeg and coding not in _SUPPORTED_CODING:
        raise InputError(f"{coding or 'unrecognised'} JPEG coding is not supported")
    image = _open_pillow(data, max_pixels)
    decoded = _decoded_pixels(image)
    decoded.coding = coding
    decoded.progressive = coding == "progressive"
    if is_jpeg:
        _attach_tables(decoded, path)
    return decoded


def _open_pillow(data: bytes, max_pixels: int) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise InputError("not an image (unknown file format)") from None
    except Exception as error:  # Pillow raises many types for corrupt headers
        raise InputError(f"unreadable image header: {error}") from None
    pixels = image.width * image.height
    if pixels > max_pixels:
        raise InputError(
            f"image has {pixels / 1e6:.1f} MP, over the {max_pixels / 1e6:.0f} MP limit "
            "(raise it with --max-megapixels)"
        )
    if image.mode == "CMYK":
        raise InputError("CMYK images are not supported (convert to RGB first)")
    try:
        image.load()
    except OSError as error:
        raise InputError(f"truncated or corrupt image data: {error}") from None
    except Exception as error:
        raise InputError(f"cannot decode image: {error}") from None
    return image


def _decoded_pixels(image: Image.Image) -> DecodedImage:
    info, file_format = image.info, image.format or ""
    exif = image.getexif()
    orientation = int(exif.get(EXIF_ORIENTATION_TAG, 1) or 1)
    if orientation not in range(1, 9):
        orientation = 1
    if EXIF_ORIENTATION_TAG in exif:
        exif[EXIF_ORIENTATION_TAG] = 1
    exif_bytes = exif.tobytes() if len(exif) else None
    alpha = None
    mode = image.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in info):
        rgba = image.convert("RGBA" if mode != "LA" else "LA")
        alpha = np.asarray(rgba)[..., -1].copy()
        image = rgba.convert("L" if mode == "LA" else "RGB")
    elif mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: artifacts live in the top 8 bits; restoration works on those.
        wide = np.asarray(image, dtype=np.int64)
        scale = 257.0 if wide.max() > 255 else 1.0
        image = Image.fromarray(np.clip(np.round(wide / scale), 0, 255).astype(np.uint8))
    elif mode not in ("L", "RGB"):
        image = image.convert("RGB")
    pixels = np.asarray(image, dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return DecodedImage(
        pixels=np.ascontiguousarray(pixels),
        format=file_format,
        orientation=orientation,
        icc_profile=info.get("icc_profile") or None,
        exif=exif_bytes,
        alpha=alpha,
    )


def _jpeg_coding(data: bytes) -> str:
    """The coding named by the first start-of-frame marker, or '' if none is found."""
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return ""
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _SOF_CODING:
            precision = data[position + 4] if position + 4 < len(data) else 8
            if precision != 8:
                return f"{precision}-bit"
            return _SOF_CODING[marker]
        if marker == 0xDA:  # start of scan before any frame header
            return ""
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        position += 2 + length
    return ""


def _attach_tables(decoded: DecodedImage, path: Path) -> None:
    """Read tables and sampling factors with jpeglib; record a problem instead of failing."""
    import jpeglib

    try:
        dct = jpeglib.read_dct(str(path))
        tables = np.asarray(dct.qt, dtype=np.int64)
        table_index = [int(i) for i in np.asarray(dct.quant_tbl_no).ravel()]
        sampling = np.asarray(dct.samp_factor, dtype=np.int64).reshape(-1, 2)
    except Exception as error:  # jpeglib surfaces libjpeg errors as generic exceptions
        decoded.tables_problem = f"jpeglib could not read the tables: {error}"
        return
    try:
        decoded.components = component_tables(tables, table_index, sampling)
    except InvalidTablesError as error:
        decoded.tables_problem = str(error)
        return
    if len(decoded.components) != decoded.channels:
        decoded.tables_problem = (
            f"{len(decoded.components)} JPEG components for a {decoded.channels}-channel image"
        )
        decoded.components = None
        return
    decoded.subsampling = subsampling_name(sampling) if len(sampling) == 3 else ""


def component_tables(
    tables: np.ndarray, table_index: list[int], sampling: np.ndarray
) -> list[ComponentTable]:
    """Map each component to its own table through its table index.

    ``sampling`` holds (vertical, horizontal) factors per component as jpeglib reports them.

    Raises:
        InvalidTablesError: a component points at a missing table, or a table has a zero entry.
    """
    max_v, max_h = int(sampling[:, 0].max()), int(sampling[:, 1].max())
    components = []
    for index, (v, h) in zip(table_index, sampling):
        if not 0 <= index < len(tables):
            raise InvalidTablesError(f"component uses quantization table {index}, which is missing")
        table = tables[index].reshape(8, 8)
        if (table <= 0).any():
            raise InvalidTablesError(f"quantization table {index} has a zero entry")
        if max_v % v or max_h % h:
            raise InvalidTablesError(f"unsupported sampling factors {sampling.tolist()}")
        components.append(ComponentTable(table.copy(), 8 * max_v // int(v), 8 * max_h // int(h)))
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
