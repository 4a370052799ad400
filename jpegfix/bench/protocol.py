"""The benchmark protocol: compress, decode, restore and score every image at every quality.

For each image of each data set and each JPEG quality:

1. the clean image is compressed with Pillow (libjpeg) at that quality: colour images with
   the requested chroma subsampling, grey images as single-component JPEG; then decoded by
   Pillow; the ``jpeg`` row scores this decoded image;
2. every model restores the decoded image, given the IJG component tables of that quality
   (identical to the tables in the file, which the run checks and records);
3. scores are computed on the uint8 outputs, without border crop: PSNR, SSIM and PSNR-B over
   RGB, or on MATLAB BT.601 luma (``channel="y"``). Grey sets are always scored on their
   single channel, which for ``live1_gray`` and ``bsds500_gray`` is that luma.

Grey models (the peers, ``*-gray-*`` models) on colour sets restore the luma only: the
decoded RGB image's MATLAB luma (rounded, as the peers were trained on it) is restored, and
the change in luma is added back to R, G and B (x 255/219, the studio-range luma gain of the
inverse BT.601 transform), which leaves the chroma of the decoded JPEG untouched. Colour
models are not run on grey sets (a grey JPEG has no chroma components to give them).

A failure (unreadable image, a model raising) is recorded with its reason and the run goes
on with the next image or model.
"""

from __future__ import annotations

import hashlib
import io
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from jpegfix.bench.datasets import Dataset
from jpegfix.errors import JpegfixError
from jpegfix.metrics import PSNR_B_VARIANT, SSIM_VARIANT, psnr, psnr_b, rgb_to_y, ssim
from jpegfix.qmaps import IJG_CHROMA, IJG_LUMA, ijg_components, ijg_table

SUBSAMPLINGS = {"420": "4:2:0", "444": "4:4:4", "4:2:0": "4:2:0", "4:4:4": "4:4:4"}
CHANNELS = ("rgb", "y")
LUMA_GAIN = 255.0 / 219.0
"""d(R, G, B) / dY of MATLAB ``ycbcr2rgb``: a luma change moves all three channels alike."""


@dataclass(frozen=True)
class BenchSettings:
    qualities: tuple[int, ...] = (10, 20, 30, 40)
    """IJG qualities 1..100."""
    subsampling: str = "4:2:0"
    """Chroma subsampling of colour JPEGs: ``4:2:0`` (Pillow's default) or ``4:4:4``."""
    channel: str | None = None
    """Scores of colour sets on ``rgb`` or ``y``; None: each set's default (RGB for colour)."""
    save_images: Path | None = None
    """Folder to keep every decoded and restored image (PNG) for inspection."""

    def __post_init__(self) -> None:
        bad = [q for q in self.qualities if not 1 <= q <= 100]
        if bad or not self.qualities:
            raise ValueError(f"JPEG qualities must be in 1..100, got {list(self.qualities)}")
        if self.subsampling not in ("4:2:0", "4:4:4"):
            raise ValueError(f"subsampling must be 420 or 444, got {self.subsampling!r}")
        if self.channel is not None and self.channel not in CHANNELS:
            raise ValueError(f"channel must be rgb or y, got {self.channel!r}")


@dataclass
class ImageScore:
    """One image restored by one model at one quality, scored on the run's channel."""

    dataset: str
    image: str
    model: str
    quality: int
    psnr: float
    ssim: float
    psnr_b: float
    seconds: float
    """Wall time of the model's ``restore`` call (0 for ``jpeg``)."""


@dataclass
class Failure:
    dataset: str
    image: str
    model: str
    """Empty when the image itself could not be read or compressed."""
    quality: int | None
    error: str


