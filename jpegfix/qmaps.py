"""Quantization tables as per-pixel maps, and IJG quality <-> table conversions.

A quantization map repeats each component's 8x8 table over the image on that component's
own block grid: every luma block covers 8x8 pixels, a 4:2:0 chroma block covers 16x16 (each
table entry then spans 2x2 pixels). The network thus knows, at every pixel, how coarsely the
coefficient behind it was quantized.
"""

from __future__ import annotations

import numpy as np

from jpegfix.jpeg import ComponentTable

# The example tables of the JPEG standard (Annex K), which libjpeg scales by quality.
IJG_LUMA = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.int64,
)
IJG_CHROMA = np.array(
    [
        [17, 18, 24, 47, 99, 99, 99, 99],
        [18, 21, 26, 66, 99, 99, 99, 99],
        [24, 26, 56, 99, 99, 99, 99, 99],
        [47, 66, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
    ],
    dtype=np.int64,
)

MAP_SCALE = 255.0
"""Maps are table values / 255, so baseline (8-bit) tables land in (0, 1]."""

SUBSAMPLING_BLOCKS = {"4:4:4": (8, 8), "4:2:2": (8, 16), "4:2:0": (16, 16), "4:4:0": (16, 8)}
"""(block height, block width) in image pixels of one chroma block for each subsampling."""


def ijg_table(quality: int, base: np.ndarray = IJG_LUMA) -> np.ndarray:
    """The table libjpeg (and so Pillow and OpenCV) writes at ``quality`` 1..100."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((base * scale + 50) // 100, 1, 255)


def ijg_components(quality: int, channels: int, subsampling: str = "4:2:0") -> list[ComponentTable]:
    """Component tables of an IJG encoder at ``quality`` (grey: one, colour: Y, Cb, Cr)."""
    luma = ComponentTable(ijg_table(quality, IJG_LUMA), 8, 8)
    if channels == 1:
        return [luma]
    block_h, block_w = SUBSAMPLING_BLOCKS[subsampling]
    chroma = ComponentTable(ijg_table(quality, IJG_CHROMA), block_h, block_w)
    return [luma, chroma, chroma]


def estimate_quality(table: np.ndarray, base: np.ndarray = IJG_LUMA) -> tuple[int, float]:
    """Nearest IJG quality for ``table`` and the mean absolute table error at that quality.

    An error of 0 means the file was written by an IJG-style encoder at exactly that quality;
    cameras and editors use their own tables and give a non-zero error.
    """
    errors = [np.abs(ijg_table(q, base) - table).mean() for q in range(1, 101)]
    best = int(np.argmin(errors))
    return best + 1, float(errors[best])


def component_map(component: ComponentTable, height: int, width: int) -> np.ndarray:
    """(height, width) float32 map of ``component``'s table on its own block grid."""
    repeat_y, repeat_x = component.block_height // 8, component.block_width // 8
    block = np.repeat(np.repeat(component.table, repeat_y, axis=0), repeat_x, axis=1)
    reps_y = -(-height // block.shape[0])
    reps_x = -(-width // block.shape[1])
    return np.tile(block, (reps_y, reps_x))[:height, :width].astype(np.float32) / MAP_SCALE


def build_qmaps(components: list[ComponentTable], height: int, width: int) -> np.ndarray:
    """QGCN's input maps: (1, H, W) for grey, (2, H, W) = luma, chroma for colour.

    QGCN has one chrominance channel; when Cb and Cr use different tables their maps are
    averaged.
    """
    luma = component_map(components[0], height, width)
    if len(components) == 1:
        return luma[None]
    chroma = np.mean([component_map(c, height, width) for c in components[1:]], axis=0)
    return np.stack([luma, chroma])
