"""The benchmark protocol: compress, decode, restore and score every image in every case.

For each image of each data set and each column (a JPEG quality, a table of a named set, or
the clean image; see :mod:`jpegfix.bench.cases`):

1. the case's input is built by :func:`jpegfix.bench.cases.make_input`: the clean image is
   compressed with Pillow (libjpeg), colour images with the requested chroma subsampling,
   grey images as single-component JPEG, read back as ``jpegfix restore`` reads files, then
   degraded as the run asks (saved again, resized, shifted off the grid); the ``jpeg`` row
   scores this input;
2. every model restores the input, given the tables of its file (the run records them and
   whether they are IJG's). An input without tables (clean, resized, shifted) goes to the
   model alone; a model that needs tables then gets what the restore engine's model choice
   would give it for a PNG of these pixels (recovered tables, when the engine can recover
   them), or is refused for that image, which is recorded, not counted as a failure;
3. scores are computed on the uint8 outputs against the reference (the clean image, resized
   or cropped like the input), without border crop: PSNR, SSIM and PSNR-B over RGB, or on
   MATLAB BT.601 luma (``channel="y"``). Grey sets are always scored on their single
   channel, which for ``live1_gray`` and ``bsds500_gray`` is that luma. The PSNR of the
   output against the input is kept too: how much the model changed it.

Grey models (the peers, ``*-gray-*`` models) on colour sets restore the luma only: the
decoded RGB image's MATLAB luma (rounded, as the peers were trained on it) is restored, and
the change in luma is added back to R, G and B (x 255/219, the studio-range luma gain of the
inverse BT.601 transform), which leaves the chroma of the decoded JPEG untouched. Colour
models are not run on grey sets (a grey JPEG has no chroma components to give them).

A failure (unreadable image, a model raising) is recorded with its reason and the run goes
on with the next image or model.
"""

from __future__ import annotations

import io
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from jpegfix.bench.cases import (IJG_TABLES, RESIZE_FILTER, CaseInput, Column, Degradation, describe_tables,
                                 ijg_column, make_input, named_columns)
from jpegfix.bench.datasets import Dataset
from jpegfix.bench.rows import EngineDefault, as_file, restore_function
from jpegfix.errors import JpegfixError
from jpegfix.jpeg import ComponentTable
from jpegfix.metrics import PSNR_B_VARIANT, SSIM_VARIANT, psnr, psnr_b, rgb_to_y, ssim
from jpegfix.models.restorer import Restorer

SUBSAMPLINGS = {"420": "4:2:0", "422": "4:2:2", "444": "4:4:4", "4:2:0": "4:2:0", "4:2:2": "4:2:2", "4:4:4": "4:4:4"}
CHANNELS = ("rgb", "y")
LUMA_GAIN = 255.0 / 219.0
"""d(R, G, B) / dY of MATLAB ``ycbcr2rgb``: a luma change moves all three channels alike."""


@dataclass(frozen=True)
class BenchSettings:
    qualities: tuple[int | None, ...] = (10, 20, 30, 40)
    """IJG qualities 1..100; None is the clean image, not compressed (``--qf none``). With a
    named table set only None may be given (the set's tables replace the qualities)."""
    subsampling: str = "4:2:0"
    """Chroma subsampling of colour JPEGs: ``4:2:0`` (Pillow's default), ``4:2:2`` or ``4:4:4``."""
    channel: str | None = None
    """Scores of colour sets on ``rgb`` or ``y``; None: each set's default (RGB for colour)."""
    save_images: Path | None = None
    """Folder to keep every input and restored image (PNG) for inspection."""
    tables: str = IJG_TABLES
    """``ijg`` (IJG tables at each quality) or the name of a real-world table set."""
    degradation: Degradation = Degradation()
    """Applied to every column's decoded image before the models see it."""
    project: bool = True
    """Table-guided results are projected into the file's quantization intervals (restore's default)."""
    ensemble: bool = False
    """x8 self-ensemble (restore --ensemble)."""

    def __post_init__(self) -> None:
        if self.tables != IJG_TABLES and any(q is not None for q in self.qualities):
            raise ValueError(f"--tables {self.tables} replaces the qualities; --qf may only be none with it")
        bad = [q for q in self.qualities if q is not None and not 1 <= q <= 100]
        if bad or (not self.qualities and self.tables == IJG_TABLES):
            raise ValueError(f"JPEG qualities must be in 1..100, got {list(self.qualities)}")
        if self.subsampling not in ("4:2:0", "4:2:2", "4:4:4"):
            raise ValueError(f"subsampling must be 420, 422 or 444, got {self.subsampling!r}")
        if self.channel is not None and self.channel not in CHANNELS:
            raise ValueError(f"channel must be rgb or y, got {self.channel!r}")


