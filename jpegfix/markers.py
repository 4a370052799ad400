"""Walking a JPEG's marker segments: frame header, quantization tables, coding.

libjpeg (behind Pillow) decodes the pixels; this walk reads what the decoder does not
report, straight from the bytes: the coding named by the frame header, the declared size
(so memory can be judged before anything is decoded), each component's sampling factors and
the quantization table it uses, at the precision the file stores (8 or 16 bits). It never
raises on malformed data: what it cannot make sense of is described in ``problem``.

Like libjpeg it steps over stray bytes between segments (and counts them), so a file
Pillow decodes is not refused here for a harmless defect.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ZIGZAG = np.array([
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
])
"""Natural (row-major) position of the k-th entry a DQT segment stores (zigzag order)."""

SOF_CODING = {
    0xC0: "baseline", 0xC1: "extended", 0xC2: "progressive", 0xC3: "lossless",
    0xC5: "hierarchical", 0xC6: "hierarchical", 0xC7: "hierarchical",
    0xC9: "arithmetic", 0xCA: "arithmetic", 0xCB: "arithmetic",
    0xCD: "arithmetic", 0xCE: "arithmetic", 0xCF: "arithmetic",
}
SUPPORTED_CODING = {"baseline", "extended", "progressive"}
"""Codings libjpeg decodes everywhere; the rest are refused with a clear message."""
_STANDALONE = {0x01, 0xD8} | set(range(0xD0, 0xD8))  # TEM, SOI, RSTn: no length field
_EOI, _SOS, _DQT = 0xD9, 0xDA, 0xDB


@dataclass
class FrameComponent:
    ident: int
    vertical: int
    horizontal: int
    table: int
    """Id (0..3) of the quantization table this component uses."""
    latched: np.ndarray | None = None
    """(8, 8) table in natural order as the component's first scan latched it; None if undefined."""


@dataclass
class JpegHeader:
    coding: str = ""
    """``baseline``, ``progressive``, ..., ``12-bit`` for other precisions, '' without a frame header."""
    width: int = 0
    height: int = 0
    components: list[FrameComponent] = field(default_factory=list)
    tables: dict[int, np.ndarray] = field(default_factory=dict)
    """(8, 8) natural-order tables by id, as defined before the first scan."""
    stray_bytes: int = 0
    coded_bytes: int = 0
    """Bytes of entropy-coded scan data in the file."""
    """Bytes found between segments where a marker should start (libjpeg skips them too)."""
    problem: str | None = None
    """Why the file cannot be a decodable JPEG, when the walk proved it."""

    @property
    def sampling(self) -> np.ndarray:
        """(vertical, horizontal) sampling factors per component, as jpeglib reports them."""
        return np.array([(c.vertical, c.horizontal) for c in self.components], dtype=np.int64).reshape(-1, 2)


def scan_jpeg(data: bytes) -> JpegHeader:
    """Walk the segments of ``data`` (which starts with SOI) up to the end of the first frame."""
    header = JpegHeader()
    tables: dict[int, np.ndarray] = {}
    position, scans = 2, 0
    while True:
        position = _next_marker(data, position, header)
        if position < 0:
            break
        marker = data[position + 1]
        if marker == _EOI:
            break
        if marker in _STANDALONE:
            position += 2
            continue
        if position + 4 > len(data):
            break
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        payload = data[position + 4 : position + 2 + length]
        if length < 2:
            header.problem = header.problem or f"invalid segment length {length} at byte {position}"
            break
        if len(payload) < length - 2:
            if not scans:  # after a scan, libjpeg may still decode what came before
                header.problem = header.problem or (
                    f"truncated: the file ends inside its header (segment 0x{marker:02X} at byte {position})")
            break
        if marker == _DQT:
            _read_dqt(payload, tables, header)
        elif marker in SOF_CODING and not header.coding:
            _read_sof(marker, payload, header)
        elif marker == _SOS:
            if not header.coding:
                header.problem = header.problem or "scan data before any frame header"
                break
            if not scans:
                header.tables = {k: v.copy() for k, v in tables.items()}
            _latch_tables(payload, tables, header)
            scans += 1
            end = _skip_entropy_data(data, position + 2 + length)
            header.coded_bytes += end - (position + 2 + length)
            position = end
            continue
        position += 2 + length
    if not scans:
        header.tables = tables
    if scans and header.problem is None:
        header.problem = _too_little_data(header)
    return header


