"""QGCN's recipe: L1 on JPEG patches with their quantization maps, easy-hard transfer.

Stage ``small`` trains mostly the restoration branch on small patches; stage ``large``
fine-tunes on large crops so the global branch sees whole-image-like inputs, as it will at
restore time (NOTES.md: the public code's global branch only ever saw upscaled patches).
Defaults are sized for a 2-core CPU; the paper's values are in the comments.

Patches are compressed as real files are (:class:`jpegfix.data.CompressionMix`): qualities
1-100, IJG, scaled, perturbed and real-world tables, 4:2:0 / 4:2:2 / 4:4:4, and double
compression. The loss is relative by default: each patch's L1 divided by its JPEG's own L1,
so a quality-95 patch made worse costs as much as a quality-10 patch left unimproved
(plain L1 is dominated by the low qualities' large errors, and the network then learns
that smoothing is always safe: the shipped 5-60 model lost 1.8 dB at quality 95).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from jpegfix.data import (
    BLIND_AFTER_DECODING, CompressionMix, PatchBank, cached, jpeg_roundtrip, list_images, load_image, make_patch_bank,
    redrawn_banks, resize,
)
from jpegfix.metrics import psnr
from jpegfix.models import MODELS
from jpegfix.qmaps import build_qmaps, ijg_components
from jpegfix.train.recipe import RecipeData, Stage

VALIDATION_QUALITIES = (10, 20, 30, 40, 60, 80, 90, 95, 100)
HEADLINE_QUALITIES = (10, 20, 30, 40)
"""Averaged into ``psnr_gain``, the published tables' columns; the others watch for harm."""
HIGH_QUALITY_CASES = {f"q{q}" for q in VALIDATION_QUALITIES if q >= 90}
"""The validation cases behind ``worst_gain_q90_100``."""


@dataclass(frozen=True)
class QGCNConfig:
    model: str = "qgcn-color-s"
    # arch_args overrides for a variant of ``model`` (say, more residual blocks at full
    # resolution: {"down_blocks": [1, 1, 2, 6]}); the export's card records them.
    arch: dict | None = None
    # Paper: uniform in [1, 60], IJG tables. Here CompressionMix's defaults (see data.py);
    # quality_min / quality_max > 0 replace them with the old uniform IJG range.
    quality_min: int = 0
    quality_max: int = 0
    quality_bands: tuple = CompressionMix.quality_bands
    table_kinds: tuple = CompressionMix.table_kinds
    subsamplings: tuple = CompressionMix.subsamplings
    double_share: float = CompressionMix.double_share
    # Shares of clean, resized and off-grid patches (data.BLIND_AFTER_DECODING); None: those
    # shares for blind models (qgcn-unet-blind-*), none for table-guided ones.
    after_decoding: tuple | None = None
    jpeg_scale: float = 0.5  # training images stored as JPEG (BSDS500, q95) are halved first
    relative_loss: bool = True
    # 1: L1. 2: squared error, the quantity PSNR measures; for fine-tuning an L1-trained net
    # (L1 first converges faster and more robustly; MSE then aims at the bench's metric).
    loss_power: int = 1
    bank_patches: int = 24000  # pre-compressed 64 px patches per bank, or their area (memory: 0.6 GB colour)
    bank_passes: int = 1  # passes over a bank before a fresh one is drawn; 0: one bank (before 2026-12-03)
    small_size: int = 64  # paper: 64x64, batch 256
    small_batch: int = 16
    small_steps: int = 6000
    large_size: int = 256  # paper: 256x256, batch 32
    large_batch: int = 2
    large_steps: int = 1000
    lr: float = 5e-4  # paper: 1e-4, x0.1 every 20 epochs; cosine here (short runs)
    large_lr: float = 1e-4
    warmup_steps: int = 0  # small stage; 0: 2% of small_steps (the race's U-Net died on 54)
    share_444: float = 0.25
    val_images: int = 12
    seed: int = 0


