"""Tiny synthetic data sets and fake restorers for the benchmark tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

REPO = Path(__file__).resolve().parents[2]
SHARED_PEERS = (REPO / "../shared/peers").resolve()
SHARED_BENCH = (REPO / "../shared/data/bench").resolve()


def textured(rng: np.random.Generator, height: int, width: int, channels: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    base = 120 + 60 * np.sin(x / 6.0) * np.cos(y / 4.0)
    planes = np.stack([base + 20 * c for c in range(channels)], axis=-1)
    pixels = np.clip(planes + rng.normal(0, 12, planes.shape), 0, 255).astype(np.uint8)
    return pixels


def make_folder(folder: Path, count: int = 3, channels: int = 3, size: tuple[int, int] = (40, 56), seed: int = 0) -> Path:
    """``count`` lossless PNGs of (height, width) = ``size``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        pixels = textured(rng, size[0] + 8 * i, size[1], channels)
        Image.fromarray(pixels[..., 0] if channels == 1 else pixels).save(folder / f"img{i}.png")
    return folder


@dataclass(frozen=True)
class FakeSpec:
    name: str
    channels: int
    needs_tables: bool = True
    method: str = "fake"


@dataclass
class FakeRestorer:
    """Restorer contract stand-in: adds ``offset`` to every pixel (0: identity)."""

    name: str
    channels: int
    offset: int = 0
    fail_on: set = field(default_factory=set)
    calls: list = field(default_factory=list)
    needs_tables: bool = True

    def __post_init__(self) -> None:
        self.spec = FakeSpec(self.name, self.channels, self.needs_tables)
        self.card = {"name": self.name, "path": Path("/nowhere"), "score": np.float32(1.5)}
        self.device = torch.device("cpu")
        self.net = nn.Conv2d(self.channels, self.channels, 3, padding=1)

    def restore(self, pixels, components=None, tile=0):
        self.calls.append((pixels.shape, components))
        if pixels.shape[:2] in self.fail_on:
            raise RuntimeError("synthetic failure")
        with torch.inference_mode():
            self.net(torch.zeros(1, self.channels, *pixels.shape[:2]))
        return np.clip(pixels.astype(int) + self.offset, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class FakeTableSet:
    """The interface of ``jpegfix.table_sets`` entries: name, luma and chroma (8x8, natural order)."""

    name: str
    luma: np.ndarray
    chroma: np.ndarray | None = None


def fake_table_sets(sets: dict[str, list[FakeTableSet]]):
    """A stand-in ``jpegfix.table_sets`` module holding ``sets``, for ``monkeypatch.setitem(sys.modules, ...)``."""
    import types

    module = types.ModuleType("jpegfix.table_sets")
    module.NAMES = tuple(sets)
    module.named = lambda name: list(sets[name])
    return module
