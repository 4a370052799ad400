"""One-to-Many's recipe: stage ``proposal`` (no discriminator), then stage ``adversarial``.

The measurement component (paper §3.3) is three losses on the proposal network's output:

* perceptual: mean squared difference of a feature network's high-level features of output
  and original (:mod:`jpegfix.train.perceptual`; by default the project's own CQR ranker,
  layers 3 and 7, stride 4 and 16; ``vgg16=FILE`` uses VGG16's relu5_3 as the paper does);
* naturalness: -log D(output), D the discriminator of the paper's Table 1;
* JPEG: squared excess, in quantization steps, of the output's DCT coefficients outside the
  intervals of the input file's quantized coefficients k, read with jpeglib
  (:func:`jpegfix.dct.jpeg_loss`). The paper applies it to block-aligned patches only;
  every training patch here is a whole JPEG of its own (a crop compressed by itself), so all
  are aligned and the loss always applies.

Three departures from the paper, all measured (CPU runs, validation on held-out crops):
with the ranker as feature network the perceptual loss alone drew red lines along the block
rows, because the ranker, trained on block-aligned crops, weighs block rows in its
gradient (the gradient of its features is 1.27x the mean on block-boundary rows, flat across
columns); it left PSNR 1.0 dB under the JPEG. Showing it output and original cropped at a
random offset (``random_phase``) removed the lines; an L1 pixel term (``pixel_weight`` 1,
the paper has none: its VGG features pin colours down better than a ranker does) held PSNR
at -0.8 dB after 300 steps where the losses without it stood at -1.1 dB. Third, the
perceptual weight is 0.01, not 1: ranker features still pull against the photo, and at
weight 0.1 the network sat at the JPEG (+0.05 dB after the 4000-step proposal stage, blocks
kept, with a working discriminator -0.48 dB at the end) where at 0.01 it reached +0.57 dB
and then removed the blocks while adding grain. That L1, on every candidate, also pulled
the candidates together (0.3 grey levels apart): ``pixel_on_mean`` puts it on the mean of
two candidates per patch, and ``diversity_weight`` rewards their difference up to a cap;
1000 steps of both on top of the run above gave 4-5 grey levels (``examples/candidates.png``).
The mean alone did nothing for diversity (0.28 -> 0.31 in 1000 steps).

Stage ``proposal`` is the paper's first epoch: perceptual + JPEG (+ L1), the discriminator
neither trained nor used, plain Adam. Stage ``adversarial`` alternates one discriminator
step (binary cross entropy, originals 1, outputs 0, both in one batch: see :func:`judge`)
and one proposal step (all losses), Adam with beta1 = 0.5 as in DCGAN, which the paper
follows.

One model for qualities ``quality_min..quality_max`` conditioned on the tables (QGCN's maps)
rather than one per quality (see :mod:`jpegfix.models.one_to_many`). The numbers the
paper's text lost are chosen here and written into the card (field comments say why).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jpegfix.data import PatchBank, cached, list_images, load_image, random_crop
from jpegfix.dct import jpeg_loss, share_inside
from jpegfix.jpeg import ComponentTable, compress_with_coefficients
from jpegfix.metrics import psnr
from jpegfix.models import MODELS
from jpegfix.models.one_to_many import Discriminator
from jpegfix.qmaps import build_qmaps
from jpegfix.train.perceptual import RankerFeatures, VGG16Features, perceptual_loss
from jpegfix.train.recipe import RecipeData, Stage

VALIDATION_QUALITIES = (10, 30, 50)


@dataclass(frozen=True)
class OneToManyConfig:
    model: str = "one-to-many-color-s"
    shift_average: bool = True  # false trains the paper's §4.4 ablation (plain deconvolution)
    # Perceptual feature network: the CQR ranker (shipped weights, or ranker_weights=FILE),
    # or VGG16 from a user's state dict (vgg16=FILE), as in the paper.
    ranker: str = ""  # "" = cqr-ranker-<colour of model>
    ranker_weights: str = ""
    feature_layers: tuple[int, ...] = (3, 7)  # ranker layers: stride 4 (block detail) and 16 (like relu5_x)
    vgg16: str = ""
    # Data: Pillow JPEGs, 4:2:0 for colour (what cameras and the web write).
    quality_min: int = 10  # the paper trains single qualities 5, 10, 20
    quality_max: int = 60
    patch: int = 64  # lost in the text; 64 keeps a CPU step near half a second
    batch: int = 8  # paper: 64 per GPU on two GPUs
    bank: int = 16000  # pre-compressed patches, cycled
    # Stages. The paper trains "for [lost] epochs", the first without D.
    proposal_steps: int = 4000  # the L1-dominated start needs QGCN-like lengths to deblock
    adversarial_steps: int = 3000
    lr: float = 2e-4  # stage adversarial: the paper's, after DCGAN: Adam 2e-4, beta1 0.5
    beta1: float = 0.5
    # Stage proposal has no discriminator, so no GAN's reasons for a small step and little
    # momentum: plain Adam at QGCN's rate. Measured (2000 steps, L1 only): +0.60 dB on the
    # validation crops, where 2e-4 / 0.5 left the network at the JPEG (+0.05 at 400 steps).
    proposal_lr: float = 5e-4
    proposal_beta1: float = 0.9
    jpeg_weight: float = 1.0  # the paper's lambda values were lost: chosen so that the JPEG
    # term (mean squared excess in quantization steps) keeps >95% of luma coefficients inside
    adversarial_weight: float = 0.01  # SRGAN used 1e-3 against a VGG loss ~10x larger than ours
    # Not in the paper: an L1 between output and original after pixel_scale x pixel_scale
    # averaging (1 = plain L1; 0 weight = off). See the module docstring for why.
    pixel_weight: float = 1.0
    pixel_scale: int = 1
    # Each patch gets two candidates (two noise maps) and the L1 compares their mean with the
    # original: the pixel anchor then fixes the average, not every candidate, so they are
    # free to differ where the other losses allow. Costs a second generator pass.
    pixel_on_mean: bool = False
    # With pixel_on_mean: reward the two candidates for differing, up to diversity_cap grey
    # levels per pixel (mean absolute difference, capped so the JPEG loss and D, not this
    # term, decide how far past that texture may go). 0 = off.
    diversity_weight: float = 0.0
    diversity_cap: float = 4.0
    perceptual_weight: float = 0.01  # see the module docstring
    random_phase: bool = True  # feature network sees output and original cropped at a random
    # offset: the ranker was trained on block-aligned crops and its gradient singles out block rows
    val_images: int = 4
    val_crop: int = 192
    seed: int = 0


@dataclass
class CoefficientBank:
    """Training patches with what their JPEG files store: pixels (a :class:`PatchBank`),
    quantized coefficients and tables."""

    patches: PatchBank
    luma: np.ndarray
    """(N, S/8, S/8, 8, 8) int16 luma coefficients k."""
    chroma: np.ndarray
    """(N, 2, S/16, S/16, 8, 8) int16 Cb, Cr coefficients (4:2:0); (N, 0) for grey."""
    tables: np.ndarray
    """(N, T, 8, 8) int32: per component its table (T = 1 grey, 3 colour)."""

    def __len__(self) -> int:
        return len(self.patches)

    def save(self, path: Path) -> None:
        p = self.patches
        np.savez(path, clean=p.clean, degraded=p.degraded, quality=p.quality, subsampling=np.array(p.subsampling),
                 luma=self.luma, chroma=self.chroma, tables=self.tables)

    @classmethod
    def load(cls, path: Path) -> "CoefficientBank":
        with np.load(path) as f:
            patches = PatchBank(f["clean"], f["degraded"], f["quality"], [str(s) for s in f["subsampling"]])
            return cls(patches, f["luma"], f["chroma"], f["tables"])


def make_coefficient_bank(images: list[np.ndarray], *, count: int, size: int, quality_range: tuple[int, int],
                          seed: int) -> CoefficientBank:
    """``count`` crops of ``size`` (a multiple of 16), each compressed by itself with Pillow at
    a uniform random quality (4:2:0 for colour) and read back with jpeglib."""
    rng = np.random.default_rng(seed)
    channels = images[0].shape[2]
    clean = np.empty((count, channels, size, size), np.uint8)
    degraded = np.empty_like(clean)
    quality = rng.integers(quality_range[0], quality_range[1] + 1, size=count)
    luma = np.empty((count, size // 8, size // 8, 8, 8), np.int16)
    chroma = np.empty((count, 2, size // 16, size // 16, 8, 8) if channels == 3 else (count, 0), np.int16)
    tables = np.empty((count, channels, 8, 8), np.int32)
    for i in range(count):
        crop = random_crop(images[int(rng.integers(len(images)))], size, rng)
        sample = compress_with_coefficients(crop, int(quality[i]))
        clean[i], degraded[i] = crop.transpose(2, 0, 1), sample.decoded.transpose(2, 0, 1)
        luma[i] = sample.quantized[0]
        if channels == 3:
            chroma[i] = np.stack(sample.quantized[1:])
        tables[i] = np.stack([c.table for c in sample.components])
    subsampling = ["4:2:0" if channels == 3 else ""] * count
    return CoefficientBank(PatchBank(clean, degraded, quality, subsampling), luma, chroma, tables)


def component_list(tables: np.ndarray) -> list[ComponentTable]:
    """ComponentTables of one bank patch (4:2:0 chroma footprints for colour)."""
    return [ComponentTable(t, 8 if i == 0 else 16, 8 if i == 0 else 16) for i, t in enumerate(tables)]


def judge(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """D's logits for originals and outputs from one forward over both. Every conv of the
    discriminator but the last is followed by BatchNorm; a batch of originals alone and a
    batch of outputs alone would each be normalised to the same per-channel mean and spread,
    which removes the very difference D must see (measured: D loss stayed at 2 ln 2 for 1000
    steps). One mixed batch keeps it."""
    logits = disc(torch.cat([real, fake]))
    return logits[: len(real)], logits[len(real) :]


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Paper eq. 3: binary cross entropy, originals labelled natural, outputs not."""
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def naturalness_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Paper eq. 2: -log D(output)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


