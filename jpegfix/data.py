"""Training data: clean images from folders, and banks of pre-compressed JPEG patches.

On a CPU the network step is the bottleneck, so every patch a stage will use is cropped,
compressed with Pillow and decoded once, up front, into a :class:`PatchBank` of uint8
arrays; batches are then plain slices. Crops start on a 16-pixel grid so that the source
photo's own JPEG blocks (BSDS500 ships as quality-95 JPEGs) stay aligned with the new ones.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import numpy as np
from PIL import Image

from jpegfix.errors import DataError
from jpegfix.qmaps import build_qmaps, ijg_components

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
GRID = 16


def list_images(folders: list[str | Path]) -> list[Path]:
    """All image files under ``folders`` (recursively), sorted for reproducibility.

    Raises:
        DataError: a folder is missing or holds no images.
    """
    paths: list[Path] = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise DataError(f"data folder not found: {folder}")
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise DataError(f"no images in data folder: {folder}")
        paths += found
    return paths


def load_image(path: Path, channels: int) -> np.ndarray:
    """(H, W, C) uint8 array; grey images are Pillow's "L" (ITU-R 601 luma, full range)."""
    with Image.open(path) as image:
        image = image.convert("L" if channels == 1 else "RGB")
        array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if channels == 1 else array


def jpeg_roundtrip(pixels: np.ndarray, quality: int, subsampling: str = "4:2:0") -> np.ndarray:
    """Compress (H, W, C) uint8 with Pillow at ``quality`` and decode it again."""
    image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(quality), subsampling=subsampling)
    with Image.open(buffer) as decoded:
        array = np.asarray(decoded, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


@dataclass
class PatchBank:
    """Aligned (clean, compressed) patch pairs with their IJG qualities and subsamplings."""

    clean: np.ndarray
    """(N, C, S, S) uint8."""
    degraded: np.ndarray
    """(N, C, S, S) uint8, the Pillow JPEG decoding of ``clean``."""
    quality: np.ndarray
    """(N,) int, the JPEG quality of each patch."""
    subsampling: list[str]

    def __len__(self) -> int:
        return len(self.quality)

    def qmaps(self, indices: np.ndarray) -> np.ndarray:
        """(B, K, S, S) float32 quantization maps of the selected patches."""
        channels, size = self.clean.shape[1], self.clean.shape[-1]
        return np.stack([
            build_qmaps(ijg_components(int(self.quality[i]), channels, self.subsampling[i]), size, size)
            for i in indices
        ])

    def loader(self, batch: int, seed: int, device) -> Callable[[int], tuple]:
        """``load(step)`` -> (degraded, clean, indices): ``batch`` patches as float tensors in
        [0, 1] on ``device``, walking one fixed shuffle of the bank (seeded, so a resumed run
        sees the same batches)."""
        import torch

        order = np.random.default_rng(seed).permutation(len(self))

        def load(step: int) -> tuple:
            indices = order[(np.arange(batch) + step * batch) % len(self)]
            to = lambda a: torch.from_numpy(np.ascontiguousarray(a[indices])).to(device).float() / 255
            return to(self.degraded), to(self.clean), indices

        return load

    def save(self, path: Path) -> None:
        np.savez(path, clean=self.clean, degraded=self.degraded, quality=self.quality,
                 subsampling=np.array(self.subsampling))

    @classmethod
    def load(cls, path: Path) -> "PatchBank":
        with np.load(path) as f:
            return cls(f["clean"], f["degraded"], f["quality"], [str(s) for s in f["subsampling"]])


def random_crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A ``size`` square crop starting on the 16-pixel grid, randomly flipped and rotated."""
    height, width = image.shape[:2]
    if height < size or width < size:
        image = np.pad(image, ((0, max(0, size - height)), (0, max(0, size - width)), (0, 0)), mode="reflect")
        height, width = image.shape[:2]
    top = rng.integers(0, (height - size) // GRID + 1) * GRID
    left = rng.integers(0, (width - size) // GRID + 1) * GRID
    crop = image[top : top + size, left : left + size]
    crop = np.rot90(crop, k=int(rng.integers(4)))
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop)


def make_patch_bank(
    images: list[np.ndarray],
    *,
    count: int,
    size: int,
    quality_range: tuple[int, int] | None = None,
    qualities: Sequence[int] | None = None,
    seed: int,
    share_444: float = 0.25,
) -> PatchBank:
    """Crop ``count`` patches of ``size`` from ``images`` and compress each at a quality drawn
    uniformly from ``quality_range`` (inclusive) or from the set ``qualities``; colour patches
    use 4:4:4 subsampling with probability ``share_444`` and 4:2:0 otherwise (Pillow's default)."""
    rng = np.random.default_rng(seed)
    channels = images[0].shape[2]
    clean = np.empty((count, channels, size, size), np.uint8)
    degraded = np.empty_like(clean)
    if qualities is not None:
        quality = rng.choice(qualities, size=count)
    else:
        quality = rng.integers(quality_range[0], quality_range[1] + 1, size=count)
    subsampling = []
    for i in range(count):
        crop = random_crop(images[int(rng.integers(len(images)))], size, rng)
        mode = "4:4:4" if channels == 3 and rng.random() < share_444 else "4:2:0"
        subsampling.append(mode)
        clean[i] = crop.transpose(2, 0, 1)
        degraded[i] = jpeg_roundtrip(crop, int(quality[i]), mode).transpose(2, 0, 1)
    return PatchBank(clean, degraded, quality, subsampling)


Bank = TypeVar("Bank")


def cached(path: Path, make: Callable[[], Bank], load: Callable[[Path], Bank]) -> Bank:
    """``load(path)`` when an earlier run saved the bank there, else ``make()`` saved there.

    Banks are pre-generated JPEG patches: compressing on the fly would cost CPU steps as much
    as the network does, and a resumed run gets exactly the same data.
    """
    if path.exists():
        return load(path)
    bank = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    bank.save(path)
    return bank
