"""QGCN's recipe: L1 on JPEG patches with their quantization maps, easy-hard transfer.

Stage ``small`` trains mostly the restoration branch on small patches; stage ``large``
fine-tunes on large crops so the global branch sees whole-image-like inputs, as it will at
restore time (NOTES.md: the public code's global branch only ever saw upscaled patches).
Defaults are sized for a 2-core CPU; the paper's values are in the comments.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from jpegfix.data import PatchBank, cached, jpeg_roundtrip, list_images, load_image, make_patch_bank
from jpegfix.metrics import psnr
from jpegfix.models import MODELS
from jpegfix.qmaps import build_qmaps, ijg_components
from jpegfix.train.recipe import RecipeData, Stage

VALIDATION_QUALITIES = (10, 20, 30, 40)


@dataclass(frozen=True)
class QGCNConfig:
    model: str = "qgcn-color-s"
    quality_min: int = 5  # paper: uniform in [1, 60]; 1-4 are rare and their huge errors dominate L1
    quality_max: int = 60
    small_size: int = 64  # paper: 64x64, batch 256
    small_batch: int = 16
    small_steps: int = 6000
    large_size: int = 256  # paper: 256x256, batch 32
    large_batch: int = 2
    large_steps: int = 1000
    lr: float = 5e-4  # paper: 1e-4, x0.1 every 20 epochs; cosine here (short runs)
    large_lr: float = 1e-4
    share_444: float = 0.25
    val_images: int = 6
    seed: int = 0


class QGCNRecipe(RecipeData):
    method = "qgcn"

    def __init__(self, config: QGCNConfig, data: list[Path], val: list[Path], cache: Path):
        self.config = config
        self.spec = MODELS.get(config.model)
        self.data, self.val, self.cache = data, val, cache
        self._val_set: list[tuple[np.ndarray, np.ndarray, np.ndarray, float]] | None = None

    def build(self, ctx) -> dict[str, torch.nn.Module]:
        torch.manual_seed(self.config.seed)
        return {"net": self.spec.build()}

    def stages(self) -> list[Stage]:
        c = self.config
        return [
            Stage("small", c.small_steps, ["net"], c.lr, self._batches(c.small_size, c.small_batch, c.small_steps, 1), self._step),
            Stage("large", c.large_steps, ["net"], c.large_lr, self._batches(c.large_size, c.large_batch, c.large_steps, 2), self._step),
        ]

    def exports(self) -> dict[str, str]:
        return {"net": self.config.model}

    def card(self) -> dict:
        c = self.config
        return {
            "quality_range": [c.quality_min, c.quality_max],
            "loss": "L1",
            "encoder": "Pillow (libjpeg-turbo), 4:2:0 with 4:4:4 for a share of colour patches",
            "stages": {"small": f"{c.small_steps} steps x {c.small_batch} patches of {c.small_size}px",
                       "large": f"{c.large_steps} steps x {c.large_batch} crops of {c.large_size}px"},
        }

    # -- data -------------------------------------------------------------------------

    def _batches(self, size: int, batch: int, steps: int, salt: int):
        def make(ctx):
            bank = cached(self.cache / f"bank-{size}-{steps * batch}-{self.spec.channels}-{salt}.npz", lambda: make_patch_bank(
                self.training_images(), count=steps * batch, size=size,
                quality_range=(self.config.quality_min, self.config.quality_max),
                seed=self.config.seed + salt, share_444=self.config.share_444,
            ), PatchBank.load)
            load = bank.loader(batch, self.config.seed + salt, ctx.device)

            def batch_of(step: int):
                degraded, clean, indices = load(step)
                return degraded, clean, torch.from_numpy(bank.qmaps(indices)).to(ctx.device)

            return batch_of

        return make

    def _step(self, batch, ctx) -> dict[str, float]:
        degraded, clean, qmaps = batch
        with ctx.autocast():
            restored = ctx.net("net")(degraded, qmaps)
            loss = F.l1_loss(restored.float(), clean)
        ctx.backward(loss, "net")
        return {"l1": loss.item()}

    # -- validation -------------------------------------------------------------------

    def _validation_set(self):
        """Whole held-out images (cropped to the 16-pixel grid) at qualities 10-40, 4:2:0."""
        if self._val_set is None:
            self._val_set = []
            for path in list_images(self.val)[: self.config.val_images]:
                clean = load_image(path, self.spec.channels)
                h, w = clean.shape[0] // 16 * 16, clean.shape[1] // 16 * 16
                clean = np.ascontiguousarray(clean[:h, :w])
                for q in VALIDATION_QUALITIES:
                    jpeg = jpeg_roundtrip(clean, q)
                    maps = build_qmaps(ijg_components(q, self.spec.channels), h, w)
                    self._val_set.append((clean, jpeg, maps, q))
        return self._val_set

    def validate(self, ctx) -> dict[str, float]:
        net = ctx.modules["net"]
        gains: dict[int, list[float]] = {q: [] for q in VALIDATION_QUALITIES}
        for clean, jpeg, maps, q in self._validation_set():
            x = torch.from_numpy(jpeg.transpose(2, 0, 1)[None].copy()).float().to(ctx.device) / 255
            m = torch.from_numpy(maps[None]).to(ctx.device)
            y = net(x, m).clamp(0, 1)
            out = (y[0].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
            gains[q].append(psnr(clean, out) - psnr(clean, jpeg))
        scores = {f"gain_q{q}": float(np.mean(v)) for q, v in gains.items()}
        return {"psnr_gain": float(np.mean(list(scores.values()))), **scores}
