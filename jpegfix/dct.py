"""JPEG's own transform in torch: colour conversion, 8x8 block DCT, quantization intervals.

A JPEG stores, for every 8x8 block of every component, integers k = round(D / Q), where D
are the DCT coefficients of the level-shifted block and Q the quantization table. Any image
whose coefficients D' satisfy (k - 1/2) Q <= D' <= (k + 1/2) Q would have been written as the
same file, so these intervals bound what a restoration may change (One-to-Many's JPEG loss,
and the bench's "share inside the intervals"). Everything here is differentiable.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

BLOCK = 8


def dct_matrix(dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """(8, 8) orthonormal DCT-II matrix M, so that a block's coefficients are M f M^T
    (the JPEG standard's forward DCT: 1/4 C(u) C(v) sum f cos(...) cos(...))."""
    n = torch.arange(BLOCK, dtype=torch.float64)
    matrix = torch.cos((2 * n[None, :] + 1) * n[:, None] * math.pi / (2 * BLOCK)) * math.sqrt(2 / BLOCK)
    matrix[0] /= math.sqrt(2)
    return matrix.to(dtype=dtype, device=device)


def block_dct(plane: torch.Tensor) -> torch.Tensor:
    """(N, H, W) samples on the 0..255 scale, H and W multiples of 8 -> (N, H/8, W/8, 8, 8)
    coefficients of the level-shifted blocks, [.., v, u] = (vertical, horizontal) frequency,
    the layout jpeglib uses."""
    n, h, w = plane.shape
    blocks = (plane - 128).reshape(n, h // BLOCK, BLOCK, w // BLOCK, BLOCK).permute(0, 1, 3, 2, 4)
    m = dct_matrix(plane.dtype, plane.device)
    return m @ blocks @ m.T


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB on 0..255 -> JFIF (full-range BT.601) Y, Cb, Cr on 0..255."""
    r, g, b = rgb.unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return torch.stack([y, cb, cr], dim=1)


def ycbcr_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) JFIF Y, Cb, Cr on 0..255 -> RGB on 0..255 (the inverse of
    :func:`rgb_to_ycbcr`, as a JPEG decoder computes it, without rounding or clipping)."""
    y, cb, cr = ycc.unbind(1)
    cb, cr = cb - 128, cr - 128
    r = y + 1.402 * cr
    g = y - 0.344136 * cb - 0.714136 * cr
    b = y + 1.772 * cb
    return torch.stack([r, g, b], dim=1)


def jpeg_planes(image: torch.Tensor, chroma_factor: int = 2) -> list[torch.Tensor]:
    """(N, C, H, W) image in [0, 1] -> the planes a JPEG encoder would transform, on 0..255:
    [Y] for grey, [Y, Cb, Cr] for colour with chroma averaged over ``chroma_factor`` squared
    pixels (2 for 4:2:0, 1 for 4:4:4; libjpeg's downsampler is a box average)."""
    pixels = image * 255
    if image.shape[1] == 1:
        return [pixels[:, 0]]
    ycc = rgb_to_ycbcr(pixels)
    chroma = ycc[:, 1:]
    if chroma_factor > 1:
        chroma = F.avg_pool2d(chroma, chroma_factor)
    return [ycc[:, 0], chroma[:, 0], chroma[:, 1]]


def interval_excess(coefficients: torch.Tensor, quantized: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """How far each coefficient lies outside its quantization interval, in quantization steps:
    max(0, |D / Q - k| - 1/2). ``coefficients`` (N, bh, bw, 8, 8); ``quantized`` the file's k,
    same shape; ``table`` (N, 8, 8) or (8, 8)."""
    if table.dim() == 3:
        table = table[:, None, None]
    return F.relu((coefficients / table - quantized).abs() - 0.5)


def jpeg_loss(image: torch.Tensor, quantized: list[torch.Tensor], tables: list[torch.Tensor],
              chroma_factor: int = 2) -> torch.Tensor:
    """One-to-Many's JPEG loss: mean squared excess (in quantization steps) of every
    component's coefficients outside the input file's intervals; zero for any image the file
    could have come from. ``image`` must be block-aligned with the file (patches cut on the
    8-pixel grid of the JPEG, or on the 16-pixel grid for 4:2:0 chroma)."""
    planes = jpeg_planes(image, chroma_factor)
    total = sum((interval_excess(block_dct(p), k, q) ** 2).mean() for p, k, q in zip(planes, quantized, tables))
    return total / len(planes)


def share_inside(pixels: np.ndarray, quantized: np.ndarray, table: np.ndarray) -> float:
    """Share of the luma DCT coefficients of ``pixels`` ((H, W, C) uint8, block-aligned with
    the file) that lie inside the file's quantization intervals (``quantized`` (bh, bw, 8, 8)
    luma k as jpeglib reads it, ``table`` (8, 8) luma table); partial blocks at the right and
    bottom edges are left out. A hair of tolerance (1e-3 step) absorbs float rounding at the
    interval edges."""
    image = torch.from_numpy(np.array(pixels.transpose(2, 0, 1)[None], dtype=np.float64)) / 255  # a copy: decoded arrays are read-only
    luma = jpeg_planes(image, 1)[0]
    bh, bw = luma.shape[-2] // BLOCK, luma.shape[-1] // BLOCK
    luma = luma[:, : bh * BLOCK, : bw * BLOCK]
    k = torch.from_numpy(np.asarray(quantized[:bh, :bw], dtype=np.float64))
    excess = interval_excess(block_dct(luma)[0], k, torch.from_numpy(np.asarray(table, dtype=np.float64)))
    return float((excess <= 1e-3).double().mean())


def block_idct(coefficients: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`block_dct` without the level shift: (N, H/8, W/8, 8, 8) -> (N, H, W)."""
    n, bh, bw = coefficients.shape[:3]
    m = dct_matrix(coefficients.dtype, coefficients.device)
    blocks = m.T @ coefficients @ m
    return blocks.permute(0, 1, 3, 2, 4).reshape(n, bh * BLOCK, bw * BLOCK)


def project_to_intervals(restored: torch.Tensor, decoded: torch.Tensor, components: list) -> torch.Tensor:
    """Move ``restored`` into the set of images the JPEG file could have come from.

    ``restored`` and ``decoded`` are (1, C, H, W) in [0, 1]; ``components`` the file's
    :class:`jpegfix.jpeg.ComponentTable` list (Y, Cb, Cr or Y). For every component, on its
    own block grid (chroma averaged over the pixels one chroma sample covers, as the encoder's
    downsampler does), each DCT coefficient of the restoration is clipped to
    [(k - 1/2) Q, (k + 1/2) Q], with k re-read from the decoded pixels. Only the clipped part
    changes, added back at full resolution, so detail the restoration put inside the
    intervals stays. This cannot move any coefficient farther from the original than half a
    quantization step: a network that would harm a high-quality file (small Q) is held close
    to it.
    """
    planes_r, planes_d = _planes(restored), _planes(decoded)
    projected = []
    for r, d, component in zip(planes_r, planes_d, components):
        fy, fx = component.block_height // BLOCK, component.block_width // BLOCK
        table = torch.as_tensor(np.asarray(component.table, dtype=np.float32), device=r.device)
        small_r, small_d = _downsample(r, fy, fx), _downsample(d, fy, fx)
        height, width = small_r.shape[-2:]
        small_r, small_d = _pad_to_block(small_r), _pad_to_block(small_d)
        coefficients = block_dct(small_r)
        k = torch.round(block_dct(small_d) / table)
        clipped = torch.minimum(torch.maximum(coefficients, (k - 0.5) * table), (k + 0.5) * table)
        change = block_idct(clipped - coefficients)[:, :height, :width]
        change = change.repeat_interleave(fy, dim=-2).repeat_interleave(fx, dim=-1)
        projected.append(r + change[:, : r.shape[-2], : r.shape[-1]])
    stacked = torch.stack(projected, dim=1)
    if restored.shape[1] == 3:
        stacked = ycbcr_to_rgb(stacked)
    return (stacked / 255).clamp(0, 1)


def project_in_bands(restored: torch.Tensor, decoded: torch.Tensor, components: list, rows: int = 256) -> torch.Tensor:
    """:func:`project_to_intervals` band by band (``rows`` a multiple of 16, so no block of
    any component straddles two bands): memory grows with the band, not the image."""
    out = torch.empty_like(restored)
    for top in range(0, restored.shape[-2], rows):
        band = slice(top, top + rows)
        out[..., band, :] = project_to_intervals(restored[..., band, :], decoded[..., band, :], components)
    return out


def _planes(image: torch.Tensor) -> list[torch.Tensor]:
    """Full-resolution JPEG planes of a (1, C, H, W) [0, 1] image on 0..255."""
    pixels = image.float() * 255
    if image.shape[1] == 1:
        return [pixels[:, 0]]
    return list(rgb_to_ycbcr(pixels).unbind(1))


def _downsample(plane: torch.Tensor, fy: int, fx: int) -> torch.Tensor:
    if fy == fx == 1:
        return plane
    h, w = plane.shape[-2:]
    padded = F.pad(plane[:, None], (0, -w % fx, 0, -h % fy), mode="replicate")
    return F.avg_pool2d(padded, (fy, fx))[:, 0]


def _pad_to_block(plane: torch.Tensor) -> torch.Tensor:
    """Edge-replicate to whole blocks, as JPEG encoders pad partial blocks."""
    h, w = plane.shape[-2:]
    if not (h % BLOCK or w % BLOCK):
        return plane
    return F.pad(plane[:, None], (0, -w % BLOCK, 0, -h % BLOCK), mode="replicate")[:, 0]
