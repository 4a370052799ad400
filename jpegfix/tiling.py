"""Seamless tiling: overlapping tiles on the JPEG block grid, blended with linear ramps.

Tiles start on a 16-pixel grid (the largest JPEG MCU), so every tile sees the block
pattern exactly as the whole image does. Neighbouring tiles overlap by ``overlap`` pixels;
in the overlap each output pixel is a weighted mean of the tiles covering it, with weights
ramping linearly from the tile edge inwards, so no seam can appear. Image borders get full
weight (there is no neighbour to blend with).
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch

GRID = 16


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets (multiples of 16) of tiles of side ``tile`` covering ``length`` pixels.

    ``length``, ``tile`` and ``overlap`` are multiples of 16 and ``overlap < tile``.
    """
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def ramp(length: int, overlap_before: int, overlap_after: int) -> torch.Tensor:
    """1-D blending weights: rising over the leading overlap, falling over the trailing one."""
    weight = torch.ones(length)
    if overlap_before:
        weight[:overlap_before] = torch.arange(1, overlap_before + 1) / (overlap_before + 1)
    if overlap_after:
        weight[length - overlap_after :] = torch.arange(overlap_after, 0, -1) / (overlap_after + 1)
    return weight


def tiles(height: int, width: int, tile: int, overlap: int) -> Iterator[tuple[int, int, torch.Tensor]]:
    """(top, left, weight) per tile; ``weight`` is (tile_h, tile_w) and covers the overlaps."""
    rows, cols = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    tile_h, tile_w = min(tile, height), min(tile, width)
    for i, top in enumerate(rows):
        above = rows[i - 1] + tile_h - top if i else 0
        below = top + tile_h - rows[i + 1] if i + 1 < len(rows) else 0
        vertical = ramp(tile_h, above, below)
        for j, left in enumerate(cols):
            before = cols[j - 1] + tile_w - left if j else 0
            after = left + tile_w - cols[j + 1] if j + 1 < len(cols) else 0
            yield top, left, vertical[:, None] * ramp(tile_w, before, after)[None, :]


Box = tuple[int, int, int, int]
"""(top, left, height, width) of one tile."""


def run_tiled(
    process: Callable[[list[Box]], list[torch.Tensor]],
    channels: int,
    height: int,
    width: int,
    tile: int,
    overlap: int,
    *,
    batch: int = 1,
    on_tile: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Blend ``process(boxes) -> [(C, h, w) per box]`` over tiles into a (C, H, W) CPU tensor.

    ``process`` gets up to ``batch`` tiles at a time (a GPU runs them in one forward pass);
    ``on_tile(done, total)`` is told after each call. ``height`` and ``width`` must be
    multiples of 16; ``tile`` and ``overlap`` are rounded to it.
    """
    tile = max(GRID, tile // GRID * GRID)
    overlap = min(max(0, overlap // GRID * GRID), tile - GRID)
    result = torch.zeros(channels, height, width)
    total = torch.zeros(1, height, width)
    plan = list(tiles(height, width, tile, overlap))
    for start in range(0, len(plan), max(1, batch)):
        chunk = plan[start : start + max(1, batch)]
        outputs = process([(top, left, *weight.shape) for top, left, weight in chunk])
        for (top, left, weight), out in zip(chunk, outputs):
            h, w = weight.shape
            result[:, top : top + h, left : left + w] += out.float().cpu() * weight
            total[:, top : top + h, left : left + w] += weight
        if on_tile:
            on_tile(start + len(chunk), len(plan))
    return result.div_(total)  # in place: a 12 MP photo's result is 144 MB
