"""What Pillow cannot do: read 16-bit PNGs and TIFFs at their depth, and write TIFFs with EXIF.

Pillow holds colour only at 8 bits per sample, so a 16-bit colour PNG or TIFF would be cut to
8 bits on reading and a restored image could not be written as a 16-bit TIFF. tifffile (pure
Python, a dependency) reads and writes TIFF samples at any depth; imagecodecs (the ``codecs``
extra, 45 MB of native codecs) decodes 16-bit colour PNGs and LZW- or JPEG-compressed TIFFs.

tifffile writes no EXIF (it refuses the ExifIFD and GPSInfo pointer tags): the EXIF and GPS
sub-IFDs are serialised by Pillow after the image (Pillow's IFD writer knows every EXIF tag's
type), and two placeholder tags tifffile wrote, one code below each pointer's so that the
IFD's order holds, become the pointers to them.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import tifffile
from PIL import Image, TiffImagePlugin

EXIF_IFD, GPS_IFD, INTEROP_IFD = 0x8769, 0x8825, 0xA005
_IFD0_TEXT = {271: "Make", 272: "Model", 315: "Artist", 33432: "Copyright"}
"""EXIF text tags of the main IFD that a TIFF holds as its own tags (ImageDescription,
Software and DateTime go through tifffile's own arguments)."""
CODECS_HINT = "install the codecs extra: pip install 'jpegfix[codecs]'"


class NotReadable(Exception):
    """This install cannot read the file's samples at 16 bits (the message says why)."""


def read_png16(data: bytes) -> np.ndarray:
    """(H, W, C) uint16 samples of a 16-bit PNG (C = 1..4, alpha last).

    Raises:
        NotReadable: a colour or grey-with-alpha PNG without the ``codecs`` extra.
    """
    if data[25] == 0:  # plain grey: Pillow's I;16 holds it
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image).astype(np.uint16)[..., None]
    try:
        import imagecodecs
    except ImportError:
        raise NotReadable(f"16-bit colour PNGs need imagecodecs ({CODECS_HINT})") from None
    samples = np.asarray(imagecodecs.png_decode(data))
    return samples[..., None] if samples.ndim == 2 else samples


def read_tiff16(data: bytes) -> np.ndarray:
    """(H, W, C) uint16 samples of the first page of a 16-bit grey or RGB TIFF (alpha last).

    Raises:
        NotReadable: another photometric kind, or a compression tifffile needs imagecodecs for.
    """
    with tifffile.TiffFile(io.BytesIO(data)) as tiff:
        page = tiff.pages[0]
        if page.photometric not in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.RGB):
            raise NotReadable(f"{page.photometric.name} samples are read by Pillow")
        try:
            samples = page.asarray()
        except (ValueError, ImportError, NotImplementedError) as error:
            if "imagecodecs" in str(error):
                raise NotReadable(f"{page.compression.name} compression needs imagecodecs ({CODECS_HINT})") from None
            raise NotReadable(" ".join(str(error).split())[:200]) from None
        axes = page.axes
    if axes.startswith("S"):  # planar configuration: one plane per sample
        samples = np.moveaxis(samples, 0, -1)
    return samples[..., None] if samples.ndim == 2 else samples


def encode_tiff(
    pixels: np.ndarray, *, icc_profile: bytes | None = None, exif: bytes | None = None, xmp: bytes | None = None,
    iptc: bytes | None = None, dpi: tuple[float, float] | None = None,
) -> bytes:
    """A deflate-compressed TIFF (horizontal predictor) of (H, W, C) uint8 or uint16 pixels
    (C = 1..4, alpha last) with the metadata given."""
    tags = Image.Exif()
    if exif:
        tags.load(exif)
    sub_ifds = {pointer: dict(tags.get_ifd(pointer)) for pointer in (EXIF_IFD, GPS_IFD) if tags.get_ifd(pointer)}
    extratags = [(tag, "s", 0, str(tags[tag]), True) for tag in _IFD0_TEXT if isinstance(tags.get(tag), str)]
    extratags += [(pointer - 1, "I", 1, 0, True) for pointer in sub_ifds]  # placeholders, patched below
    if xmp:
        extratags.append((700, "B", len(xmp), xmp, True))
    if iptc:
        extratags.append((33723, "B", len(iptc), iptc, True))
    channels = pixels.shape[2]
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer, pixels if channels > 1 else pixels[..., 0], byteorder="<",
        photometric="rgb" if channels >= 3 else "minisblack", extrasamples=("unassalpha",) if channels in (2, 4) else None,
        compression="zlib", predictor=True, iccprofile=icc_profile, metadata=None,
        description=_text(tags.get(270)), software=_text(tags.get(305)) or False, datetime=_text(tags.get(306)),
        resolution=dpi, resolutionunit="INCH" if dpi else None, extratags=extratags,
    )
    data = bytearray(buffer.getvalue())
    if sub_ifds:
        with tifffile.TiffFile(io.BytesIO(bytes(data))) as tiff:
            placeholders = {pointer: tiff.pages[0].tags[pointer - 1].valueoffset for pointer in sub_ifds}
        for pointer, entries in sub_ifds.items():
            data += b"\0" * (len(data) % 2)  # IFDs start on a word boundary
            ifd = TiffImagePlugin.ImageFileDirectory_v2(ifh=b"II*\x00\x08\x00\x00\x00", group=pointer)
            for tag, value in entries.items():
                if tag != INTEROP_IFD:  # an offset into the source file, meaningless here
                    ifd[tag] = value
            struct.pack_into("<H", data, placeholders[pointer] - 8, pointer)  # the entry: code, type, count, value
            struct.pack_into("<I", data, placeholders[pointer], len(data))
            data += ifd.tobytes(len(data))
    return bytes(data)


def _text(value) -> str | None:
    """An EXIF text value as tifffile's 7-bit ASCII arguments take it, or None."""
    if not isinstance(value, str) or not value.strip("\0 "):
        return None
    return value.strip("\0").encode("ascii", "replace").decode()