@dataclass
class ImageScore:
    """One image restored by one model in one column, scored on the run's channel."""

    dataset: str
    image: str
    model: str
    quality: int | None
    """The column's IJG quality (nearest IJG quality for a named table; None: clean)."""
    psnr: float
    ssim: float
    psnr_b: float
    seconds: float
    """Wall time of the model's ``restore`` call (0 for ``jpeg``)."""
    column: str = ""
    """The column's label (``QF50``, ``clean``, ``<table> (~QF93)``); empty: ``QF<quality>``."""
    psnr_input: float | None = None
    """PSNR (dB) of the output against the model's input: how much the model changed it
    (inf for the ``jpeg`` row)."""

    def __post_init__(self) -> None:
        if not self.column:
            self.column = ijg_column(self.quality).key


@dataclass
class Failure:
    dataset: str
    image: str
    model: str
    """Empty when the image itself could not be read or compressed."""
    quality: int | None
    error: str
    column: str = ""


@dataclass
class Refusal:
    """A model that did not run on one image because the input lacks what it needs."""

    dataset: str
    image: str
    model: str
    column: str
    reason: str


class Refused(JpegfixError):
    """A model cannot run on this input (it needs quantization tables the input lacks)."""


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

    refusals: list[Refusal] = field(default_factory=list)
    """Images a model would not restore (it needs tables and the input has none)."""

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
    columns: list[tuple[str, int | None]] = field(default_factory=list)
    """(label, IJG quality or None) of each column in order; empty: ``QF<q>`` per settings quality."""

    def column_list(self) -> list[tuple[str, int | None]]:
        return self.columns or [(ijg_column(q).key, q) for q in self.settings.qualities]


def plan_columns(settings: BenchSettings) -> list[Column]:
    """The run's columns: the clean image first (``--qf none``), then one per IJG quality or
    one per table pair of the named set (every image is compressed with every table).

    Raises:
        ValueError: an unknown table set.
    """
    columns = [ijg_column(None)] if None in settings.qualities else []
    if settings.tables == IJG_TABLES:
        return columns + [ijg_column(q) for q in sorted(q for q in settings.qualities if q is not None)]
    return columns + named_columns(settings.tables)


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
    columns = plan_columns(settings)
    models = [(name, restorer) for name, restorer in rows if restorer is not None]
    row_names = ["jpeg"] + [name for name, _ in models]
    total = sum(len(d.paths) for d in datasets) * len(columns)
    done = 0
    tables: dict[str, dict[str, Any]] = {}
    runs = []
    for dataset in datasets:
        channel = settings.channel if (dataset.channels == 3 and settings.channel) else dataset.default_channel
        run = DatasetRun(dataset.name, channel, dataset.channels, len(dataset.paths), dataset.expected, dataset.registered)
        runnable = _runnable_models(run, dataset, models, row_names)
        for path in dataset.paths:
            try:
                clean = dataset.load(path)
            except JpegfixError as error:
                failure = Failure(dataset.name, path.name, "", None, str(error))
                run.failures.append(failure)
                done += len(columns)
                emit(BenchEvent(done, total, f"{dataset.name}: {path.name}", failure))
                continue
            for column in columns:
                _score_case(run, path, clean, column, runnable, settings, tables, emit)
                done += 1
                emit(BenchEvent(done, total, f"{dataset.name} {column.key}: {path.name}"))
        runs.append(run)
    protocol = describe_protocol(settings, [(n, r) for n, r in models], tables)
    return BenchResult(settings, row_names, runs, protocol, columns=[(c.key, c.quality) for c in columns])