class OneToManyRecipe(RecipeData):
    method = "one-to-many"

    def __init__(self, config: OneToManyConfig, data: list[Path], val: list[Path], cache: Path):
        self.config = config
        self.spec = MODELS.get(config.model)
        if self.spec.method != self.method:
            raise ValueError(f"{config.model} is not a One-to-Many model")
        if config.patch % 16:
            raise ValueError("patch must be a multiple of 16 (whole 4:2:0 MCUs)")
        self.data, self.val, self.cache = data, val, cache
        self._val_set: list | None = None

    # -- networks ---------------------------------------------------------------------

    def build(self, ctx) -> dict[str, nn.Module]:
        torch.manual_seed(self.config.seed)
        net = self.spec.build(**self.arch_overrides("net"))
        disc = Discriminator(channels=self.spec.channels, widths=tuple(self.spec.extras["discriminator"]))
        return {"net": net, "disc": disc, "features": self._feature_network()}

    def arch_overrides(self, module: str) -> dict:
        """Settings that change the exported network's architecture (read by export)."""
        return {"shift_average": self.config.shift_average} if module == "net" else {}

    def _feature_network(self) -> nn.Module:
        c = self.config
        if c.vgg16:
            return VGG16Features.from_file(c.vgg16)
        colour = "color" if self.spec.channels == 3 else "gray"
        ranker_spec = MODELS.get(c.ranker or f"cqr-ranker-{colour}")
        if ranker_spec.role != "ranker" or ranker_spec.channels != self.spec.channels:
            raise ValueError(f"{ranker_spec.name} is not a {colour} CQR ranker")
        if c.ranker_weights:
            from safetensors.torch import load_file

            ranker = ranker_spec.build()
            ranker.load_state_dict(load_file(c.ranker_weights))
        else:
            from jpegfix.weights import load_model

            ranker, _ = load_model(ranker_spec)
        return RankerFeatures(ranker, tuple(c.feature_layers))

    def stages(self) -> list[Stage]:
        c = self.config
        return [
            Stage("proposal", c.proposal_steps, ["net"], c.proposal_lr, self._batches, self._proposal_step,
                  frozen=["features"], betas=(c.proposal_beta1, 0.999)),
            Stage("adversarial", c.adversarial_steps, ["net", "disc"], c.lr, self._batches, self._adversarial_step,
                  frozen=["features"], betas=(c.beta1, 0.999)),
        ]

    def exports(self) -> dict[str, str]:
        return {"net": self.config.model}

    def card(self) -> dict:
        c = self.config
        features = (f"VGG16 relu5_3 from {c.vgg16}" if c.vgg16 else
                    f"{c.ranker or 'cqr-ranker-' + ('color' if self.spec.channels == 3 else 'gray')} layers "
                    f"{list(c.feature_layers)} ({c.ranker_weights or 'shipped weights'})")
        return {
            "quality_range": [c.quality_min, c.quality_max],
            "loss": (f"{c.perceptual_weight} x perceptual (mean squared feature difference, {features}) + "
                     f"{c.jpeg_weight} x JPEG (mean squared excess outside the file's quantization intervals, "
                     f"in steps) + {c.pixel_weight} x L1 (after {c.pixel_scale}x{c.pixel_scale} averaging"
                     f"{', of the mean of two candidates per patch' if c.pixel_on_mean else ''})"
                     + (f" - {c.diversity_weight} x spread (mean |difference| of the two candidates, capped at "
                        f"{c.diversity_cap} grey levels)" if c.pixel_on_mean and c.diversity_weight else "")
                     + f" + {c.adversarial_weight} x naturalness (-log D) in stage adversarial"),
            "discriminator": f"Table 1 layout, widths {list(self.spec.extras['discriminator'])}, 3x3 convs",
            "optimizer": (f"Adam, cosine schedule per stage: proposal lr {c.proposal_lr}, betas ({c.proposal_beta1}, "
                          f"0.999); adversarial lr {c.lr}, betas ({c.beta1}, 0.999)"),
            "shift_and_average": c.shift_average,
            "conditioning": "one model for the whole quality range, given QGCN's quantization maps",
            "encoder": "Pillow (libjpeg-turbo), 4:2:0; coefficients and tables read with jpeglib",
            "stages": {"proposal": f"{c.proposal_steps} steps x {c.batch} patches of {c.patch}px, no discriminator",
                       "adversarial": f"{c.adversarial_steps} steps, one D and one G update each"},
        }

    # -- data -------------------------------------------------------------------------

    def _batches(self, ctx):
        c = self.config
        name = f"coefficients-{c.patch}-{c.bank}-{self.spec.channels}-{c.quality_min}-{c.quality_max}-{c.seed}.npz"
        bank = cached(self.cache / name, lambda: make_coefficient_bank(
            self.training_images(), count=c.bank, size=c.patch, quality_range=(c.quality_min, c.quality_max),
            seed=c.seed,
        ), CoefficientBank.load)
        load = bank.patches.loader(c.batch, c.seed, ctx.device)
        net = ctx.modules["net"]

        def batch_of(step: int):
            degraded, clean, indices = load(step)
            maps = np.stack([build_qmaps(component_list(bank.tables[i]), c.patch, c.patch) for i in indices])
            tensor = lambda a, dtype=torch.float32: torch.from_numpy(np.ascontiguousarray(a)).to(ctx.device, dtype)
            quantized = [tensor(bank.luma[indices])]
            tables = [tensor(bank.tables[indices, 0])]
            if self.spec.channels == 3:
                quantized += [tensor(bank.chroma[indices, 0]), tensor(bank.chroma[indices, 1])]
                tables += [tensor(bank.tables[indices, 1]), tensor(bank.tables[indices, 2])]
            generator = torch.Generator().manual_seed(c.seed * 1_000_003 + step)
            candidates = 2 if c.pixel_on_mean else 1
            noise = net.sample_noise(candidates * len(indices), c.patch, c.patch, generator).to(ctx.device)
            phase = tuple(int(v) for v in torch.randint(0, 8, (2,), generator=generator)) if c.random_phase else None
            return degraded, clean, tensor(maps), noise, quantized, tables, phase

        return batch_of

    # -- steps --------------------------------------------------------------------------

    def _restoration_losses(self, batch, ctx) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        degraded, clean, maps, noise, quantized, tables, phase = batch
        pair = len(noise) // len(degraded)  # candidates per patch: 2 with pixel_on_mean
        repeat = (lambda t: torch.cat([t] * pair)) if pair > 1 else (lambda t: t)
        with ctx.autocast():
            output = ctx.net("net")(repeat(degraded), repeat(maps), noise)
            seen, target = output, repeat(clean)
            if phase is not None:
                crop = lambda image: image[..., phase[0] : phase[0] + self.config.patch - 8,
                                           phase[1] : phase[1] + self.config.patch - 8]
                seen, target = crop(seen), crop(target)
            perceptual = perceptual_loss(ctx.modules["features"], seen, target)
        jpeg = jpeg_loss(output.float(), [repeat(k) for k in quantized], [repeat(q) for q in tables])
        losses = {"perceptual": perceptual.float(), "jpeg": jpeg}
        candidates = output.float().unflatten(0, (pair, -1))  # (pair, N, C, H, W)
        if self.config.pixel_weight:
            k = self.config.pixel_scale
            losses["pixel"] = F.l1_loss(F.avg_pool2d(candidates.mean(0), k), F.avg_pool2d(clean, k))
        if pair > 1 and self.config.diversity_weight:
            difference = (candidates[0] - candidates[1]).abs().clamp(max=self.config.diversity_cap / 255)
            losses["spread"] = -difference.mean()
        return output, losses

    def _generator_loss(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        c = self.config
        weights = {"perceptual": c.perceptual_weight, "jpeg": c.jpeg_weight, "naturalness": c.adversarial_weight, "pixel": c.pixel_weight,
                   "spread": c.diversity_weight}
        return sum(weights[name] * value for name, value in losses.items())

    def _proposal_step(self, batch, ctx) -> dict[str, float]:
        _, losses = self._restoration_losses(batch, ctx)
        ctx.backward(self._generator_loss(losses), "net")
        return {k: v.item() for k, v in losses.items()}

    def _adversarial_step(self, batch, ctx) -> dict[str, float]:
        # One generator forward serves both updates: D learns on the detached output, then G
        # is scored by the updated D (the output does not depend on D's weights).
        output, losses = self._restoration_losses(batch, ctx)
        disc, clean = ctx.net("disc"), batch[1]
        with ctx.autocast():
            real_logits, fake_logits = judge(disc, clean, output.detach())
            d_loss = discriminator_loss(real_logits.float(), fake_logits.float())
        ctx.backward(d_loss, "disc")
        with ctx.autocast():
            losses["naturalness"] = naturalness_loss(judge(disc, clean, output)[1].float())
        ctx.backward(self._generator_loss(losses), "net")
        return {**{k: v.item() for k, v in losses.items()}, "discriminator": d_loss.item()}

    # -- validation -------------------------------------------------------------------

    def _validation_set(self):
        """Centre crops of held-out images (sides multiples of 16), compressed at 10, 30, 50."""
        if self._val_set is None:
            self._val_set = []
            for path in list_images(self.val)[: self.config.val_images]:
                image = load_image(path, self.spec.channels)
                side = min(self.config.val_crop, image.shape[0] // 16 * 16, image.shape[1] // 16 * 16)
                top, left = (image.shape[0] - side) // 2 // 16 * 16, (image.shape[1] - side) // 2 // 16 * 16
                clean = np.ascontiguousarray(image[top : top + side, left : left + side])
                for q in VALIDATION_QUALITIES:
                    self._val_set.append((clean, compress_with_coefficients(clean, q), q))
        return self._val_set

    def validate(self, ctx) -> dict[str, float]:
        net = ctx.modules["net"]
        gains, inside, diversity = [], [], []
        for clean, sample, q in self._validation_set():
            side = clean.shape[0]
            x = torch.from_numpy(sample.decoded.transpose(2, 0, 1)[None].copy()).float().to(ctx.device) / 255
            maps = torch.from_numpy(build_qmaps(sample.components, side, side)[None]).to(ctx.device)
            outputs = []
            for seed in (0, 1):
                noise = net.sample_noise(1, side, side, torch.Generator().manual_seed(seed)).to(ctx.device)
                y = net(x, maps, noise).clamp(0, 1)
                outputs.append((y[0].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8))
            gains.append(psnr(clean, outputs[0]) - psnr(clean, sample.decoded))
            inside.append(share_inside(outputs[0], sample.quantized[0], sample.components[0].table))
            diversity.append(float(np.abs(outputs[0].astype(np.int16) - outputs[1]).mean()))
        return {"psnr_gain": float(np.mean(gains)), "inside": float(np.mean(inside)),
                "diversity": float(np.mean(diversity)), "worst_gain": float(np.min(gains))}
