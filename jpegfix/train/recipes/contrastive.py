"""The contrastive method's recipe: stage ``encoder`` (MoCo), then stage ``restore``.

Stage ``encoder`` trains the restorer's :class:`CompressionEncoder` (``net.encoder``) without
quality labels. Each sample is a region of a training image compressed at one quality of
``qualities``: the query and its positive are two different quarters of that region (same
quality, different content), negatives are the keys of earlier samples in a MoCo queue
(other images, other qualities). As an addition to the paper, the query's own quarter
compressed at another quality is a further, content-matched negative: content alone can
then never separate a positive from a negative, only the compression can. Queued keys of
the query's own quality are left out of its negatives (``mask_same_quality``): the paper
defines negatives as other images at *other* qualities, and counting same-quality keys as
negatives rewards matching by content.

Stage ``restore`` trains the rest of the network with the encoder frozen in eval mode
(``frozen=["net.encoder"]``), loss L1 + 0.1 x L1 of the FFT difference.

Data for both stages are pre-generated banks of uint8 patches, so CPU steps are
network-bound. Defaults are sized for one CPU thread: on a 2-core AMD EPYC with two runs
side by side, one thread each, ``contrastive-*-s`` takes about 1.0 s per encoder step and
0.64 s per restore step, so 800 + 2500 steps, the banks (1.4 ms per region, 0.5 ms per patch)
and validation every 500 steps come to about 45 minutes. The paper's values are in the
comments.
"""

from __future__ import annotations

import copy
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

PAPER_QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90)


@dataclass(frozen=True)
class ContrastiveConfig:
    model: str = "contrastive-color-s"
    qualities: tuple[int, ...] = PAPER_QUALITIES  # paper §4.1: Q10..Q90 in steps of 10
    share_444: float = 0.25  # colour samples compressed with 4:4:4 (else Pillow's 4:2:0)
    # Stage "encoder". Paper: lr 1e-3, 200 epochs of 256x256 crops; MoCo queue ~65536,
    # momentum 0.999. A 0.999 key encoder has a time constant of 1000 steps, longer than our
    # whole CPU stage (it would still be 0.999^800 = 45% random init at the end); 0.99 gives
    # a lag of 100 steps, an eighth of the run, closer to MoCo's proportions.
    encoder_steps: int = 800
    encoder_batch: int = 16  # regions per step: query + positive + content-matched negative
    encoder_crop: int = 64
    encoder_lr: float = 1e-3
    queue: int = 2048  # 64 steps of keys: far fewer than the bank holds, fresh for the key encoder
    momentum: float = 0.99
    temperature: float = 0.07
    hard_negatives: bool = True
    mask_same_quality: bool = True  # queued keys of the query's quality are not its negatives
    # Stage "restore". Paper: Adam 1e-4, cosine over 600 epochs, batch 8 of 256x256.
    restore_steps: int = 2500
    restore_batch: int = 8
    restore_size: int = 64
    restore_lr: float = 5e-4
    fft_weight: float = 0.1
    val_images: int = 6
    val_crop: int = 256
    probe_crops: int = 4
    seed: int = 0