def _runnable_models(run: DatasetRun, dataset: Dataset, models: list[tuple[str, Any]],
                     row_names: list[str]) -> list[tuple[str, Any]]:
    """The models that run on ``dataset``; the others are recorded in ``run.skipped``."""
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
    return runnable


def _score_case(run: DatasetRun, path: Path, clean: np.ndarray, column: Column, models: list[tuple[str, Any]],
                settings: BenchSettings, tables: dict[str, dict[str, Any]],
                emit: Callable[[BenchEvent], None]) -> None:
    where = f"{run.name} {column.key}: {path.name}"

    def fail(model: str, error: Exception) -> None:
        message = str(error) if isinstance(error, JpegfixError) else f"{type(error).__name__}: {error}"
        failure = Failure(run.name, path.name, model, column.quality, message, column.key)
        run.failures.append(failure)
        emit(BenchEvent(-1, -1, f"{where}: {model or 'image'} failed", failure))

    def scored(model: str, output: np.ndarray, seconds: float) -> ImageScore:
        psnr_value, ssim_value, psnr_b_value, psnr_input = score_output(case, output, run.channel)
        return ImageScore(run.name, path.name, model, column.quality, psnr_value, ssim_value, psnr_b_value,
                          seconds, column.key, psnr_input)

    try:
        case = make_input(clean, column, settings.degradation, settings.subsampling)
        if case.components is not None:
            kind = "grey" if clean.shape[2] == 1 else f"colour {settings.subsampling}"
            tables.setdefault(kind, {}).setdefault(column.key, describe_tables(case.components))
        reference_score = scored("jpeg", case.pixels, 0.0)
    except Exception as error:  # noqa: BLE001 - a bad image must not stop the run
        fail("", error)
        return
    run.scores.append(reference_score)
    _save(settings.save_images, run.name, "jpeg", column, path, case.pixels)
    for name, restorer in models:
        try:
            start = time.perf_counter()
            restored = restore_with(restorer, case.pixels, case.components, settings)
            seconds = time.perf_counter() - start
            if restored.shape != case.pixels.shape or restored.dtype != np.uint8:
                raise JpegfixError(f"{name} returned {restored.dtype} {restored.shape}, "
                                   f"expected uint8 {case.pixels.shape}")
            run.scores.append(scored(name, restored, seconds))
            _save(settings.save_images, run.name, name, column, path, restored)
        except Refused as refusal:
            run.refusals.append(Refusal(run.name, path.name, name, column.key, str(refusal)))
        except Exception as error:  # noqa: BLE001 - one failing model/image must not stop the run
            fail(name, error)


