"""Benchmark cases: the input a model gets for one clean image, and the reference it is scored on.

A run has *columns* and one *degradation*. A column says how the clean image is compressed
first: IJG tables at a quality (``QF50``), one table pair of a named real-world set
(``canon-eos (~QF93)``), or not at all (``clean``, from ``--qf none``). The degradation then
applies to every column, in this order:

1. ``requality`` Q: the decoded pixels are saved again as a JPEG at IJG quality Q on the same
   8x8 grid (double compression); the model gets that file's tables, the last ones, as a
   real restore would;
2. ``resize`` f: the decoded pixels are resized by f (Pillow bicubic, which widens its
   kernel when shrinking, i.e. antialiased); the reference is the clean image resized alike;
3. ``shift`` (x, y): x columns and y rows are cropped off the top-left, so the JPEG grid no
   longer starts at (0, 0); the reference is cropped alike.

After a resize or a shift the input is a PNG-like image: pixels only, no tables. Every JPEG
here is written to a file and read back with :func:`jpegfix.jpeg.read_image`, so that the
pixels and the component tables are exactly what ``jpegfix restore`` would get.

:func:`make_input` is the one place that builds a case's input; scoring is
:func:`jpegfix.bench.protocol.score_output`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from jpegfix.data import resize
from jpegfix.errors import JpegfixError
from jpegfix.jpeg import ComponentTable, read_image
from jpegfix.qmaps import IJG_CHROMA, IJG_LUMA, estimate_quality

IJG_TABLES = "ijg"
CLEAN = "clean"
RESIZE_FILTER = "Pillow bicubic (antialiased when shrinking)"


@dataclass(frozen=True)
class Column:
    """How the clean image is compressed first; one column of the result tables."""

    key: str
    """Column label: ``QF50``, ``clean`` or ``<table name> (~QF93)``."""
    quality: int | None
    """IJG quality 1..100; for a named table the nearest IJG quality of its luma table; None
    for ``clean`` (no compression)."""
    luma: np.ndarray | None = None
    """(8, 8) table in natural row-major order for a named table; None: IJG tables at ``quality``."""
    chroma: np.ndarray | None = None
    """(8, 8) chroma table; None with ``luma`` set: the luma table serves chroma too."""

    @property
    def folder(self) -> str:
        """A file-system-safe name: ``q50``, ``clean`` or the table's name."""
        if self.ijg:
            return f"q{self.quality}"
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in self.key.split(" (")[0])

    @property
    def ijg(self) -> bool:
        """Compressed with IJG tables at a quality (what published figures use)."""
        return self.quality is not None and self.luma is None


@dataclass(frozen=True)
class Degradation:
    """What happens to the decoded image before the model sees it (see the module docstring)."""

    requality: int | None = None
    resize: float | None = None
    shift: tuple[int, int] | None = None
    """(x, y): columns and rows cropped off the top-left."""

    def __post_init__(self) -> None:
        if self.requality is not None and not 1 <= self.requality <= 100:
            raise ValueError(f"--requality must be in 1..100, got {self.requality}")
        if self.resize is not None and not 0.1 <= self.resize <= 4:
            raise ValueError(f"--resize must be in 0.1..4, got {self.resize}")
        if self.shift is not None and (min(self.shift) < 0 or max(self.shift) > 64 or not any(self.shift)):
            raise ValueError(f"--shift takes X,Y in 0..64, not both 0; got {self.shift}")

    @property
    def none(self) -> bool:
        return self.requality is None and self.resize is None and self.shift is None

    @property
    def keeps_tables(self) -> bool:
        """The model's input is still a JPEG whose tables it may read."""
        return self.resize is None and self.shift is None

    def describe(self) -> str:
        steps = []
        if self.requality is not None:
            steps.append(f"saved again as JPEG q{self.requality} on the same grid")
        if self.resize is not None:
            steps.append(f"resized x{self.resize:g} ({RESIZE_FILTER})")
        if self.shift is not None:
            steps.append(f"cropped {self.shift[0]} px left, {self.shift[1]} px top (off the 8x8 grid)")
        return "; ".join(steps) or "none"


@dataclass
class CaseInput:
    """One image of one case: what the model gets and what it is scored against."""

    reference: np.ndarray
    """(H, W, C) uint8 clean image, resized or cropped like the input."""
    pixels: np.ndarray
    """(H, W, C) uint8 input: the plain-JPEG row scores this."""
    components: list[ComponentTable] | None
    """Tables the input's file carries; None when it is pixels only (clean, resized, shifted)."""


def ijg_column(quality: int | None) -> Column:
    return Column(CLEAN, None) if quality is None else Column(f"QF{quality}", quality)