class MoCo(nn.Module):
    """MoCo's key side: a momentum copy of the query encoder and a queue of negative keys.

    The query encoder itself is trained by the optimiser; after each step
    :meth:`momentum_update` moves the key encoder towards it and :meth:`enqueue` adds the
    step's keys, replacing the oldest.
    """

    def __init__(self, encoder: nn.Module, *, queue: int, momentum: float, temperature: float):
        super().__init__()
        self.momentum, self.temperature = momentum, temperature
        self.key_encoder = copy.deepcopy(encoder)
        self.register_buffer("queue", F.normalize(torch.randn(queue, encoder.dim), dim=1))
        self.register_buffer("queue_quality", torch.full((queue,), -1, dtype=torch.long))
        """Quality each queued key was compressed at (-1: the random initial keys)."""
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def keys(self, images: torch.Tensor, order: torch.Tensor, groups: int = 2) -> torch.Tensor:
        """Unit key vectors of ``images``, computed in ``groups`` batches after shuffling by
        ``order``: BatchNorm statistics then differ from the queries' (MoCo's shuffling BN,
        which stops the encoder from recognising its positive by batch statistics)."""
        # The key encoder normalises with batch statistics, as in MoCo, whatever mode the
        # training loop left this (gradient-free, never optimised) module in.
        self.key_encoder.train()
        shuffled = torch.cat([self.key_encoder(chunk) for chunk in images[order].chunk(groups)])
        keys = torch.empty_like(shuffled)
        keys[order] = shuffled
        return keys

    @torch.no_grad()
    def momentum_update(self, encoder: nn.Module) -> None:
        """key = m * key + (1 - m) * query, parameter by parameter."""
        for key, query in zip(self.key_encoder.parameters(), encoder.parameters()):
            key.mul_(self.momentum).add_(query.detach(), alpha=1 - self.momentum)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, qualities: torch.Tensor | None = None) -> None:
        size, start = len(self.queue), int(self.pointer)
        index = (start + torch.arange(len(keys), device=keys.device)) % size
        self.queue[index] = keys.to(self.queue.dtype)
        self.queue_quality[index] = -1 if qualities is None else qualities.to(self.queue_quality)
        self.pointer.fill_((start + len(keys)) % size)

    def loss(self, query: torch.Tensor, positive: torch.Tensor, extra: torch.Tensor | None = None,
             quality: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """InfoNCE over [positive, extra negative, queue] at the temperature; returns
        (loss, share of queries whose positive scores highest).

        With ``quality`` (the queries' qualities), queued keys of the query's own quality are
        left out of its negatives: they are not negatives in the paper's sense ("other images
        at other qualities"), and keeping them rewards telling images apart by content, the
        opposite of a compression representation. With 9 quality levels one key in 9 is such
        a false negative; unmasked, a CPU-length run learned content and its nearest-neighbour
        quality probe stayed at chance (11%).
        """
        logits = [(query * positive).sum(1, keepdim=True)]
        if extra is not None:
            logits.append((query * extra).sum(1, keepdim=True))
        queued = query @ self.queue.T.to(query.dtype)
        if quality is not None:
            queued = queued.masked_fill(self.queue_quality[None, :] == quality[:, None], float("-inf"))
        logits.append(queued)
        logits = torch.cat(logits, dim=1) / self.temperature
        target = torch.zeros(len(query), dtype=torch.long, device=query.device)
        return F.cross_entropy(logits, target), (logits.argmax(1) == 0).float().mean()


@dataclass
class ContrastBank:
    """Encoder-stage samples: uint8 (N, C, S, S) query, positive and content-matched negative."""

    query: np.ndarray
    positive: np.ndarray
    negative: np.ndarray
    quality: np.ndarray
    """(N,) quality of query and positive."""
    negative_quality: np.ndarray

    def __len__(self) -> int:
        return len(self.quality)

    def save(self, path: Path) -> None:
        np.savez(path, **self.__dict__)

    @classmethod
    def load(cls, path: Path) -> "ContrastBank":
        with np.load(path) as f:
            return cls(**{k: f[k] for k in ("query", "positive", "negative", "quality", "negative_quality")})


def make_contrast_bank(
    images: list[np.ndarray], *, count: int, size: int, qualities: tuple[int, ...], seed: int, share_444: float
) -> ContrastBank:
    """``count`` regions of 2 ``size`` square, each compressed at a random quality (and at a
    different one for the negative); query and positive are two different quarters."""
    rng = np.random.default_rng(seed)
    channels = images[0].shape[2]
    shape = (count, channels, size, size)
    query, positive, negative = (np.empty(shape, np.uint8) for _ in range(3))
    quality = rng.choice(qualities, size=count)
    other = np.array([rng.choice([q for q in qualities if q != a]) for a in quality])
    corners = [(0, 0), (0, size), (size, 0), (size, size)]
    for i in range(count):
        region = random_crop(images[int(rng.integers(len(images)))], 2 * size, rng)
        mode = "4:4:4" if channels == 3 and rng.random() < share_444 else "4:2:0"
        same, changed = jpeg_roundtrip(region, int(quality[i]), mode), jpeg_roundtrip(region, int(other[i]), mode)
        a, b = rng.choice(4, size=2, replace=False)
        (ya, xa), (yb, xb) = corners[a], corners[b]
        query[i] = same[ya : ya + size, xa : xa + size].transpose(2, 0, 1)
        positive[i] = same[yb : yb + size, xb : xb + size].transpose(2, 0, 1)
        negative[i] = changed[ya : ya + size, xa : xa + size].transpose(2, 0, 1)
    return ContrastBank(query, positive, negative, quality, other)


def fft_l1(restored: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of the real and imaginary parts of the 2-D FFTs (torch's
    unnormalised transform, as in the MIMO-UNet loss the paper cites)."""
    return F.l1_loss(torch.view_as_real(torch.fft.rfft2(restored)), torch.view_as_real(torch.fft.rfft2(clean)))


class ContrastiveRecipe(RecipeData):
    method = "contrastive"

    def __init__(self, config: ContrastiveConfig, data: list[Path], val: list[Path], cache: Path):
        self.config = config
        self.spec = MODELS.get(config.model)
        if self.spec.method != self.method:
            raise ValueError(f"{config.model} is not a contrastive model")
        self.data, self.val, self.cache = data, val, cache
        self.current = "encoder"
        self._val_images: list[np.ndarray] | None = None

    def build(self, ctx) -> dict[str, nn.Module]:
        c = self.config
        torch.manual_seed(c.seed)
        net = self.spec.build()
        moco = MoCo(net.encoder, queue=c.queue, momentum=c.momentum, temperature=c.temperature)
        return {"net": net, "moco": moco}

    def stages(self) -> list[Stage]:
        c = self.config
        return [
            # The MoCo key side is updated by momentum in the step, never by the optimiser.
            Stage("encoder", c.encoder_steps, ["net.encoder"], c.encoder_lr, self._encoder_batches, self._encoder_step,
                  frozen=["moco"]),
            Stage("restore", c.restore_steps, ["net"], c.restore_lr, self._restore_batches, self._restore_step,
                  frozen=["net.encoder", "moco"]),
        ]

    def exports(self) -> dict[str, str]:
        return {"net": self.config.model}

    def card(self) -> dict:
        c = self.config
        return {
            "qualities": list(c.qualities),
            "loss": f"stage encoder: InfoNCE (temperature {c.temperature}); stage restore: L1 + {c.fft_weight} x FFT-L1",
            "moco": {"queue": c.queue, "momentum": c.momentum, "content_matched_negatives": c.hard_negatives,
                     "positives": "two different quarters of one compressed region"},
            "fusion": "invertible fusion as in the public code: F1 = D + phi1(E), F2 = E exp(s(F1)) + phi3(F1)",
            "encoder": "Pillow (libjpeg-turbo), 4:2:0 with 4:4:4 for a share of colour samples",
            "stages": {"encoder": f"{c.encoder_steps} steps x {c.encoder_batch} regions of {2 * c.encoder_crop}px",
                       "restore": f"{c.restore_steps} steps x {c.restore_batch} patches of {c.restore_size}px"},
        }

    # -- data -------------------------------------------------------------------------

    def _encoder_batches(self, ctx):
        self.current = "encoder"
        c = self.config
        count = c.encoder_steps * c.encoder_batch
        name = f"contrast-{c.encoder_crop}-{count}-{self.spec.channels}-{'-'.join(map(str, c.qualities))}-{c.seed}.npz"
        bank = cached(self.cache / name, lambda: make_contrast_bank(
            self.training_images(), count=count, size=c.encoder_crop, qualities=c.qualities,
            seed=c.seed + 1, share_444=c.share_444), ContrastBank.load)

        def batch_of(step: int):
            indices = (np.arange(c.encoder_batch) + step * c.encoder_batch) % len(bank)
            to = lambda a: torch.from_numpy(np.ascontiguousarray(a[indices])).to(ctx.device).float() / 255
            keys = 2 * c.encoder_batch if c.hard_negatives else c.encoder_batch
            order = torch.from_numpy(np.random.default_rng([c.seed, step]).permutation(keys)).to(ctx.device)
            qualities = torch.from_numpy(np.concatenate([bank.quality[indices], bank.negative_quality[indices]])).to(ctx.device)
            return to(bank.query), to(bank.positive), to(bank.negative), order, qualities

        return batch_of

    def _encoder_step(self, batch, ctx) -> dict[str, float]:
        query, positive, negative, order, qualities = batch
        c = self.config
        moco: MoCo = ctx.modules["moco"]
        encoder = ctx.net("net.encoder")
        with ctx.autocast():
            q = encoder(query).float()
        images = torch.cat([positive, negative]) if self.config.hard_negatives else positive
        keys = moco.keys(images, order).float()
        k_positive, k_negative = keys[: len(query)], keys[len(query) :]
        query_quality = qualities[: len(query)] if c.mask_same_quality else None
        loss, top1 = moco.loss(q, k_positive, k_negative if c.hard_negatives else None, query_quality)
        ctx.backward(loss, "net.encoder")
        moco.momentum_update(ctx.modules["net"].encoder)
        moco.enqueue(keys, qualities[: len(keys)])
        return {"infonce": loss.item(), "top1": top1.item()}

    def _restore_batches(self, ctx):
        self.current = "restore"
        c = self.config
        count = c.restore_steps * c.restore_batch
        name = f"restore-{c.restore_size}-{count}-{self.spec.channels}-{'-'.join(map(str, c.qualities))}-{c.seed}.npz"
        bank = cached(self.cache / name, lambda: make_patch_bank(
            self.training_images(), count=count, size=c.restore_size, qualities=c.qualities,
            seed=c.seed + 2, share_444=c.share_444), PatchBank.load)
        load = bank.loader(c.restore_batch, c.seed + 2, ctx.device)
        return lambda step: load(step)[:2]

    def _restore_step(self, batch, ctx) -> dict[str, float]:
        degraded, clean = batch
        with ctx.autocast():
            restored = ctx.net("net")(degraded).float()
        l1 = F.l1_loss(restored, clean)
        fft = fft_l1(restored, clean)
        ctx.backward(l1 + self.config.fft_weight * fft, "net")
        return {"l1": l1.item(), "fft": fft.item()}

    # -- validation -------------------------------------------------------------------

    def _validation_images(self) -> list[np.ndarray]:
        """Held-out images, centre-cropped to ``val_crop`` on the 16-pixel grid."""
        if self._val_images is None:
            side = self.config.val_crop
            self._val_images = []
            for path in list_images(self.val)[: self.config.val_images]:
                image = load_image(path, self.spec.channels)
                top = max(0, (image.shape[0] - side) // 32 * 16)
                left = max(0, (image.shape[1] - side) // 32 * 16)
                crop = image[top : top + side, left : left + side]
                h, w = crop.shape[0] // 16 * 16, crop.shape[1] // 16 * 16
                self._val_images.append(np.ascontiguousarray(crop[:h, :w]))
        return self._val_images

    def validate(self, ctx) -> dict[str, float]:
        if self.current == "encoder":
            return self._validate_encoder(ctx)
        return self._validate_restore(ctx)

    def _validate_encoder(self, ctx) -> dict[str, float]:
        """Nearest-neighbour quality classification of held-out crops (chance: 1/len(qualities))."""
        from jpegfix.bench.encoder_probe import probe_encoder

        result = probe_encoder(ctx.modules["net"].encoder, self._validation_images(), qualities=self.config.qualities,
                               crops=self.config.probe_crops, size=self.config.encoder_crop, seed=self.config.seed)
        return {"probe_accuracy": result.accuracy, "probe_mean_abs_error": result.mean_abs_error}

    def _validate_restore(self, ctx) -> dict[str, float]:
        return blind_gains(ctx.modules["net"], self._validation_images(), ctx.device)