@dataclass
class DatasetRun:
    name: str
    channel: str
    """Where scores were computed: ``rgb`` or ``y``."""
    channels: int
    """1 grey set, 3 colour set."""
    images: int
    """Images in this run (after ``limit``)."""
    expected: int
    """Images in the full registered set (0 for a folder)."""
    registered: bool
    scores: list[ImageScore] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Model -> why it did not run on this set."""
    luma_only: list[str] = field(default_factory=list)
    """Grey models run on the luma of this colour set."""

    @property
    def full_set(self) -> bool:
        return self.registered and self.images == self.expected


@dataclass
class BenchEvent:
    """Progress for a front end: one step is one image at one quality, all models included."""

    done: int
    total: int
    message: str
    failure: Failure | None = None


@dataclass
class BenchResult:
    settings: BenchSettings
    rows: list[str]
    datasets: list[DatasetRun]
    protocol: dict[str, Any]
    speed: list[Any] = field(default_factory=list)
    """:class:`jpegfix.bench.speed.SpeedResult` entries when speed was measured."""


def run_benchmark(
    datasets: list[Dataset],
    rows: list[tuple[str, Any]],
    settings: BenchSettings,
    on_event: Callable[[BenchEvent], None] | None = None,
) -> BenchResult:
    """Run the protocol over ``datasets`` for ``rows`` = [(name, restorer or None for jpeg)].

    The ``jpeg`` row is always scored, whether listed or not.
    """
    emit = on_event or (lambda event: None)
    models = [(name, restorer) for name, restorer in rows if restorer is not None]
    row_names = ["jpeg"] + [name for name, _ in models]
    total = sum(len(d.paths) for d in datasets) * len(settings.qualities)
    done = 0
    tables: dict[str, dict[str, Any]] = {}
    runs = []
    for dataset in datasets:
        channel = settings.channel if (dataset.channels == 3 and settings.channel) else dataset.default_channel
        run = DatasetRun(dataset.name, channel, dataset.channels, len(dataset.paths), dataset.expected, dataset.registered)
        runnable = []
        for name, restorer in models:
            model_channels = restorer.spec.channels
            if model_channels == 3 and dataset.channels == 1:
                run.skipped[name] = "colour model on a grey set"
                continue
            if model_channels == 1 and dataset.channels == 3:
                sibling = name.replace("-gray-", "-color-")
                if sibling != name and sibling in row_names:
                    run.skipped[name] = f"grey model on a colour set ({sibling} runs here)"
                    continue
                run.luma_only.append(name)
            runnable.append((name, restorer))
        for path in dataset.paths:
            try:
                clean = dataset.load(path)
            except JpegfixError as error:
                failure = Failure(dataset.name, path.name, "", None, str(error))
                run.failures.append(failure)
                done += len(settings.qualities)
                emit(BenchEvent(done, total, f"{dataset.name}: {path.name}", failure))
                continue
            for quality in settings.qualities:
                _score_quality(run, dataset, path, clean, quality, runnable, settings, tables, emit)
                done += 1
                emit(BenchEvent(done, total, f"{dataset.name} q{quality}: {path.name}"))
        runs.append(run)
    protocol = describe_protocol(settings, [(n, r) for n, r in models], tables)
    return BenchResult(settings, row_names, runs, protocol)


def _score_quality(run: DatasetRun, dataset: Dataset, path: Path, clean: np.ndarray, quality: int,
                   models: list[tuple[str, Any]], settings: BenchSettings,
                   tables: dict[str, dict[str, Any]], emit: Callable[[BenchEvent], None]) -> None:
    def fail(model: str, error: Exception) -> None:
        message = str(error) if isinstance(error, JpegfixError) else f"{type(error).__name__}: {error}"
        failure = Failure(dataset.name, path.name, model, quality, message)
        run.failures.append(failure)
        emit(BenchEvent(-1, -1, f"{dataset.name} q{quality}: {path.name}: {model or 'image'} failed", failure))

    try:
        decoded, file_tables = compress(clean, quality, settings.subsampling)
        key = "grey" if clean.shape[2] == 1 else f"colour {settings.subsampling}"
        tables.setdefault(key, {}).setdefault(str(quality), _describe_tables(file_tables, quality, clean.shape[2]))
        reference_scores = score(clean, decoded, run.channel)
    except Exception as error:  # noqa: BLE001 - a bad image must not stop the run
        fail("", error)
        return
    run.scores.append(ImageScore(dataset.name, path.name, "jpeg", quality, *reference_scores, 0.0))
    _save(settings.save_images, dataset.name, "jpeg", quality, path, decoded)
    for name, restorer in models:
        try:
            start = time.perf_counter()
            restored = restore_with(restorer, decoded, quality, settings.subsampling)
            seconds = time.perf_counter() - start
            if restored.shape != decoded.shape or restored.dtype != np.uint8:
                raise JpegfixError(f"{name} returned {restored.dtype} {restored.shape}, expected uint8 {decoded.shape}")
            run.scores.append(ImageScore(dataset.name, path.name, name, quality, *score(clean, restored, run.channel), seconds))
            _save(settings.save_images, dataset.name, name, quality, path, restored)
        except Exception as error:  # noqa: BLE001 - one failing model/image must not stop the run
            fail(name, error)


def compress(pixels: np.ndarray, quality: int, subsampling: str = "4:2:0") -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Pillow JPEG round trip of (H, W, C) uint8: (decoded pixels, {table index: (8, 8) table}).

    Grey images (C = 1) are written as single-component JPEG, colour ones with ``subsampling``.
    """
    image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(quality), subsampling=subsampling)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        array = np.asarray(decoded, dtype=np.uint8)
        file_tables = {int(i): np.asarray(list(t), dtype=np.int64).reshape(8, 8) for i, t in decoded.quantization.items()}
    return (array[..., None] if array.ndim == 2 else array), file_tables


