"""How well are JPEG tables recovered from pixels? The measurement behind ``probe-tables``.

Protocol: every image is compressed as a whole by Pillow (IJG tables) and decoded in memory,
which is exactly what a PNG, WebP or TIFF copy of the JPEG holds; nothing is written. Cases:

- ``jpeg``: the decoded image, at each quality and subsampling;
- ``shift``: the decoded image cropped by 5 columns and 3 rows (the grid then starts at
  x = 3, y = 5): the offset must be found too;
- ``resized``: the decoded image resized to 0.75x (bicubic): must say "not found";
- ``clean``: the image itself: must say "not found" (BSDS500's images are themselves
  quality-95 JPEGs, so there "found" at about 95 is the right answer);
- ``double``: compressed at a first quality, decoded, compressed again at a second one on
  the same grid; :func:`jpegfix.recovery.find_earlier_compression` reads the second file's
  tables and decoding, and must find the first quality.

Per case and quality: the share of images found, with the luma table exactly right, with all
tables exactly right (then restoring the copy is bit-identical to restoring the JPEG with its
true tables), and with the estimated quality within 2 (not found counts as a miss).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image

from jpegfix.data import jpeg_roundtrip
from jpegfix.qmaps import ijg_components
from jpegfix.recovery import find_earlier_compression, recover_tables

SHIFT = (5, 3)
"""Columns and rows cropped off the top-left corner for the ``shift`` case."""
RESIZE = 0.75


@dataclass
class ProbeRow:
    case: str
    quality: str
    """The compression quality (``first/second`` for double compression, ``-`` for clean)."""
    subsampling: str
    images: int = 0
    found: int = 0
    luma_exact: int = 0
    all_exact: int = 0
    within_2: int = 0
    offset_right: int = 0

    def rates(self) -> dict:
        share = lambda count: round(count / self.images, 4) if self.images else None
        return {**asdict(self), **{f"{k}_rate": share(getattr(self, k))
                                   for k in ("found", "luma_exact", "all_exact", "within_2", "offset_right")}}


@dataclass
class TableProbe:
    rows: dict[tuple, ProbeRow] = field(default_factory=dict)

    def row(self, case: str, quality: str, subsampling: str) -> ProbeRow:
        key = (case, quality, subsampling)
        if key not in self.rows:
            self.rows[key] = ProbeRow(case, quality, subsampling)
        return self.rows[key]


def probe_image(probe: TableProbe, pixels: np.ndarray, qualities: tuple[int, ...], subsamplings: tuple[str, ...],
                special: tuple[int, ...], doubles: tuple[tuple[int, int], ...]) -> None:
    """Add one (H, W, C) uint8 image's results for every case to ``probe``. ``special`` are
    the qualities of the shift and resize cases (4:2:0 only), ``doubles`` the (first, second)
    quality pairs."""
    colour = pixels.shape[2] == 3
    layouts = subsamplings if colour else ("grey",)
    for layout in layouts:
        for quality in qualities:
            decoded = jpeg_roundtrip(pixels, quality, layout if colour else "4:2:0")
            _score(probe.row("jpeg", str(quality), layout), recover_tables(decoded), quality, layout, pixels.shape[2], (0, 0))
    layout = layouts[0]
    for quality in special:
        decoded = jpeg_roundtrip(pixels, quality)
        shifted = decoded[SHIFT[1]:, SHIFT[0]:]
        expected = ((8 - SHIFT[0]) % 8, (8 - SHIFT[1]) % 8)
        _score(probe.row("shift", str(quality), layout), recover_tables(shifted), quality, layout, pixels.shape[2], expected)
        height, width = decoded.shape[:2]
        size = (round(width * RESIZE), round(height * RESIZE))
        resized = np.asarray(Image.fromarray(decoded[..., 0] if not colour else decoded).resize(size, Image.BICUBIC))
        resized = resized[..., None] if resized.ndim == 2 else resized
        _score_absent(probe.row("resized", str(quality), layout), recover_tables(resized))
    _score_absent(probe.row("clean", "-", "-"), recover_tables(pixels))
    for first, second in doubles:
        twice = jpeg_roundtrip(jpeg_roundtrip(pixels, first), second)
        earlier = find_earlier_compression(twice, ijg_components(second, pixels.shape[2]))
        row = probe.row("double", f"{first}/{second}", layout)
        row.images += 1
        row.found += earlier.found
        row.within_2 += earlier.found and abs(earlier.quality - first) <= 2
        row.luma_exact += earlier.found and earlier.quality == first


def _score(row: ProbeRow, recovery, quality: int, layout: str, channels: int, offset: tuple[int, int]) -> None:
    row.images += 1
    if not recovery.found:
        return
    truth = ijg_components(quality, channels, layout if layout != "grey" else "4:2:0")
    row.found += 1
    row.luma_exact += bool((recovery.components[0].table == truth[0].table).all())
    row.all_exact += all((r.table == t.table).all() and (r.block_height, r.block_width) == (t.block_height, t.block_width)
                         for r, t in zip(recovery.components, truth))
    row.within_2 += abs(recovery.quality - quality) <= 2
    row.offset_right += recovery.offset == offset


def _score_absent(row: ProbeRow, recovery) -> None:
    row.images += 1
    row.found += recovery.found


def summary(probe: TableProbe, first: int = 10, last: int = 90, layout: str = "4:2:0") -> dict:
    """The issue's headline numbers: luma-exact and within-2 rates over the ``jpeg`` case at
    qualities ``first``..``last`` in ``layout``; false "found" over clean and resized; the
    earlier quality found (within 2) over double compression."""
    def pooled(rows, key):
        images = sum(r.images for r in rows)
        return round(sum(getattr(r, key) for r in rows) / images, 4) if images else None

    aligned = [r for (case, q, s), r in probe.rows.items() if case == "jpeg" and s in (layout, "grey") and first <= int(q) <= last]
    return {
        "luma_exact": pooled(aligned, "luma_exact"), "within_2": pooled(aligned, "within_2"),
        "false_found_clean": pooled([r for r in probe.rows.values() if r.case == "clean"], "found"),
        "false_found_resized": pooled([r for r in probe.rows.values() if r.case == "resized"], "found"),
        "earlier_found": pooled([r for r in probe.rows.values() if r.case == "double"], "within_2"),
    }