def minimum_coded_bytes(header: JpegHeader) -> int:
    """Fewest entropy-coded bytes any complete Huffman-coded file of this frame can hold.

    Every block of every component carries at least one Huffman code (its DC difference, in
    sequential and progressive files alike), and no code is shorter than one bit.
    """
    if not header.components:
        return 0
    max_v = max(c.vertical for c in header.components)
    max_h = max(c.horizontal for c in header.components)
    blocks = sum(
        -(-header.height * c.vertical // (8 * max_v)) * -(-header.width * c.horizontal // (8 * max_h))
        for c in header.components
    )
    return blocks // 8


def _too_little_data(header: JpegHeader) -> str | None:
    """A file far too small for the size it declares is cut short or a decompression bomb:
    libjpeg would fill the missing blocks with grey and hand over a huge, empty picture."""
    needed = minimum_coded_bytes(header)
    if header.coded_bytes >= needed:
        return None
    return (f"declares {header.width}x{header.height} pixels but holds {header.coded_bytes:,} bytes of image "
            f"data, fewer than the {needed:,} any complete file of that size needs (truncated, or a "
            "decompression bomb)")


def read_header(data: bytes) -> JpegHeader:
    """:func:`scan_jpeg` under the name :mod:`jpegfix.jpeg` uses."""
    return scan_jpeg(data)


def _next_marker(data: bytes, position: int, header: JpegHeader) -> int:
    """Offset of the 0xFF that starts the next marker at or after ``position`` (-1 at the end).

    Bytes skipped on the way (including stuffed ``FF 00`` pairs, which cannot start a marker)
    are counted as stray, as libjpeg's "extraneous bytes before marker" warning counts them.
    """
    while True:
        start = data.find(b"\xff", position)
        if start < 0:
            header.stray_bytes += max(0, len(data) - position)
            return -1
        header.stray_bytes += start - position
        while start + 1 < len(data) and data[start + 1] == 0xFF:  # fill bytes before a marker
            start += 1
        if start + 1 >= len(data):
            return -1
        if data[start + 1] != 0x00:
            return start
        header.stray_bytes += 2
        position = start + 2


def _skip_entropy_data(data: bytes, position: int) -> int:
    """Offset just past a scan's entropy-coded data: the next 0xFF that starts a real marker."""
    while True:
        found = data.find(b"\xff", position)
        if found < 0 or found + 1 >= len(data):
            return len(data)
        following = data[found + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            position = found + 1 if following == 0xFF else found + 2
            continue
        return found


def _read_dqt(payload: bytes, tables: dict[int, np.ndarray], header: JpegHeader) -> None:
    offset = 0
    while offset < len(payload):
        precision, table_id = payload[offset] >> 4, payload[offset] & 0x0F
        size = 128 if precision else 64
        body = payload[offset + 1 : offset + 1 + size]
        if precision > 1 or table_id > 3 or len(body) < size:
            header.problem = header.problem or "malformed quantization table segment"
            return
        zigzag = np.frombuffer(body, dtype=">u2" if precision else np.uint8).astype(np.int64)
        natural = np.empty(64, dtype=np.int64)
        natural[ZIGZAG] = zigzag
        tables[table_id] = natural.reshape(8, 8)
        offset += 1 + size


def _read_sof(marker: int, payload: bytes, header: JpegHeader) -> None:
    if len(payload) < 6:
        header.problem = header.problem or "frame header too short"
        return
    precision = payload[0]
    header.coding = SOF_CODING[marker] if precision == 8 else f"{precision}-bit"
    header.height = int.from_bytes(payload[1:3], "big")
    header.width = int.from_bytes(payload[3:5], "big")
    count = payload[5]
    if len(payload) < 6 + 3 * count or count == 0:
        header.problem = header.problem or "frame header lists more components than it holds"
        return
    for i in range(count):
        ident, factors, table_id = payload[6 + 3 * i : 9 + 3 * i]
        header.components.append(FrameComponent(ident, factors & 0x0F, factors >> 4, table_id))
    if any(not 1 <= c.vertical <= 4 or not 1 <= c.horizontal <= 4 for c in header.components):
        header.problem = header.problem or "invalid sampling factors in the frame header"


def _latch_tables(payload: bytes, tables: dict[int, np.ndarray], header: JpegHeader) -> None:
    """libjpeg takes each component's table when the component first appears in a scan; a
    table not defined by then is fatal (libjpeg stops with "broken data stream")."""
    count = payload[0] if payload else 0
    in_scan = {payload[1 + 2 * i] for i in range(count) if 1 + 2 * i < len(payload)}
    for index, component in enumerate(header.components):
        if component.ident not in in_scan or component.latched is not None:
            continue
        if component.table not in tables:
            header.problem = header.problem or (
                f"component {index + 1} uses quantization table {component.table}, which the file never defines")
            return
        component.latched = tables[component.table].copy()


# -- PNG: the same question for a deflate stream -----------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEFLATE_MAX_RATIO = 1032
"""Deflate codes at best 258 repeated bytes in 2 bits (one length and one distance code of one
bit each), so no stream is smaller than its output / 1032."""
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png_problem(data: bytes) -> str | None:
    """Why a PNG cannot hold the picture its header declares, or None.

    Pillow decodes a PNG whose compressed stream ends early without complaint (the missing
    rows stay black), so a 200-byte file declaring 195 MP would be decoded and restored in
    full. Counting the IDAT bytes against the deflate bound refuses it from the header.
    """
    if data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR" or len(data) < 29:
        return None
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    depth, colour = data[24], data[25]
    if colour not in _PNG_CHANNELS:
        return None
    raw = height * (1 + -(-width * depth * _PNG_CHANNELS[colour] // 8))
    coded, position = 0, 8
    while position + 8 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        if data[position + 4 : position + 8] == b"IDAT":
            coded += min(length, len(data) - position - 8)
        position += 12 + length
    needed = raw // DEFLATE_MAX_RATIO
    if coded >= needed:
        return None
    return (f"declares {width}x{height} pixels but holds {coded:,} bytes of image data, fewer than the "
            f"{needed:,} any complete file of that size needs (truncated, or a decompression bomb)")


# -- IPTC in PNG ----------------------------------------------------------------------------

RAW_PROFILE_IPTC = "Raw profile type iptc"
"""PNG has no chunk for IPTC-NAA records; ImageMagick's convention, which exiftool and exiv2
read and write, is a text chunk of this keyword holding the records in hex."""


def iptc_raw_profile(iptc: bytes) -> str:
    """``iptc`` as the text of a "Raw profile type iptc" chunk: a newline, the profile name,
    the byte count right-aligned in 8 columns, then the bytes in hex, 36 to a line."""
    text = iptc.hex()
    lines = [text[i : i + 72] for i in range(0, len(text), 72)]
    return "\niptc\n" + f"{len(iptc):8d}\n" + "\n".join(lines) + "\n"


def iptc_from_raw_profile(text: str) -> bytes | None:
    """The records of a "Raw profile type iptc" chunk's text, or None when it is malformed."""
    parts = text.strip().split(None, 2)
    if len(parts) < 3 or not parts[1].isdigit():
        return None
    try:
        data = bytes.fromhex("".join(parts[2].split()))
    except ValueError:
        return None
    return data[: int(parts[1])] or None