def restore_with(restorer: Any, decoded: np.ndarray, quality: int, subsampling: str) -> np.ndarray:
    """Restore ``decoded`` (H, W, C) with ``restorer``, running a grey model on the luma of
    a colour image (see the module docstring)."""
    model_channels = restorer.spec.channels
    if model_channels == decoded.shape[2]:
        return restorer.restore(decoded, ijg_components(quality, model_channels, subsampling))
    if model_channels == 1 and decoded.shape[2] == 3:
        luma = rgb_to_y(decoded)
        restored = restorer.restore(luma[..., None], ijg_components(quality, 1))[..., 0]
        change = (restored.astype(np.float64) - luma) * LUMA_GAIN
        return np.clip(np.floor(decoded + change[..., None] + 0.5), 0, 255).astype(np.uint8)
    raise JpegfixError(f"a {model_channels}-channel model cannot restore a {decoded.shape[2]}-channel image")


def score(reference: np.ndarray, test: np.ndarray, channel: str) -> tuple[float, float, float]:
    """(PSNR, SSIM, PSNR-B) of uint8 (H, W, C) images on ``rgb`` (all channels) or ``y``."""
    if channel == "y" and reference.shape[2] == 3:
        reference, test = rgb_to_y(reference), rgb_to_y(test)
    elif reference.shape[2] == 1:
        reference, test = reference[..., 0], test[..., 0]
    return psnr(reference, test), ssim(reference, test), psnr_b(reference, test)


def describe_protocol(settings: BenchSettings, models: list[tuple[str, Any]], tables: dict[str, Any]) -> dict[str, Any]:
    """What a reader needs to reproduce the numbers: encoder, tables, metrics, models, device."""
    import PIL
    import torch

    from jpegfix import __version__

    return {
        "jpegfix": __version__,
        "encoder": f"Pillow {PIL.__version__} ({_libjpeg()}), baseline, quality=Q, no optimize",
        "decoder": "Pillow (libjpeg default: islow IDCT, fancy upsampling)",
        "pillow": PIL.__version__,
        "libjpeg": _libjpeg(),
        "subsampling": settings.subsampling,
        "grey_images": "single-component JPEG",
        "qualities": list(settings.qualities),
        "tables": tables,
        "channel": settings.channel or "per set: rgb for colour sets, y for grey sets",
        "luma": "MATLAB BT.601: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, rounded",
        "grey_models_on_colour": "restore MATLAB luma, add its change x 255/219 to R, G, B; chroma as decoded",
        "metrics": {"psnr": "on uint8, no border crop", "ssim": SSIM_VARIANT, "psnr_b": PSNR_B_VARIANT,
                    "average": "mean of per-image scores"},
        "models": {name: {"card": _plain(getattr(r, "card", {}) or {}), "device": str(getattr(r, "device", ""))}
                   for name, r in models},
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _libjpeg() -> str:
    """The JPEG library Pillow was built with, e.g. ``libjpeg-turbo 3.1.0 (API 6.2)``."""
    from PIL import features

    api = features.version("jpg")
    if features.check_feature("libjpeg_turbo"):
        return f"libjpeg-turbo {features.version('libjpeg_turbo')} (API {api})"
    return f"libjpeg {api}"


def _describe_tables(file_tables: dict[int, np.ndarray], quality: int, channels: int) -> dict[str, Any]:
    digest = hashlib.sha256()
    for index in sorted(file_tables):
        digest.update(file_tables[index].astype("<u2").tobytes())
    expected = [ijg_table(quality, IJG_LUMA)] + ([ijg_table(quality, IJG_CHROMA)] if channels == 3 else [])
    matches = len(file_tables) == len(expected) and all(
        np.array_equal(file_tables[i], table) for i, table in enumerate(expected))
    return {"sha256": digest.hexdigest(), "ijg": bool(matches)}


def _save(folder: Path | None, dataset: str, model: str, quality: int, path: Path, pixels: np.ndarray) -> None:
    if folder is None:
        return
    target = Path(folder) / Path(dataset).name / model / f"q{quality}"
    target.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(target / f"{path.stem}.png")


def _plain(value: Any) -> Any:
    """JSON-safe copy of a model card (numpy scalars and paths become plain values)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