def restore_with(restorer: Any, pixels: np.ndarray, components: list[ComponentTable] | None,
                 settings: BenchSettings | None = None) -> np.ndarray:
    """Restore (H, W, C) uint8 ``pixels`` with ``restorer``, given the input file's tables
    (None: pixels only), running a grey model on the luma of a colour image (see the module
    docstring). ``settings`` carries restore's test-time options (projection, ensemble) to
    jpegfix's own models; peers run as published.

    Raises:
        Refused: the model needs tables, the input has none and none could be recovered.
    """
    model_channels = restorer.spec.channels
    options = {}
    if settings is not None and isinstance(restorer, (Restorer, EngineDefault)):
        options = dict(project=settings.project, ensemble=settings.ensemble)
    if isinstance(restorer, EngineDefault):
        return restorer.restore(pixels, components, **options)
    restore = restore_function(restorer)
    if model_channels == pixels.shape[2]:
        return restore(pixels, model_tables(restorer, pixels, components), **options)
    if model_channels == 1 and pixels.shape[2] == 3:
        luma = rgb_to_y(pixels)[..., None]
        luma_tables = model_tables(restorer, luma, components[:1] if components else None)
        restored = restore(luma, luma_tables, **options)[..., 0]
        change = (restored.astype(np.float64) - luma[..., 0]) * LUMA_GAIN
        return np.clip(np.floor(pixels + change[..., None] + 0.5), 0, 255).astype(np.uint8)
    raise JpegfixError(f"a {model_channels}-channel model cannot restore a {pixels.shape[2]}-channel image")


def model_tables(restorer: Any, pixels: np.ndarray,
                 components: list[ComponentTable] | None) -> list[ComponentTable] | None:
    """The tables ``restorer`` gets: None for a blind model; for a table-guided jpegfix model
    what the restore engine's model choice gives a file of these pixels and tables: a JPEG's
    own tables, or an earlier, coarser quantization found under them (double compression);
    for an input without tables, tables recovered from its pixels where the engine can
    recover them.

    Raises:
        Refused: no tables for a model that needs them.
    """
    from jpegfix.models import MODELS

    name = restorer.spec.name
    if not restorer.spec.needs_tables or (components is not None and name not in MODELS):
        return components
    if name not in MODELS:
        raise Refused(f"{name} needs quantization tables and this input has none")
    from jpegfix.batch import RestoreOptions
    from jpegfix.engine import choose_model

    try:
        _, tables, _ = choose_model(as_file(pixels, components), RestoreOptions(model=name))
    except JpegfixError as error:
        raise Refused(str(error)) from None
    if tables is None:
        raise Refused(f"{name} needs quantization tables and this input has none")
    return tables


def score_output(case: CaseInput, output: np.ndarray, channel: str) -> tuple[float, float, float, float]:
    """(PSNR, SSIM, PSNR-B against the case's reference, PSNR against its input) of an
    output: the one place where the benchmark scores."""
    psnr_value, ssim_value, psnr_b_value = score(case.reference, output, channel)
    return psnr_value, ssim_value, psnr_b_value, _channel_psnr(case.pixels, output, channel)


def _channel_psnr(reference: np.ndarray, test: np.ndarray, channel: str) -> float:
    if channel == "y" and reference.shape[2] == 3:
        return psnr(rgb_to_y(reference), rgb_to_y(test))
    return psnr(reference[..., 0], test[..., 0]) if reference.shape[2] == 1 else psnr(reference, test)


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
        "encoder": f"Pillow {PIL.__version__} ({_libjpeg()}), baseline, "
                   f"{'quality=Q' if settings.tables == IJG_TABLES else 'qtables= of the named set'}, no optimize",
        "decoder": "Pillow (libjpeg default: islow IDCT, fancy upsampling), read back as jpegfix restore reads files",
        "pillow": PIL.__version__,
        "libjpeg": _libjpeg(),
        "subsampling": settings.subsampling,
        "grey_images": "single-component JPEG",
        "qualities": list(settings.qualities),
        "table_set": settings.tables,
        "tables": tables,
        "degradation": settings.degradation.describe(),
        "test_time": {"projection": settings.project, "ensemble": settings.ensemble},
        "resize_filter": RESIZE_FILTER if settings.degradation.resize is not None else None,
        "inputs_without_tables": "table-guided models get the restore engine's choice for a PNG of the pixels, "
                                 "or are refused for that image",
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


def _save(folder: Path | None, dataset: str, model: str, column: Column, path: Path, pixels: np.ndarray) -> None:
    if folder is None:
        return
    target = Path(folder) / Path(dataset).name / model / column.folder
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
