"""The CQR method's recipe: stage ``ranker``, then stage ``deblock``.

Stage ``ranker`` trains the Siamese :class:`CQRRanker` on crops that each come at
``ranker_per_crop`` different quality levels (the quality range split into ``levels`` equal
levels, one quality drawn inside each chosen level). Every pair of versions of one crop is a
ranking pair, as in the paper (margin ranking loss, margin 0.5). As an addition, pairs of
*different* crops whose levels are at least ``cross_gap`` apart are ranked too (weight
``cross_weight``): the paper's pairs only teach the order within one content, while the
quality readout and the Spearman target compare scores across images. At each validation
the ranker is scored on held-out images (Spearman of score vs quality, 5..95) and its
calibration table is measured on training images and written into its weights.

Stage ``deblock`` trains :class:`CQRNet` with the ranker frozen in eval mode: loss L1 +
alpha * sigmoid(-score(output)) + beta * feature matching (the L1 between the ranker's ten
feature maps of output and ground truth, each a mean over its elements, summed). With
``ranker_losses=false`` the loss is L1 alone on the same data and steps (the ablation), and
no ranker is trained or exported. ``ranker_weights`` reuses a trained ranker (for example
the one exported with ``cqr-color-s`` when training ``cqr-color-paper``) instead of training one.

Data for both stages are pre-generated banks of uint8 patches, so CPU steps are
network-bound. Defaults are sized for one CPU thread. Measured with ``cqr-color-s`` on a
2-core machine with two other trainings running (one thread each): 0.34 s per ranker step,
0.36 s per deblock step (0.33 s with L1 only), about 15 s per ranker validation (probe and
calibration) and 4 s per deblock validation; 2400 + 6000 steps come to about 15 + 38
minutes. The deblock bank holds steps x batch patches (1.2 GB for colour at the defaults).
The paper's values are in the comments.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jpegfix.data import PatchBank, cached, jpeg_roundtrip, list_images, load_image, make_patch_bank, random_crop
from jpegfix.models import MODELS
from jpegfix.train.recipe import RecipeData, Stage
from jpegfix.train.validation import blind_gains



@dataclass(frozen=True)
class CQRConfig:
    model: str = "cqr-color-s"
    ranker: str = ""  # ranker spec; "" = cqr-ranker-<colour of model>
    ranker_weights: str = ""  # a trained ranker's .safetensors: no stage ranker, ranker not exported
    share_444: float = 0.25  # colour samples compressed with 4:4:4 (else Pillow's 4:2:0)
    # Stage "ranker". Paper §4.1: qualities 1..30 in 3 levels ([1,10], [11,20], [21,30]),
    # Adam 1e-4 halved every 1e5 iterations. Real photos span far more qualities: 5..95 in 9 levels.
    quality_min: int = 5
    quality_max: int = 95
    levels: int = 9
    ranker_per_crop: int = 3  # versions of one crop, at distinct levels: 3 ranking pairs
    margin: float = 0.5  # paper §4.2
    cross_gap: int = 2
    cross_weight: float = 0.5
    ranker_steps: int = 2400
    ranker_batch: int = 8  # crops per step (x ranker_per_crop images)
    ranker_bank: int = 3000  # crops in the bank; batches add flips and 90-degree turns
    ranker_lr: float = 5e-4
    calibration_images: int = 12  # training images scored at each calibration quality
    # Stage "deblock". Paper: qualities 10, 20, 30; Adam 1e-4 halved every 1e5 iterations.
    deblock_quality_min: int = 5
    deblock_quality_max: int = 90
    deblock_steps: int = 6000
    deblock_batch: int = 8
    deblock_size: int = 64
    deblock_lr: float = 5e-4
    ranker_losses: bool = True
    alpha: float = 0.01  # paper §4.1: quality loss weight
    beta: float = 0.9  # paper §4.1: feature matching weight
    # The paper's alpha and beta weigh the ranker losses against an L1 on 0..255 pixel values
    # (its ablation: L_Q moves PSNR by hundredths of a dB); our L1 is on 0..1, so the ranker
    # terms are divided by this. 1 takes alpha and beta literally: measured on CPU, the
    # feature term is then about 60x the L1 and PSNR drops (-0.5 dB after 200 steps where L1
    # alone gains +0.15 dB).
    pixel_range: float = 255.0
    val_images: int = 6
    val_crop: int = 256
    seed: int = 0


def quality_levels(low: int, high: int, levels: int) -> list[tuple[int, int]]:
    """``levels`` contiguous, (nearly) equal, inclusive quality ranges covering low..high."""
    edges = np.round(np.linspace(low, high + 1, levels + 1)).astype(int)
    if len(set(edges.tolist())) != len(edges):
        raise ValueError(f"cannot split qualities {low}..{high} into {levels} levels")
    return [(int(a), int(b) - 1) for a, b in zip(edges[:-1], edges[1:])]


@dataclass
class RankBank:
    """Ranker-stage samples: one crop at several quality levels."""

    crops: np.ndarray
    """(N, K, C, S, S) uint8: crop i compressed at K different levels."""
    quality: np.ndarray
    """(N, K) JPEG quality of each version."""
    level: np.ndarray
    """(N, K) level index (0 = worst) of each version."""

    def __len__(self) -> int:
        return len(self.quality)

    def save(self, path: Path) -> None:
        np.savez(path, crops=self.crops, quality=self.quality, level=self.level)

    @classmethod
    def load(cls, path: Path) -> "RankBank":
        with np.load(path) as f:
            return cls(f["crops"], f["quality"], f["level"])


def make_rank_bank(
    images: list[np.ndarray], *, count: int, size: int, levels: list[tuple[int, int]], per_crop: int, seed: int,
    share_444: float,
) -> RankBank:
    """``count`` crops of ``size``, each compressed at ``per_crop`` distinct random levels
    (a random quality inside each), all versions of a crop with the same subsampling."""
    if per_crop < 2 or per_crop > len(levels):
        raise ValueError(f"ranker_per_crop must be between 2 and levels ({len(levels)})")
    rng = np.random.default_rng(seed)
    channels = images[0].shape[2]
    crops = np.empty((count, per_crop, channels, size, size), np.uint8)
    level = np.stack([np.sort(rng.choice(len(levels), size=per_crop, replace=False)) for _ in range(count)])
    quality = np.array([[rng.integers(levels[l][0], levels[l][1] + 1) for l in row] for row in level])
    for i in range(count):
        crop = random_crop(images[int(rng.integers(len(images)))], size, rng)
        mode = "4:4:4" if channels == 3 and rng.random() < share_444 else "4:2:0"
        for k in range(per_crop):
            crops[i, k] = jpeg_roundtrip(crop, int(quality[i, k]), mode).transpose(2, 0, 1)
    return RankBank(crops, quality, level)


def ranking_loss(
    scores: torch.Tensor, levels: torch.Tensor, content: torch.Tensor, *, margin: float, cross_gap: int,
    cross_weight: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Margin ranking loss over all ordered pairs of a batch; returns (loss, pair accuracy).

    For images i, j with level_i < level_j the hinge max(0, s_i - s_j + margin) (paper eq. 2)
    is averaged over the paper's pairs (same ``content``) and, times ``cross_weight``, over
    pairs of different content at least ``cross_gap`` levels apart. The accuracy is the share
    of same-content pairs scored in the right order.
    """
    better = levels[None, :] > levels[:, None]  # [i, j]: j has the better quality
    same = content[None, :] == content[:, None]
    hinge = F.relu(scores[:, None] - scores[None, :] + margin)
    pairs = better & same
    loss = hinge[pairs].mean()
    cross = better & ~same & (levels[None, :] - levels[:, None] >= cross_gap)
    if cross_weight and cross.any():
        loss = loss + cross_weight * hinge[cross].mean()
    accuracy = (scores[None, :] > scores[:, None])[pairs].float().mean()
    return loss, accuracy


