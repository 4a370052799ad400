"""Double-compressed JPEGs: blind restoration versus QGCN with the file's tables or ``--quality``.

A double-compressed image was compressed at quality ``first``, shifted by a few pixels (a
crop, so the second 8x8 grid no longer matches the first) and compressed again at
``second``. Its file's tables describe only the second compression. This module measures,
per case, the mean PSNR of:

* ``jpeg``: the double-compressed input,
* ``tables``: the table-guided model with the file's tables (what ``jpegfix restore`` does),
* ``tables --quality min``: the same model told the stronger of the two qualities,
  min(first, second) (the user's strength control),
* ``blind``: the blind model (``--model contrastive-...``), which reads only pixels.

Run ``python -m jpegfix.bench.double_jpeg --data FOLDER`` for the table.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field

import numpy as np

from jpegfix.data import jpeg_roundtrip
from jpegfix.engine import restore_pixels
from jpegfix.metrics import psnr
from jpegfix.models.restorer import Restorer
from jpegfix.output import quantize
from jpegfix.qmaps import ijg_components

CASES = ((10, 30), (20, 40), (30, 50), (20, 80), (50, 30), (40, 20))
SHIFT = (4, 4)


@dataclass
class DoubleRow:
    first: int
    second: int
    shift: tuple[int, int]
    images: int
    psnr: dict[str, float] = field(default_factory=dict)
    """Mean PSNR (dB) per method: jpeg, tables, tables --quality min, blind."""

    @property
    def best(self) -> str:
        return max((k for k in self.psnr if k != "jpeg"), key=self.psnr.__getitem__)


def double_compress(pixels: np.ndarray, first: int, second: int, shift: tuple[int, int] = SHIFT) -> tuple[np.ndarray, np.ndarray]:
    """(clean, compressed twice) for (H, W, C) uint8 ``pixels``: JPEG at ``first``, drop
    ``shift`` = (rows, columns) from the top-left, JPEG at ``second`` (both Pillow, 4:2:0)."""
    dy, dx = shift
    once = jpeg_roundtrip(pixels, first)[dy:, dx:]
    return np.ascontiguousarray(pixels[dy:, dx:]), jpeg_roundtrip(np.ascontiguousarray(once), second)


def measure_double_jpeg(
    images: list[np.ndarray],
    *,
    blind: Restorer,
    tables: Restorer,
    cases: tuple[tuple[int, int], ...] = CASES,
    shift: tuple[int, int] = SHIFT,
    tile: int = 0,
) -> list[DoubleRow]:
    """Mean PSNR of each method on every (first, second) case over ``images`` (H, W, C) uint8."""
    rows = []
    for first, second in cases:
        scores: dict[str, list[float]] = {}
        strength = min(first, second)
        for image in images:
            clean, twice = double_compress(image, first, second, shift)
            channels = image.shape[2]
            outputs = {
                "jpeg": twice,
                "tables": _restore(tables, twice, ijg_components(second, channels), tile),
                "tables --quality min": _restore(tables, twice, ijg_components(strength, channels), tile),
                "blind": _restore(blind, twice, None, tile),
            }
            for name, output in outputs.items():
                scores.setdefault(name, []).append(psnr(clean, output))
        rows.append(DoubleRow(first, second, shift, len(images), {k: round(float(np.mean(v)), 3) for k, v in scores.items()}))
    return rows


def _restore(restorer: Restorer, pixels: np.ndarray, components, tile: int) -> np.ndarray:
    return quantize(restore_pixels(restorer, pixels, components, tile=tile), 8)


def main(argv: list[str] | None = None) -> None:
    from jpegfix.data import list_images, load_image
    from jpegfix.engine import DEFAULT_BLIND_MODELS, DEFAULT_TABLE_MODELS, load_restorer

    parser = argparse.ArgumentParser(prog="python -m jpegfix.bench.double_jpeg", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder of clean held-out images")
    parser.add_argument("--channels", type=int, default=3, choices=(1, 3))
    parser.add_argument("--blind", help="blind model (default: the blind default)")
    parser.add_argument("--tables", help="table-guided model (default: the JPEG default)")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    paths = list_images([args.data])[: args.limit or None]
    images = [load_image(p, args.channels) for p in paths]
    blind = load_restorer(args.blind or DEFAULT_BLIND_MODELS[args.channels], args.device)
    tables = load_restorer(args.tables or DEFAULT_TABLE_MODELS[args.channels], args.device)
    rows = measure_double_jpeg(images, blind=blind, tables=tables)
    if args.json:
        print(json.dumps([asdict(r) | {"best": r.best} for r in rows], indent=2))
        return
    names = list(rows[0].psnr)
    print(f"{len(images)} images, shift {rows[0].shift}; mean PSNR (dB); blind = {blind.spec.name}, tables = {tables.spec.name}")
    print("first second  " + "  ".join(f"{n:>20}" for n in names) + "  best")
    for row in rows:
        print(f"{row.first:5d} {row.second:6d}  " + "  ".join(f"{row.psnr[n]:20.2f}" for n in names) + f"  {row.best}")


if __name__ == "__main__":
    main()
