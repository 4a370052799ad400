"""How much memory restoring an image takes, estimated from its header before decoding.

A 6 KB JPEG can declare 12000x12000 pixels; decoding it first and finding out later took 11
minutes and 7.5 GB. So the size the header declares is turned into an estimated peak before
any pixel is decoded, and the image is refused in one line when the estimate is over the
budget. The figures are measured (``/usr/bin/time -v`` on ``jpegfix restore`` of 2, 6 and 12 MP
colour JPEGs, CPU, shipped qgcn-color-s; docs/reliability.md): the process itself plus one tile
of network activations is a fixed cost, and the whole-image buffers (decoded pixels, float
copies, quantization maps, the blended result, the PNG encoder's input) grow with the pixel
count. Estimates err high: the 12 MP restore peaked at 1.81 GB against 2.27 GB estimated.
"""

from __future__ import annotations

import math

from jpegfix.errors import InputError

BASE_BYTES = 1.6e9
"""Interpreter, torch, model weights and one CPU tile of activations (tile budget 1.5 GiB).
Measured: peak RSS of a colour restore is 1.54 GB at 6 MP and 1.81 GB at 12 MP (both tiled),
a line through 1.27 GB at 0 MP; rounded up."""
BYTES_PER_PIXEL = {3: 56, 1: 32}
"""Whole-image bytes per pixel by channel count. Colour: the measured slope between the 6 and
12 MP restores is 45 B/px (decoded pixels, float copy, maps, blended result and its
normalisation, 8-bit quantization); 56 adds 25%. Grey: the same buffers with one channel
where colour has three (about 25 B/px counted), 32 with the margin; a 6 MP grey restore
(qgcn-gray-s) peaked at 1.45 GB against 1.79 GB estimated."""
DEFAULT_MAX_MEMORY_GB = 8.0
"""Default budget: a 60 MP colour photo is estimated at 5.0 GB, the largest colour image that
fits is about 114 MP, and a 144 MP one (9.7 GB) is refused before decoding."""


def estimated_peak(width: int, height: int, channels: int) -> float:
    """Estimated peak bytes of restoring a ``width`` x ``height`` image of ``channels`` (1 or 3)."""
    return BASE_BYTES + BYTES_PER_PIXEL[3 if channels >= 3 else 1] * width * height


def check_memory(width: int, height: int, channels: int, max_memory: float) -> None:
    """Refuse, before decoding, an image whose restore would need more than ``max_memory`` bytes.

    Raises:
        InputError: one line with the estimate, the budget and how to raise it.
    """
    need = estimated_peak(width, height, channels)
    if need > max_memory:
        raise InputError(
            f"restoring {width}x{height} would need about {need / 1e9:.1f} GB of memory, over the "
            f"{max_memory / 1e9:g} GB limit (raise it with --max-memory)"
        )


def parse_limit(value: float, name: str) -> float:
    """``value`` if it is a finite positive number.

    Raises:
        ValueError: nan, infinite, zero or negative, with a one-line reason naming ``name``.
    """
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return value