def feature_matching(restored: list[torch.Tensor], clean: list[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of the mean absolute difference of feature maps (paper eq. 5: each
    layer's L1 divided by its element count)."""
    return sum(F.l1_loss(a, b) for a, b in zip(restored, clean))


def dihedral(x: torch.Tensor, index: int) -> torch.Tensor:
    """One of the 8 flips/90-degree turns of (..., H, W) square crops (multiples of 8 keep the
    JPEG block grid on the grid)."""
    x = torch.rot90(x, index % 4, dims=(-2, -1))
    return x.flip(-1) if index >= 4 else x


class CQRRecipe(RecipeData):
    method = "cqr"

    def __init__(self, config: CQRConfig, data: list[Path], val: list[Path], cache: Path):
        self.config = config
        self.spec = MODELS.get(config.model)
        if self.spec.method != self.method or self.spec.role != "restorer":
            raise ValueError(f"{config.model} is not a CQR deblocker")
        colour = "color" if self.spec.channels == 3 else "gray"
        self.ranker_spec = MODELS.get(config.ranker or f"cqr-ranker-{colour}")
        if self.ranker_spec.role != "ranker" or self.ranker_spec.channels != self.spec.channels:
            raise ValueError(f"{self.ranker_spec.name} is not a {colour} CQR ranker")
        self.levels = quality_levels(config.quality_min, config.quality_max, config.levels)
        self.data, self.val, self.cache = data, val, cache
        self.current = "ranker"
        self._val_images: list[np.ndarray] | None = None

    @property
    def trains_ranker(self) -> bool:
        """A ranker is trained here when the loss needs one and none is given."""
        return self.config.ranker_losses and not self.config.ranker_weights

    def build(self, ctx) -> dict[str, nn.Module]:
        torch.manual_seed(self.config.seed)
        net, ranker = self.spec.build(), self.ranker_spec.build()
        if self.config.ranker_weights:
            from safetensors.torch import load_file

            ranker.load_state_dict(load_file(self.config.ranker_weights))
        return {"net": net, "ranker": ranker}

    def stages(self) -> list[Stage]:
        c = self.config
        deblock = Stage("deblock", c.deblock_steps, ["net"], c.deblock_lr, self._deblock_batches, self._deblock_step,
                        frozen=["ranker"])
        if not self.trains_ranker:
            return [deblock]
        return [Stage("ranker", c.ranker_steps, ["ranker"], c.ranker_lr, self._ranker_batches, self._ranker_step), deblock]

    def exports(self) -> dict[str, str]:
        exports = {"net": self.config.model}
        if self.trains_ranker:
            exports["ranker"] = self.ranker_spec.name
        return exports

    def stage_of(self, module: str) -> str:
        """The stage that trains ``module`` (export skips modules whose stage has not run)."""
        return "ranker" if module == "ranker" else "deblock"

    def card(self) -> dict:
        c = self.config
        if c.ranker_losses:
            loss = (f"L1 + ({c.alpha} x sigmoid(-score) + {c.beta} x ranker feature matching over 10 layers) / "
                    f"{c.pixel_range:g} (the paper's weights against an L1 on 0..{c.pixel_range:g})")
        else:
            loss = "L1 only (ablation: no ranker losses)"
        ranker = {"trained_here": self.trains_ranker, "weights": c.ranker_weights or None, "model": self.ranker_spec.name,
                  "levels": [list(level) for level in self.levels], "crops_per_sample": c.ranker_per_crop,
                  "loss": f"margin ranking, margin {c.margin}; same-content pairs + {c.cross_weight} x cross-content "
                          f"pairs at least {c.cross_gap} levels apart",
                  "calibration": "median readout score of training images at known qualities, in the ranker weights"}
        return {
            "quality_range": [c.deblock_quality_min, c.deblock_quality_max],
            "loss": loss,
            "ranker": ranker if c.ranker_losses else None,
            "attention": "non-local attention within 16x16-pixel windows on the tiling grid",
            "encoder": "Pillow (libjpeg-turbo), 4:2:0 with 4:4:4 for a share of colour samples",
            "stages": {"ranker": f"{c.ranker_steps} steps x {c.ranker_batch} crops at {c.ranker_per_crop} levels"
                                 if self.trains_ranker else "skipped",
                       "deblock": f"{c.deblock_steps} steps x {c.deblock_batch} patches of {c.deblock_size}px"},
        }

    # -- data -------------------------------------------------------------------------

    def _ranker_batches(self, ctx):
        self.current = "ranker"
        c = self.config
        size = ctx.modules["ranker"].crop
        name = (f"rank-{size}-{c.ranker_bank}-{self.spec.channels}-{c.quality_min}-{c.quality_max}-{c.levels}"
                f"-{c.ranker_per_crop}-{c.seed}.npz")
        bank = cached(self.cache / name, lambda: make_rank_bank(
            self.training_images(), count=c.ranker_bank, size=size, levels=self.levels, per_crop=c.ranker_per_crop,
            seed=c.seed + 1, share_444=c.share_444), RankBank.load)
        order = np.random.default_rng(c.seed + 1).permutation(len(bank))

        def batch_of(step: int):
            indices = order[(np.arange(c.ranker_batch) + step * c.ranker_batch) % len(bank)]
            crops = torch.from_numpy(bank.crops[indices]).to(ctx.device).float() / 255
            # Each pass over the bank sees its crops turned or flipped another way.
            crops = dihedral(crops.flatten(0, 1), (step // max(1, len(bank) // c.ranker_batch)) % 8)
            levels = torch.from_numpy(bank.level[indices]).flatten().to(ctx.device)
            content = torch.arange(len(indices), device=ctx.device).repeat_interleave(c.ranker_per_crop)
            return crops, levels, content

        return batch_of

    def _ranker_step(self, batch, ctx) -> dict[str, float]:
        crops, levels, content = batch
        with ctx.autocast():
            scores = ctx.net("ranker")(crops).float()
        c = self.config
        loss, accuracy = ranking_loss(scores, levels, content, margin=c.margin, cross_gap=c.cross_gap,
                                      cross_weight=c.cross_weight)
        ctx.backward(loss, "ranker")
        return {"rank_loss": loss.item(), "pair_accuracy": accuracy.item()}

    def _deblock_batches(self, ctx):
        self.current = "deblock"
        c = self.config
        count = c.deblock_steps * c.deblock_batch
        name = (f"deblock-{c.deblock_size}-{count}-{self.spec.channels}-{c.deblock_quality_min}-{c.deblock_quality_max}"
                f"-{c.seed}.npz")
        bank = cached(self.cache / name, lambda: make_patch_bank(
            self.training_images(), count=count, size=c.deblock_size,
            quality_range=(c.deblock_quality_min, c.deblock_quality_max), seed=c.seed + 2, share_444=c.share_444),
            PatchBank.load)
        load = bank.loader(c.deblock_batch, c.seed + 2, ctx.device)
        return lambda step: load(step)[:2]

    def _deblock_step(self, batch, ctx) -> dict[str, float]:
        degraded, clean = batch
        c = self.config
        with ctx.autocast():
            restored = ctx.net("net")(degraded).float()
        l1 = F.l1_loss(restored, clean)
        if not c.ranker_losses:
            ctx.backward(l1, "net")
            return {"l1": l1.item()}
        ranker = ctx.modules["ranker"]  # frozen, eval mode: gradients flow through it to the net only
        with ctx.autocast():
            restored_features = ranker.features(restored)
            quality = torch.sigmoid(-ranker.score(restored_features).float()).mean()
            with torch.no_grad():
                clean_features = ranker.features(clean)
            features = feature_matching([f.float() for f in restored_features], [f.float() for f in clean_features])
        ctx.backward(l1 + (c.alpha * quality + c.beta * features) / c.pixel_range, "net")
        return {"l1": l1.item(), "quality": quality.item(), "features": features.item()}

    # -- validation -------------------------------------------------------------------

    def _held_out(self) -> list[np.ndarray]:
        if self._val_images is None:
            self._val_images = [load_image(p, self.spec.channels) for p in list_images(self.val)[: self.config.val_images]]
        return self._val_images

    def _centre_crops(self) -> list[np.ndarray]:
        """Held-out images centre-cropped to ``val_crop`` on the 16-pixel grid."""
        side, crops = self.config.val_crop, []
        for image in self._held_out():
            top = max(0, (image.shape[0] - side) // 32 * 16)
            left = max(0, (image.shape[1] - side) // 32 * 16)
            crop = image[top : top + side, left : left + side]
            h, w = crop.shape[0] // 16 * 16, crop.shape[1] // 16 * 16
            crops.append(np.ascontiguousarray(crop[:h, :w]))
        return crops

    def validate(self, ctx) -> dict[str, float]:
        if self.current == "ranker":
            return self._validate_ranker(ctx)
        return self._validate_deblock(ctx)

    def _validate_ranker(self, ctx) -> dict[str, float]:
        """Spearman of score vs quality 5..95 on held-out images; then (re)calibrate the ranker
        on training images, so the table saved with the last checkpoint of the stage is the
        final ranker's."""
        from jpegfix.bench.ranker_probe import probe_ranker
        from jpegfix.quality import calibrate

        ranker = ctx.modules["ranker"]
        images = self.training_images()
        step = max(1, len(images) // self.config.calibration_images)
        table = calibrate(ranker, images[::step][: self.config.calibration_images], ranker.calibration_qualities)
        ranker.calibration_scores.copy_(torch.from_numpy(table).to(ranker.calibration_scores))
        result = probe_ranker(ranker, self._held_out())
        mae = result.quality_mae if result.quality_mae is not None else float("nan")
        return {"spearman": result.spearman, "per_image_spearman": result.per_image_spearman, "quality_mae": mae}

    def _validate_deblock(self, ctx) -> dict[str, float]:
        return blind_gains(ctx.modules["net"], self._centre_crops(), ctx.device)