def table_column(name: str, luma: np.ndarray, chroma: np.ndarray | None) -> Column:
    """A named real-world table pair, labelled with the nearest IJG quality of its luma table."""
    luma = _checked_table(name, luma)
    chroma = None if chroma is None else _checked_table(name, chroma)
    quality, _ = estimate_quality(luma, IJG_LUMA)
    return Column(f"{name} (~QF{quality})", quality, luma, chroma)


def named_columns(set_name: str) -> list[Column]:
    """One column per table pair of the named set (``jpegfix.table_sets``), weakest quality first.

    Raises:
        ValueError: the set is unknown, or the table sets module is not installed.
    """
    try:
        from jpegfix import table_sets
    except ImportError:
        raise ValueError(f"--tables {set_name}: this jpegfix has no named table sets (jpegfix.table_sets)") from None
    if set_name not in table_sets.NAMES:
        raise ValueError(f"--tables must be {IJG_TABLES} or one of {', '.join(table_sets.NAMES)}; got {set_name!r}")
    columns = [table_column(t.name, t.luma, t.chroma) for t in table_sets.named(set_name)]
    if not columns:
        raise ValueError(f"table set {set_name!r} is empty")
    return sorted(columns, key=lambda c: c.quality or 0)


def make_input(clean: np.ndarray, column: Column, degradation: Degradation, subsampling: str) -> CaseInput:
    """Build the input of ``column`` under ``degradation`` for (H, W, C) uint8 ``clean``.

    Raises:
        JpegfixError: a JPEG could not be written or read back with its tables, or the image
            is too small for the shift or resize.
    """
    pixels, components = (clean, None) if column.quality is None else jpeg_round_trip(clean, column, subsampling)
    reference = clean
    if degradation.requality is not None:
        pixels, components = jpeg_round_trip(pixels, ijg_column(degradation.requality), subsampling)
    if degradation.resize is not None:
        pixels, reference = resize(pixels, degradation.resize), resize(reference, degradation.resize)
        components = None
    if degradation.shift is not None:
        x, y = degradation.shift
        if pixels.shape[0] <= y + 8 or pixels.shape[1] <= x + 8:
            raise JpegfixError(f"image {pixels.shape[1]}x{pixels.shape[0]} too small for --shift {x},{y}")
        pixels, reference = pixels[y:, x:], reference[y:, x:]
        components = None
    return CaseInput(np.ascontiguousarray(reference), np.ascontiguousarray(pixels), components)


def jpeg_round_trip(pixels: np.ndarray, column: Column, subsampling: str) -> tuple[np.ndarray, list[ComponentTable]]:
    """Write (H, W, C) uint8 ``pixels`` as a baseline Pillow JPEG (grey: one component; colour:
    ``subsampling``) with ``column``'s tables, and read it back as ``jpegfix restore`` does.

    Returns (decoded pixels, component tables read from the file).
    """
    options: dict[str, Any] = {"subsampling": subsampling} if pixels.shape[2] == 3 else {}
    if column.luma is None:
        options["quality"] = int(column.quality)
    else:
        # Pillow 13 takes qtables in natural row-major order (checked against jpeglib in the tests).
        chroma = column.luma if column.chroma is None else column.chroma
        tables = [column.luma] + ([chroma] if pixels.shape[2] == 3 else [])
        options["qtables"] = [[int(v) for v in np.asarray(t).ravel()] for t in tables]
    image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    with tempfile.TemporaryDirectory(prefix="jpegfix-bench-") as folder:
        path = Path(folder) / "case.jpg"
        image.save(path, format="JPEG", **options)
        decoded = read_image(path)
    if decoded.components is None:
        raise JpegfixError(f"bench JPEG has no usable tables: {decoded.tables_problem}")
    return decoded.pixels, decoded.components


def describe_tables(components: list[ComponentTable]) -> dict[str, Any]:
    """What a reader needs about a column's file tables: the tables, IJG match, nearest quality."""
    luma_quality, luma_error = estimate_quality(components[0].table, IJG_LUMA)
    record: dict[str, Any] = {"luma": components[0].table.tolist(), "luma_quality": luma_quality,
                              "luma_error": round(luma_error, 3)}
    if len(components) > 1:
        chroma_quality, chroma_error = estimate_quality(components[1].table, IJG_CHROMA)
        record.update(chroma=components[1].table.tolist(), chroma_quality=chroma_quality,
                      chroma_error=round(chroma_error, 3))
    record["ijg"] = luma_error == 0 and record.get("chroma_error", 0) == 0
    return record


def _checked_table(name: str, table: Any) -> np.ndarray:
    array = np.asarray(table, dtype=np.int64)
    if array.shape != (8, 8) or (array < 1).any() or (array > 255).any():
        raise ValueError(f"table set entry {name!r}: tables must be 8x8 with entries 1..255 (baseline JPEG)")
    return array
