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
from jpegfix.jpeg import ComponentTable
from jpegfix.qmaps import IJG_CHROMA, IJG_LUMA, SUBSAMPLING_BLOCKS, build_qmaps, estimate_quality, ijg_components, ijg_table

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
JPEG_SUFFIXES = {".jpg", ".jpeg"}
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


def load_image(path: Path, channels: int, jpeg_scale: float = 1.0) -> np.ndarray:
    """(H, W, C) uint8 array; grey images are Pillow's "L" (ITU-R 601 luma, full range).

    ``jpeg_scale`` < 1 shrinks images stored as JPEG files (Lanczos): BSDS500 ships as
    quality-95 JPEGs, and as clean targets their own 8x8 blocking would teach a network to
    keep q95 artifacts; halving the size averages that blocking away.
    """
    with Image.open(path) as image:
        image = image.convert("L" if channels == 1 else "RGB")
        if jpeg_scale < 1 and path.suffix.lower() in JPEG_SUFFIXES:
            size = (max(1, round(image.width * jpeg_scale)), max(1, round(image.height * jpeg_scale)))
            image = image.resize(size, Image.Resampling.LANCZOS)
        array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if channels == 1 else array


def jpeg_roundtrip(
    pixels: np.ndarray, quality: int | None = None, subsampling: str = "4:2:0",
    tables: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """Compress (H, W, C) uint8 with Pillow and decode it again: IJG tables at ``quality``,
    or the given 8x8 ``tables`` (natural order; luma, then chroma for colour)."""
    image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    buffer = io.BytesIO()
    if tables is None:
        image.save(buffer, format="JPEG", quality=int(quality), subsampling=subsampling)
    else:
        qtables = [np.asarray(t, dtype=np.int64).ravel().tolist() for t in tables[: 1 if pixels.shape[2] == 1 else 2]]
        image.save(buffer, format="JPEG", qtables=qtables, subsampling=subsampling)
    with Image.open(buffer) as decoded:
        array = np.asarray(decoded, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


@dataclass
class PatchBank:
    """Aligned (clean, compressed) patch pairs with the tables their JPEGs were written with."""

    clean: np.ndarray
    """(N, C, S, S) uint8."""
    degraded: np.ndarray
    """(N, C, S, S) uint8, the Pillow JPEG decoding of ``clean``."""
    quality: np.ndarray
    """(N,) int, the (IJG-equivalent) JPEG quality of each patch's last compression."""
    subsampling: list[str]
    tables: np.ndarray | None = None
    """(N, 2, 8, 8) luma and chroma tables of each patch's last compression (what its file
    would store); None means IJG tables at ``quality``."""

    def __len__(self) -> int:
        return len(self.quality)

    def components(self, index: int) -> list:
        """The component tables patch ``index`` was written with."""
        channels = self.clean.shape[1]
        if self.tables is None:
            return ijg_components(int(self.quality[index]), channels, self.subsampling[index])
        return components_of(self.tables[index], channels, self.subsampling[index])

    def qmaps(self, indices: np.ndarray) -> np.ndarray:
        """(B, K, S, S) float32 quantization maps of the selected patches."""
        size = self.clean.shape[-1]
        return np.stack([build_qmaps(self.components(int(i)), size, size) for i in indices])

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
        extra = {} if self.tables is None else {"tables": self.tables}
        np.savez(path, clean=self.clean, degraded=self.degraded, quality=self.quality,
                 subsampling=np.array(self.subsampling), **extra)

    @classmethod
    def load(cls, path: Path) -> "PatchBank":
        with np.load(path) as f:
            tables = f["tables"] if "tables" in f.files else None
            return cls(f["clean"], f["degraded"], f["quality"], [str(s) for s in f["subsampling"]], tables)


def components_of(tables: np.ndarray, channels: int, subsampling: str) -> list:
    """Component tables from a (2, 8, 8) luma/chroma pair on ``subsampling``'s chroma grid."""
    luma = ComponentTable(np.asarray(tables[0], dtype=np.int64), 8, 8)
    if channels == 1:
        return [luma]
    block_h, block_w = SUBSAMPLING_BLOCKS[subsampling]
    chroma = ComponentTable(np.asarray(tables[1], dtype=np.int64), block_h, block_w)
    return [luma, chroma, chroma]


@dataclass(frozen=True)
class CompressionMix:
    """How training patches are compressed, so that the network meets what real files hold.

    Every weight below is a probability share. Qualities come from ``quality_bands``
    (share, lowest, highest): weighted toward low qualities, where there is most to gain, with
    enough 61-100 that the network learns to leave good files nearly alone. Tables are IJG's,
    IJG's base scaled by a non-integer quality with plain rounding (``scaled``), IJG's with
    every entry jittered by up to about +-25% (``perturbed``), or real-world tables of cameras,
    phones and editors (``realworld``, :mod:`jpegfix.table_sets`). A ``double_share`` of
    patches is compressed twice on the same grid, first harder: the network is told only the
    last tables, as a re-saved web photo tells it.
    """

    quality_bands: tuple = ((0.5, 1, 60), (0.3, 61, 90), (0.2, 91, 100))
    table_kinds: tuple = (("ijg", 0.55), ("scaled", 0.15), ("perturbed", 0.15), ("realworld", 0.15))
    subsamplings: tuple = (("4:2:0", 0.6), ("4:4:4", 0.25), ("4:2:2", 0.15))
    double_share: float = 0.1
    first_quality: tuple = (5, 60)
    """IJG quality range of the first compression of double-compressed patches."""

    def draw(self, rng: np.random.Generator, channels: int, realworld: Sequence = ()) -> tuple:
        """(tables (2, 8, 8), quality, subsampling, first quality or 0) for one patch."""
        subsampling = _pick(rng, self.subsamplings) if channels == 3 else "4:2:0"
        kinds = [(k, w) for k, w in self.table_kinds if k != "realworld" or realworld]
        kind = _pick(rng, kinds)
        band = self.quality_bands[_pick_index(rng, [b[0] for b in self.quality_bands])]
        quality = int(rng.integers(band[1], band[2] + 1))
        if kind == "realworld":
            chosen = realworld[int(rng.integers(len(realworld)))]
            chroma = chosen.chroma if chosen.chroma is not None else chosen.luma
            tables = np.stack([chosen.luma, chroma])
            quality = estimate_quality(tables[0])[0]
        else:
            tables = np.stack([table_of(kind, quality, base, rng) for base in (IJG_LUMA, IJG_CHROMA)])
        first = 0
        if rng.random() < self.double_share:
            first = int(rng.integers(self.first_quality[0], self.first_quality[1] + 1))
        return tables.astype(np.uint16), quality, subsampling, first

    def compress(self, crop: np.ndarray, rng: np.random.Generator, realworld: Sequence = ()) -> tuple:
        """(decoded crop, tables, quality, subsampling) for one (H, W, C) uint8 crop."""
        tables, quality, subsampling, first = self.draw(rng, crop.shape[2], realworld)
        if first:
            crop = jpeg_roundtrip(crop, first, subsampling)
        return jpeg_roundtrip(crop, subsampling=subsampling, tables=tables), tables, quality, subsampling


BLIND_AFTER_DECODING = (("clean", 0.1), ("resized", 0.15), ("shifted", 0.1))
"""Shares of blind models' training patches that are not JPEGs as decoded (the rest are):
never compressed (input = target), decoded then resized by 0.5-1.0 (grid and tables gone),
decoded then cropped off the 8x8 grid. A blind model meets all of these in PNGs and
screenshots, and must leave them no worse (issue 12); one trained on aligned JPEGs alone
changes clean photos by 41 dB PSNR on average (cqr-color-s, LIVE1)."""

RESIZE_RANGE = (0.5, 1.0)


def degrade(kind: str, image: np.ndarray, size: int, rng: np.random.Generator, mix: CompressionMix,
            realworld: Sequence = ()) -> tuple:
    """(clean, degraded, tables, quality, subsampling) of one ``size`` patch of ``image``:
    ``jpeg`` as a file decodes, or ``clean`` / ``resized`` / ``shifted`` as
    :data:`BLIND_AFTER_DECODING` describes (the target is the clean crop put through the same
    resize or crop; tables and quality are those of the last compression, all-ones for clean)."""
    if kind == "clean":
        crop = random_crop(image, size, rng)
        return crop, crop, np.ones((2, 8, 8), np.uint16), 100, "4:4:4"
    if kind == "jpeg":
        crop = random_crop(image, size, rng)
        return (crop, *mix.compress(crop, rng, realworld))
    if kind == "shifted":
        crop = random_crop(image, size + 8, rng)
        decoded, tables, quality, subsampling = mix.compress(crop, rng, realworld)
        top, left = divmod(int(rng.integers(1, 64)), 8)  # any offset but (0, 0)
        cut = lambda a: np.ascontiguousarray(a[top : top + size, left : left + size])
        return cut(crop), cut(decoded), tables, quality, subsampling
    if kind == "resized":
        scale = float(rng.uniform(*RESIZE_RANGE))
        source = int(np.ceil(size / scale)) + 2
        crop = random_crop(image, source, rng)
        decoded, tables, quality, subsampling = mix.compress(crop, rng, realworld)
        shrink = lambda a: np.ascontiguousarray(resize(a, scale)[:size, :size])
        return shrink(crop), shrink(decoded), tables, quality, subsampling
    raise ValueError(f"unknown patch kind {kind!r}; known: jpeg, clean, resized, shifted")


def resize(pixels: np.ndarray, factor: float) -> np.ndarray:
    """(H, W, C) uint8 resized by ``factor`` (each side rounded, at least 8 pixels) with
    Pillow's bicubic filter (antialiased when shrinking), as an editor or a web service resizes
    a decoded photo. The bench's ``--resize`` and the blind models' training use this one."""
    height, width = pixels.shape[:2]
    size = (max(8, round(width * factor)), max(8, round(height * factor)))
    planes = [np.asarray(Image.fromarray(pixels[..., c]).resize(size, Image.Resampling.BICUBIC))
              for c in range(pixels.shape[2])]
    return np.stack(planes, axis=-1)


def table_of(kind: str, quality: int, base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An 8x8 table of ``kind`` (``ijg``, ``scaled``, ``perturbed``) around IJG ``quality``."""
    if kind == "ijg":
        return ijg_table(quality, base)
    if kind == "scaled":
        q = float(np.clip(quality + rng.uniform(-0.5, 0.5), 1, 100))
        scale = (50 / q) if q < 50 else (2 - q / 50)
        return np.clip(np.round(base * scale), 1, 255).astype(np.int64)
    if kind == "perturbed":
        jitter = np.exp(rng.uniform(-0.25, 0.25, size=(8, 8)))
        return np.clip(np.round(ijg_table(quality, base) * jitter), 1, 255).astype(np.int64)
    raise ValueError(f"unknown table kind {kind!r}; known: ijg, scaled, perturbed, realworld")


def _pick_index(rng: np.random.Generator, weights: Sequence[float]) -> int:
    weights = np.asarray(weights, dtype=np.float64)
    return int(rng.choice(len(weights), p=weights / weights.sum()))


def _pick(rng: np.random.Generator, choices: Sequence[tuple]) -> str:
    """The name of one (name, weight) pair, drawn by weight."""
    return choices[_pick_index(rng, [w for _, w in choices])][0]


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
    mix: CompressionMix | None = None,
    realworld: Sequence = (),
    after_decoding: Sequence[tuple[str, float]] = (),
) -> PatchBank:
    """Crop ``count`` patches of ``size`` from ``images`` and compress each at a quality drawn
    uniformly from ``quality_range`` (inclusive) or from the set ``qualities``; colour patches
    use 4:4:4 subsampling with probability ``share_444`` and 4:2:0 otherwise (Pillow's default).
    With ``mix``, each patch is compressed as :class:`CompressionMix` draws instead (tables,
    qualities, subsamplings, double compression; ``realworld`` are its real-world tables) and
    ``after_decoding`` shares of the patches are clean, resized or shifted (:func:`degrade`)."""
    rng = np.random.default_rng(seed)
    channels = images[0].shape[2]
    clean = np.empty((count, channels, size, size), np.uint8)
    degraded = np.empty_like(clean)
    if mix is not None:
        return _mixed_bank(images, clean, degraded, rng, mix, realworld, after_decoding)
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


def _mixed_bank(images, clean, degraded, rng, mix: CompressionMix, realworld, after_decoding=()) -> PatchBank:
    count, size = len(clean), clean.shape[-1]
    kinds = [("jpeg", 1 - sum(share for _, share in after_decoding)), *after_decoding]
    tables = np.empty((count, 2, 8, 8), np.uint16)
    quality = np.empty(count, np.int64)
    subsampling = []
    for i in range(count):
        image = images[int(rng.integers(len(images)))]
        kind = _pick(rng, kinds) if after_decoding else "jpeg"
        crop, decoded, tables[i], quality[i], mode = degrade(kind, image, size, rng, mix, realworld)
        subsampling.append(mode)
        clean[i] = crop.transpose(2, 0, 1)
        degraded[i] = decoded.transpose(2, 0, 1)
    return PatchBank(clean, degraded, quality, subsampling, tables)


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


def redrawn_banks(bank_of: Callable[[int, int], PatchBank], *, count: int, batch: int, passes: int,
                  seed: int, device) -> Callable[[int], tuple[PatchBank, tuple]]:
    """``load(step)`` -> (bank, (degraded, clean, indices)) over a series of banks of ``count``
    patches: bank ``r`` is ``bank_of(r, its seed)`` (``seed`` for the first), walked in a shuffle
    of that seed ``passes`` times, then replaced by the next (``passes`` 0: one bank for the
    whole stage).

    Why: a bank holds a few thousand patches, and a network of ten million parameters learns
    them by heart. The medium U-Nets saw one fixed bank of 6000 patches for 50000 steps over
    three resumptions and their validation gain stalled near +1.1 dB; a fresh draw (new
    crops, qualities, tables) costs about 4 ms a patch, a few percent of the steps it feeds.
    """
    steps_per_bank = max(1, passes * count // batch) if passes > 0 else None
    current: dict = {}

    def load(step: int) -> tuple[PatchBank, tuple]:
        round_ = step // steps_per_bank if steps_per_bank else 0
        if current.get("round") != round_:
            round_seed = seed + 7919 * round_
            bank = bank_of(round_, round_seed)
            current.update(round=round_, bank=bank, load=bank.loader(batch, round_seed, device))
        return current["bank"], current["load"](step)

    return load
