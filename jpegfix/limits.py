"""How much memory restoring an image takes, estimated from its header before decoding.

A 6 KB JPEG can declare 12000x12000 pixels; decoding it first and finding out later took 11
minutes and 7.5 GB. So the size the header declares is turned into an estimated peak before
any pixel is decoded, and the image is refused in one line when the estimate is over the
budget. The figures are measured (``/usr/bin/time -v`` on ``jpegfix restore``, CPU, shipped
models; docs/reliability.md): the process itself plus one tile of network activations is a
fixed cost, and the whole-image buffers (decoded pixels, float copies, quantization maps,
the blended result, the PNG encoder's input) grow with the pixel count.
"""

from __future__ import annotations

import math

from jpegfix.errors import InputError

BASE_BYTES = 2.2 * 2**30
"""Interpreter, torch, model weights and one CPU tile of activations (the engine's tile
budget is 1.5 GiB); measured peak of a 2 MP colour restore, rounded up."""
BYTES_PER_PIXEL = {3: 64, 1: 32}
"""Whole-image bytes per pixel by channel count, measured as the slope of peak memory
between 6 and 12 MP restores, rounded up."""
DEFAULT_MAX_MEMORY_GB = 8.0
"""Default budget: a 60 MP colour photo fits (about 5.8 GB); a 144 MP decompression bomb
(about 11 GB) is refused before decoding."""


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