class QGCNRecipe(RecipeData):
    method = "qgcn"

    def __init__(self, config: QGCNConfig, data: list[Path], val: list[Path], cache: Path):
        if config.loss_power not in (1, 2):
            raise ValueError(f"loss_power must be 1 (L1) or 2 (squared error), not {config.loss_power}")
        self.config = config
        self.spec = MODELS.get(config.model)
        self.data, self.val, self.cache = data, val, cache
        self.jpeg_scale = config.jpeg_scale
        self.mix = None if config.quality_min > 0 else CompressionMix(
            quality_bands=config.quality_bands, table_kinds=config.table_kinds,
            subsamplings=config.subsamplings, double_share=config.double_share,
        )
        if config.after_decoding is not None:
            self.after_decoding = tuple(map(tuple, config.after_decoding))
        else:
            self.after_decoding = () if self.spec.needs_tables else BLIND_AFTER_DECODING
        self._val_set: list[tuple[np.ndarray, np.ndarray, np.ndarray | None, str]] | None = None

    def build(self, ctx) -> dict[str, torch.nn.Module]:
        torch.manual_seed(self.config.seed)
        return {"net": self.spec.build(**self.arch_overrides("net"))}

    def arch_overrides(self, module: str) -> dict:
        """Settings that change the exported network's architecture (read by export)."""
        return dict(self.config.arch or {})

    def stages(self) -> list[Stage]:
        c = self.config
        return [
            Stage("small", c.small_steps, ["net"], c.lr, self._batches(c.small_size, c.small_batch, c.small_steps, 1), self._step,
                  warmup=c.warmup_steps),
            Stage("large", c.large_steps, ["net"], c.large_lr, self._batches(c.large_size, c.large_batch, c.large_steps, 2), self._step),
        ]

    def exports(self) -> dict[str, str]:
        return {"net": self.config.model}

    def card(self) -> dict:
        c = self.config
        if self.mix is None:
            compression = "Pillow (libjpeg-turbo) IJG tables, 4:2:0 with 4:4:4 for a share of colour patches"
            quality_range = [c.quality_min, c.quality_max]
        else:
            compression = (f"Pillow (libjpeg-turbo); quality bands (share, low, high) {list(map(list, c.quality_bands))}; "
                           f"tables {dict(c.table_kinds)}; subsampling {dict(c.subsamplings)}; "
                           f"double compression {c.double_share} (first quality {list(self.mix.first_quality)})")
            quality_range = [min(b[1] for b in c.quality_bands), max(b[2] for b in c.quality_bands)]
        after = {"after_decoding": dict(self.after_decoding)} if self.after_decoding else {}
        return {
            "quality_range": quality_range, **after,
            "loss": _loss_name(c),
            "encoder": compression,
            "clean_targets": f"images stored as JPEG scaled by {c.jpeg_scale} (Lanczos) before cropping",
            "stages": {"small": f"{c.small_steps} steps x {c.small_batch} patches of {c.small_size}px",
                       "large": f"{c.large_steps} steps x {c.large_batch} crops of {c.large_size}px"},
            "banks": f"{c.bank_patches} patches of 64px or their area in larger ones, {_redraws(c.bank_passes)}",
        }

    # -- data -------------------------------------------------------------------------

    def _batches(self, size: int, batch: int, steps: int, salt: int):
        def make(ctx):
            count = min(steps * batch, max(batch, self.config.bank_patches * 64 * 64 // (size * size)))
            # The bank's name carries its recipe, so a resumed run with a changed mix makes a new one.
            recipe = repr(self.mix) + (repr(self.after_decoding) if self.after_decoding else "")
            kind = f"mix{zlib.crc32(recipe.encode()):08x}" if self.mix is not None else "ijg"
            stem = f"bank-{kind}-{size}-{count}-{self.spec.channels}-{salt}"
            seed = self.config.seed + salt

            def path_of(round_: int) -> Path:
                return self.cache / (f"{stem}.npz" if round_ == 0 else f"{stem}-s{seed}-r{round_}.npz")

            def bank_of(round_: int, round_seed: int) -> PatchBank:
                if round_ > 1:  # later draws are kept only while they are walked (0.6 GB each)
                    path_of(round_ - 1).unlink(missing_ok=True)
                return cached(path_of(round_), lambda: make_patch_bank(
                    self.training_images(), count=count, size=size,
                    quality_range=(self.config.quality_min, self.config.quality_max),
                    seed=round_seed, share_444=self.config.share_444,
                    mix=self.mix, realworld=self._realworld_tables(), after_decoding=self.after_decoding,
                ), PatchBank.load)

            load = redrawn_banks(bank_of, count=count, batch=batch, passes=self.config.bank_passes,
                                 seed=seed, device=ctx.device)

            def batch_of(step: int):
                bank, (degraded, clean, indices) = load(step)
                if not self.spec.needs_tables:
                    return degraded, clean, None
                return degraded, clean, torch.from_numpy(bank.qmaps(indices)).to(ctx.device)

            return batch_of

        return make

    def _realworld_tables(self) -> list:
        weights = dict(self.config.table_kinds)
        if self.mix is None or not weights.get("realworld"):
            return []
        from jpegfix.table_sets import named

        return named("realworld")

    def _step(self, batch, ctx) -> dict[str, float]:
        degraded, clean, qmaps = batch
        with ctx.autocast():
            restored = ctx.net("net")(*self._inputs(degraded, qmaps))
            power = self.config.loss_power
            difference = restored.float() - clean
            errors = difference.abs().pow(power).mean(dim=(1, 2, 3))
            if self.config.relative_loss:
                # 0.5 grey level floor: a quality-100 patch's own error can be ~0
                baseline = (degraded - clean).abs().pow(power).mean(dim=(1, 2, 3)).clamp_min((0.5 / 255) ** power)
                loss = (errors / baseline).mean()
            else:
                loss = errors.mean()
        ctx.backward(loss, "net")
        return {"loss": loss.item(), "l1": difference.detach().abs().mean().item()}

    def _inputs(self, image: torch.Tensor, qmaps: torch.Tensor | None) -> tuple:
        """The network's arguments: blind models take the image alone."""
        return (image, qmaps) if self.spec.needs_tables else (image,)

    # -- validation -------------------------------------------------------------------

    def _validation_set(self):
        """(clean, input, maps, case) for whole held-out images (cropped to the 16-pixel grid,
        JPEG-stored ones halved like the training images): JPEGs at
        :data:`VALIDATION_QUALITIES` (IJG tables, 4:2:0), and for blind models also
        :data:`AFTER_DECODING_CASES`."""
        if self._val_set is None:
            self._val_set = []
            for path in list_images(self.val)[: self.config.val_images]:
                clean = load_image(path, self.spec.channels, self.config.jpeg_scale)
                h, w = clean.shape[0] // 16 * 16, clean.shape[1] // 16 * 16
                clean = np.ascontiguousarray(clean[:h, :w])
                for q in VALIDATION_QUALITIES:
                    jpeg = jpeg_roundtrip(clean, q)
                    maps = build_qmaps(ijg_components(q, self.spec.channels), h, w) if self.spec.needs_tables else None
                    self._val_set.append((clean, jpeg, maps, f"q{q}"))
                if not self.spec.needs_tables:
                    self._val_set += [(*after_decoding_case(clean, case), None, case) for case in AFTER_DECODING_CASES]
        return self._val_set

    def validate(self, ctx) -> dict[str, float]:
        net = ctx.modules["net"]
        gains: dict[str, list[float]] = {}
        for clean, degraded, maps, case in self._validation_set():
            x = torch.from_numpy(degraded.transpose(2, 0, 1)[None].copy()).float().to(ctx.device) / 255
            m = None if maps is None else torch.from_numpy(maps[None]).to(ctx.device)
            y = net(*self._inputs(x, m)).clamp(0, 1)
            out = (y[0].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
            # A clean input's "gain" is how close the output stays to it (capped: identical is inf).
            score = min(psnr(degraded, out), 99.0) if case == "clean" else psnr(clean, out) - psnr(clean, degraded)
            gains.setdefault(case, []).append(score)
        scores = {(f"gain_{c}" if c != "clean" else "clean_psnr"): float(np.mean(v)) for c, v in gains.items()}
        if "clean" in gains:
            scores["clean_psnr_min"] = float(min(gains.pop("clean")))
        headline = float(np.mean([scores[f"gain_q{q}"] for q in HEADLINE_QUALITIES]))
        high = [g for c, v in gains.items() if c in HIGH_QUALITY_CASES for g in v]
        return {"psnr_gain": headline, **scores, "worst_gain": float(min(min(v) for v in gains.values())),
                "worst_gain_q90_100": float(min(high)), "harmed_share": float(np.mean([g < 0 for v in gains.values() for g in v]))}


AFTER_DECODING_CASES = ("clean", "resized_q30", "resized_q90", "shifted_q30")
"""Blind models' extra validation: the clean image itself, quality-30 and 90 JPEGs resized by
0.75 after decoding, a quality-30 JPEG cropped by (3, 5) pixels after decoding."""


def after_decoding_case(clean: np.ndarray, case: str) -> tuple[np.ndarray, np.ndarray]:
    """(reference, input) of an :data:`AFTER_DECODING_CASES` case for ``clean``."""
    if case == "clean":
        return clean, clean
    kind, quality = case.split("_q")
    jpeg = jpeg_roundtrip(clean, int(quality))
    if kind == "resized":
        h, w = (round(side * 0.75) // 16 * 16 for side in clean.shape[:2])
        shrink = lambda a: np.ascontiguousarray(resize(a, 0.75)[:h, :w])
        return shrink(clean), shrink(jpeg)
    h, w = (side - 16 for side in clean.shape[:2])
    cut = lambda a: np.ascontiguousarray(a[3 : 3 + h, 5 : 5 + w])
    return cut(clean), cut(jpeg)


def _loss_name(config: QGCNConfig) -> str:
    name = "L1" if config.loss_power == 1 else "squared error"
    return f"{name} relative to the JPEG's own {name}, per patch" if config.relative_loss else name


def _redraws(passes: int) -> str:
    if passes == 0:
        return "one bank per stage, cycled"
    return "redrawn after each pass" if passes == 1 else f"redrawn after every {passes} passes"
