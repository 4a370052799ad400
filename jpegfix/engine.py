"""The restore engine: read -> choose model -> quantization maps -> tiles -> network -> blend -> write.

Library code: it never prints or exits. Per-file problems become :class:`FileResult`
records with ``status="failed"`` and a one-line ``error``; the batch always goes on.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from jpegfix.clean import DEFAULT_CLEAN_QUALITY
from jpegfix.clean import judge as judge_clean
from jpegfix.dct import project_in_bands
from jpegfix.devices import half_dtype, pick_device
from jpegfix.errors import InputError, JpegfixError, OutputError
from jpegfix.jpeg import DEFAULT_MAX_PIXELS, ComponentTable, DecodedImage, read_image
from jpegfix.limits import DEFAULT_MAX_MEMORY_GB
from jpegfix.models import METHODS, MODELS
from jpegfix.models.restorer import Restorer
from jpegfix.output import is_complete_png, write_png
from jpegfix.paths import INPUT_SUFFIXES, check_suffix, find_inputs, name_too_long, output_name
from jpegfix.qmaps import build_qmaps, estimate_quality, ijg_components
from jpegfix.recovery import at_origin, grid_padding, tables_from_pixels, tables_under_jpeg
from jpegfix.tiling import GRID, run_tiled
from jpegfix.weights import load_model
from jpegfix.writer import TargetExistsError

DEFAULT_TABLE_MODELS = {3: "qgcn-color-s", 1: "qgcn-gray-s"}
"""Default models for images whose quantization tables are known (JPEG files, or --quality)."""
DEFAULT_BLIND_MODELS = {3: "cqr-color-s", 1: "contrastive-gray-s"}
"""Default models for images without usable tables (PNG, WebP, TIFF, invalid JPEG tables):
the best measured blind model of each kind on LIVE1 (never trained on). Colour: CQR's
deblocker, +1.03 dB at q10-40, against +0.83 for contrastive-color-s, and cheaper (0.22
against 0.28 MMAC/px). Grey: contrastive-gray-s, +1.13 to +1.23 dB."""
DEFAULT_OVERLAP = 32
DEFAULT_CONTEXT = 48
"""Pixels of extra context read around each tile and discarded after the network: a
convolution near a tile edge then sees the same neighbours as in the whole image."""
FINEST_RESTORED_STEP = 3.0
"""A JPEG whose mean luma quantization step is below this (IJG quality 98-100: mean step 2.4
to 1) is left as decoded by the table-guided models: its tables allow less change than the
network's own noise. Measured with the full-range weights, projection on: LIVE1 q98 -0.01 dB
(colour, 2 of 29 images below -0.05) and q100 -0.00; scikit-image crops -0.00 to -0.03 at q98.
At q95 (mean step 5.8) they still gain: LIVE1 +0.17 colour / +0.11 grey with no image worse,
the crops +0.05 to +0.25."""
CPU_TILE_BUDGET = 1.5 * 2**30
"""Bytes of activations one CPU tile may use (keeps a 12 MP photo well under 4 GB peak)."""


# -- models and devices ----------------------------------------------------------------


def load_restorer(name: str, device: str = "auto", *, download: bool = True, folder: Path | None = None) -> Restorer:
    """Load registered model ``name`` with verified weights on ``device`` (from ``folder``
    when given, see :func:`jpegfix.weights.load_model`).

    Raises:
        UnknownModelError, MissingWeightsError.
    """
    spec = MODELS.get(name)
    _check_restorer(spec)
    net, card = load_model(spec, download=download, folder=folder)
    target = pick_device(device)
    return Restorer(spec=spec, net=net.to(target), device=target, dtype=half_dtype(target), card=card)


def _check_restorer(spec) -> None:
    """Raises InputError for registered networks that do not restore images (CQR's ranker)."""
    if spec.role != "restorer":
        raise InputError(f"{spec.name} is a compression-quality {spec.role}, not a restoration model "
                         f"(`jpegfix info` reads images with it)")


def model_for(name: str, channels: int) -> str:
    """``name``, or for a method name (``--model cqr``) that method's CPU-size model for the
    image's channel count (``cqr-color-s`` or ``cqr-gray-s``)."""
    if name in METHODS:
        return f"{name}-{'color' if channels == 3 else 'gray'}-s"
    return name


# -- one image in memory ---------------------------------------------------------------


def auto_tile(restorer: Restorer) -> int:
    """Largest tile side (multiple of 16) whose activations fit the device's free memory."""
    per_pixel = float(getattr(restorer.net, "bytes_per_pixel", 2048))
    if restorer.device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(restorer.device)
        budget = 0.5 * free
    else:
        budget = min(CPU_TILE_BUDGET, 0.3 * _available_memory())
    side = int(math.sqrt(budget / per_pixel)) // GRID * GRID
    return max(256, min(side, 4096))


def _available_memory() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30


def restore_pixels(
    restorer: Restorer,
    pixels: np.ndarray,
    components: list[ComponentTable] | None = None,
    *,
    tile: int = 0,
    overlap: int = DEFAULT_OVERLAP,
    context: int = DEFAULT_CONTEXT,
    seed: int = 0,
    project: bool = True,
    ensemble: bool = False,
) -> np.ndarray:
    """Restore (H, W, C) uint8 ``pixels``; returns (H, W, C) float32 in [0, 1].

    ``components`` are the JPEG's quantization tables (required by table-guided models).
    ``tile`` 0 picks the tile side from free memory; an out-of-memory error halves it and
    retries. The image is padded on the 16-pixel grid so every tile sees the true block grid;
    each tile is run with ``context`` extra pixels around it (kept on the grid), then tiles
    are blended over ``overlap`` pixels. Sampling models get the noise map of ``seed`` for
    the whole padded image, cut per tile: the same seed gives the same picture at any tile size.
    With ``project`` and ``components``, the result is moved into the file's quantization
    intervals (:func:`jpegfix.dct.project_in_bands`): it then stays an image the JPEG could
    have come from, which bounds how far a restoration can stray on a high-quality file.
    ``ensemble`` averages the restorations of the 8 rotations and flips (8x the time).
    """
    if restorer.needs_tables and components is None:
        raise InputError(f"{restorer.spec.name} needs quantization tables")
    if restorer.needs_tables and leaves_alone(components):
        return pixels.astype(np.float32) / 255
    top, left = grid_padding(components) if restorer.needs_tables else (0, 0)
    if top or left:  # tables recovered from a cropped image: put its block grid at (0, 0)
        shifted = np.pad(pixels, ((top, 0), (left, 0), (0, 0)), mode="reflect")
        restored = restore_pixels(restorer, shifted, at_origin(components), tile=tile, overlap=overlap,
                                  context=context, seed=seed, project=project, ensemble=ensemble)
        return restored[top:, left:]
    if pixels.shape[2] != restorer.spec.channels:
        kind = "grey" if pixels.shape[2] == 1 else "colour"
        raise InputError(f"{restorer.spec.name} expects {restorer.spec.channels}-channel images, this one is {kind}")
    if ensemble and restorer.samples:
        raise InputError(f"{restorer.spec.name} draws its result from noise; --ensemble averages deterministic models only")
    height, width = pixels.shape[:2]
    image = torch.from_numpy(pixels.transpose(2, 0, 1).copy()).float().div_(255)[None]
    padded_h, padded_w = -(-height // GRID) * GRID, -(-width // GRID) * GRID
    padded = _pad(image, padded_h - height, padded_w - width)
    noise = restorer.noise(seed, padded_h, padded_w)
    run = dict(tile=tile, overlap=overlap, context=context)
    if not ensemble:
        maps = _maps(restorer, components, padded_h, padded_w)
        result = _restore_padded(restorer, padded, maps, restorer.prepare(image), noise, **run)
    else:
        # x8 self-ensemble on the padded image: its sides are multiples of 16, so every
        # rotation and flip keeps the 8x8 grid where the blocks are. A flip leaves each
        # frequency's step where it was; a quarter turn swaps horizontal and vertical
        # frequencies, so it takes the transposed tables.
        result = torch.zeros_like(padded[0])
        for turns in range(4):
            for flip in (False, True):
                oriented = _orient(padded, turns, flip)
                tables = _transposed(components) if turns % 2 and components is not None else components
                maps = _maps(restorer, tables, *oriented.shape[-2:])
                vector = restorer.prepare(_orient(image, turns, flip))
                out = _restore_padded(restorer, oriented, maps, vector, None, **run)
                result += _unorient(out, turns, flip) / 8
    result = result[None, :, :height, :width]
    if project and components is not None:
        result = project_in_bands(result, image, components)  # ``image`` is the decoded input
    return result[0].permute(1, 2, 0).numpy()


def leaves_alone(components: list[ComponentTable]) -> bool:
    """True for tables too fine to restore (see :data:`FINEST_RESTORED_STEP`)."""
    return float(np.mean(components[0].table)) < FINEST_RESTORED_STEP


def _restore_padded(restorer: Restorer, padded: torch.Tensor, maps: torch.Tensor | None, vector: Any,
                    noise: torch.Tensor | None, *, tile: int, overlap: int, context: int) -> torch.Tensor:
    """Run ``restorer`` tile by tile over a (1, C, H, W) image padded to the 16-pixel grid;
    returns (C, H, W). An out-of-memory error halves the tile and retries."""
    padded_h, padded_w = padded.shape[-2:]
    margin = -(-context // GRID) * GRID

    def process(top: int, left: int, h: int, w: int) -> torch.Tensor:
        y0, x0 = max(0, top - margin), max(0, left - margin)
        y1, x1 = min(padded_h, top + h + margin), min(padded_w, left + w + margin)
        crop = padded[..., y0:y1, x0:x1]
        crop_maps = maps[..., y0:y1, x0:x1] if maps is not None else None
        crop_noise = None
        if noise is not None:
            s = restorer.noise_scale
            crop_noise = noise[..., y0 // s : y1 // s, x0 // s : x1 // s]
        out = restorer(crop, crop_maps, vector, crop_noise)[0]
        return out[:, top - y0 : top - y0 + h, left - x0 : left - x0 + w]

    side = tile or auto_tile(restorer)
    while True:
        try:
            return run_tiled(process, padded.shape[1], padded_h, padded_w, side, overlap)
        except (torch.OutOfMemoryError, RuntimeError) as error:
            if "out of memory" not in str(error).lower() or side <= 128:
                raise
            side = max(128, side // 2 // GRID * GRID)
            if restorer.device.type == "cuda":
                torch.cuda.empty_cache()


def _maps(restorer: Restorer, components: list[ComponentTable] | None, height: int, width: int) -> torch.Tensor | None:
    if not restorer.needs_tables:
        return None
    return torch.from_numpy(build_qmaps(components, height, width))[None]


def _orient(image: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    image = torch.rot90(image, turns, dims=(-2, -1))
    return torch.flip(image, dims=(-1,)) if flip else image


def _unorient(image: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    if flip:
        image = torch.flip(image, dims=(-1,))
    return torch.rot90(image, -turns, dims=(-2, -1))


def _transposed(components: list[ComponentTable]) -> list[ComponentTable]:
    """The tables of the image turned a quarter: rows and columns of frequencies swap."""
    return [ComponentTable(c.table.T, c.block_width, c.block_height) for c in components]


def _pad(image: torch.Tensor, bottom: int, right: int) -> torch.Tensor:
    if not bottom and not right:
        return image
    mode = "reflect" if bottom < image.shape[-2] and right < image.shape[-1] else "replicate"
    return F.pad(image, (0, right, 0, bottom), mode=mode)


# -- files -----------------------------------------------------------------------------


@dataclass
class RestoreOptions:
    """Choices that apply to every file of a batch."""

    model: str | None = None
    """Force one model; None picks per image (table-guided for JPEGs). A method name
    (``cqr``) picks that method's CPU-size model for each image's channel count."""
    device: str = "auto"
    tile: int = 0
    quality: int | None = None
    """Build maps from IJG tables at this quality instead of the file's (strength control)."""
    bits: int = 8
    overwrite: bool = False
    skip_existing: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_memory: float | None = DEFAULT_MAX_MEMORY_GB * 1e9
    """Refuse, before decoding, images whose estimated restore peak is over this many bytes
    (:mod:`jpegfix.limits`); None: no limit."""
    samples: int = 1
    """Candidates per image from a sampling model (One-to-Many): ``name_1.png`` ... ``name_N.png``
    (``name.png`` when 1)."""
    seed: int = 0
    """Noise seed of the first candidate; candidate i uses ``seed + i - 1``."""
    project: bool = True
    """Move table-guided results into the file's quantization intervals (see restore_pixels)."""
    ensemble: bool = False
    """Average the 8 rotations and flips (x8 self-ensemble: 8x the time)."""
    skip_clean: bool = False
    """Pass images that are already clean (judged from the pixels, :mod:`jpegfix.clean`)
    through unrestored: their decoded pixels are written losslessly as the output."""
    clean_quality: int = DEFAULT_CLEAN_QUALITY
    """IJG quality from which ``skip_clean`` counts an image as clean."""
    readout: bool = False
    """Record the CQR ranker's compression-quality readout of each input (when its weights are
    present; about 0.05 s per image) in ``FileResult.details["compression_quality"]``."""


@dataclass
class Job:
    source: Path
    target: Path


@dataclass
class FileResult:
    """What happened to one input file."""

    source: str
    target: str | None
    status: str
    """``ok``, ``skipped``, ``clean`` (passed through by ``--skip-clean``) or ``failed``."""
    error: str | None = None
    model: str | None = None
    reason: str | None = None
    """Why that model and those tables were used."""
    width: int = 0
    height: int = 0
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


def plan_jobs(inputs: list[str], out_dir: Path, *, recursive: bool = False, suffix: str = "") -> tuple[list[Job], list[FileResult]]:
    """Expand files, globs and folders into (source, target) jobs (see :mod:`jpegfix.paths`).

    Folder inputs keep their structure under ``out_dir`` (recursively with ``recursive``).
    Returns the jobs and a failed result for every input that matched nothing, cannot be
    read, is not a regular file, or whose output name is too long or collides with another's.

    Raises:
        ValueError: ``suffix`` cannot be part of a file name.
    """
    check_suffix(suffix)
    found, unusable = find_inputs(inputs, recursive=recursive)
    problems = [FileResult(item, None, "failed", reason) for item, reason in unusable]
    seen: dict[Path, Path] = {}
    jobs = []
    for item in found:
        target = out_dir / item.subfolder / output_name(item.source, suffix)
        key = target.resolve()
        too_long = name_too_long(target.parent, target.name)
        if too_long:
            problems.append(FileResult(str(item.source), None, "failed", too_long))
        elif key in seen:
            problems.append(FileResult(str(item.source), str(target), "failed",
                                       f"output name collides with that of {seen[key]}"))
        else:
            seen[key] = item.source
            jobs.append(Job(item.source, target))
    return jobs, problems


def choose_model(image: DecodedImage, options: RestoreOptions) -> tuple[str | None, list[ComponentTable] | None, str]:
    """(model name, tables to use, reason) for one image; name None: leave it as decoded.

    Table-guided default when tables are known (the file's, an earlier compression under
    them, tables recovered from the pixels, or IJG tables at ``--quality``); the blind
    default for a JPEG whose tables are unusable; ``options.model`` overrides all. An image
    that is not a JPEG and whose pixels show no JPEG quantization is left as decoded unless a
    model is forced: it was never compressed or was resized after decoding, and the blind
    models change clean photos (LIVE1, cqr-color-s: output against input 41.0 dB mean, 38.0
    worst) without a measured gain on resized ones (docs/table-recovery.md). The reason
    names the model and says why it was chosen.

    Raises:
        InputError: the image cannot be restored with the chosen model and options.
    """
    channels = image.channels
    if options.quality is not None:
        subsampling = image.subsampling or "4:2:0"
        components = ijg_components(options.quality, channels, subsampling)
        source = f"--quality {options.quality} (IJG tables, {subsampling if channels == 3 else 'grey'})"
    elif image.components is not None:
        components = image.components
        source = "JPEG quantization tables from the file"
        if _wants_tables(options, channels):
            components, source = tables_under_jpeg(image.pixels, components) or (components, source)
    else:
        components = None
        source = image.tables_problem or f"{image.format or 'this'} file has no JPEG quantization tables"
        if _wants_tables(options, channels):
            components, source = tables_from_pixels(image.pixels) or (components, source)
    if options.model:
        name, why = model_for(options.model, channels), "--model"
    elif components is not None:
        name, why = DEFAULT_TABLE_MODELS[channels], "table-guided default"
    elif image.format != "JPEG":
        blind = DEFAULT_BLIND_MODELS[channels]
        return None, None, (f"left as decoded: {source}, and its pixels show no JPEG quantization on any 8x8 grid "
                            f"(never compressed, or resized after decoding); --model {blind} restores it blind")
    else:
        name, why = DEFAULT_BLIND_MODELS[channels], "blind default"
    spec = MODELS.get(name)
    _check_restorer(spec)
    if spec.needs_tables and components is None:
        blind = DEFAULT_BLIND_MODELS[channels]
        raise InputError(f"{source}; pass --quality Q to restore it as a JPEG of quality Q, or use --model {blind}")
    if spec.channels != channels:
        other = (DEFAULT_TABLE_MODELS if spec.needs_tables else DEFAULT_BLIND_MODELS)[channels]
        kind = "grey" if channels == 1 else "colour"
        raise InputError(f"{name} is a {spec.channels}-channel model and this image is {kind}; try --model {other}")
    if components is not None and not spec.needs_tables:
        reason = f"{why}, blind model (tables not used)"
    elif spec.needs_tables and leaves_alone(components):
        reason = f"{why}, {source}; left as decoded (quality 98 or finer: nothing to restore)"
    else:
        reason = f"{why}, {source}"
    return name, components if spec.needs_tables else None, reason


def _wants_tables(options: RestoreOptions, channels: int) -> bool:
    """Whether reading tables from the pixels can change the choice: not when a blind model
    is forced."""
    return not options.model or MODELS.get(model_for(options.model, channels)).needs_tables


def _check_target(job: Job, sources: set[Path], options: RestoreOptions) -> str | None:
    """'skip' to skip the job, 'replace' for an incomplete output that --skip-existing may
    replace, None to write a new file; raises OutputError when the target must not be written.

    This is the early answer, before any work; the write itself claims the name atomically
    (:mod:`jpegfix.writer`), so a concurrent run cannot be overwritten in between.
    """
    target = job.target.resolve()
    if target in sources:
        raise OutputError("output path is an input file; choose another output folder or --suffix")
    if os.path.lexists(job.target):
        if options.skip_existing:
            return "skip" if is_complete_png(job.target) else "replace"
        if not options.overwrite:
            raise OutputError(f"{job.target} exists (use --overwrite or --skip-existing)")
    folder = job.target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create output folder {folder}: {error.strerror or error}") from None
    if not os.access(folder, os.W_OK):
        raise OutputError(f"output folder {folder} is not writable")
    return None


def candidate_targets(target: Path, samples: int) -> list[Path]:
    """``target`` itself for one sample, else ``stem_1.png`` ... ``stem_N.png`` beside it."""
    if samples == 1:
        return [target]
    return [target.with_name(f"{target.stem}_{i}{target.suffix}") for i in range(1, samples + 1)]


def restore_file(
    job: Job, options: RestoreOptions, restorers: dict[str, Restorer], sources: set[Path], reader: Any = None
) -> FileResult:
    """Restore one file; never raises for problems with that file (they go in the result).

    ``reader`` (a :class:`jpegfix.quality.QualityReader`) adds the compression-quality
    readout of the input to ``details`` when its ranker weights are present. With
    ``options.samples`` > 1 every candidate is written (``details["candidates"]``); the job
    is skipped only when all of them exist and ``skip_existing`` is set.
    """
    result = FileResult(str(job.source), str(job.target), "ok")
    started = time.perf_counter()
    try:
        targets = candidate_targets(job.target, options.samples)
        decisions = [_check_target(Job(job.source, t), sources, options) for t in targets]
        if all(d == "skip" for d in decisions):
            result.status, result.reason = "skipped", "output exists"
            return result
        result.target = str(targets[0])
        image = read_image(job.source, max_pixels=options.max_pixels, max_memory=options.max_memory)
        result.height, result.width = image.height, image.width
        if image.notes:
            result.details["notes"] = image.notes
        if options.skip_clean and _pass_clean(image, targets[0], options, result):
            return result
        name, components, reason = choose_model(image, options)
        result.model, result.reason = name, reason
        if name is None:  # nothing JPEG-like to undo: passed through like --skip-clean's clean images
            _write_decoded(image, targets[0], options)
            result.status = "clean"
            return result
        if image.components:
            quality, error = estimate_quality(image.components[0].table)
            result.details["jpeg_quality"] = {"ijg_estimate": quality, "table_error": round(error, 3)}
        if reader is not None:
            readout = reader.read(image.pixels)
            if "unavailable" not in readout:
                result.details["compression_quality"] = readout
        if name not in restorers:
            restorers[name] = load_restorer(name, options.device)
        restorer = restorers[name]
        if options.samples > 1 and not restorer.samples:
            raise InputError(f"{name} gives one result per image; --samples needs a sampling model "
                             f"(--model one-to-many)")
        candidates = []
        for index, (target, decision) in enumerate(zip(targets, decisions)):
            seed = options.seed + index
            if decision != "skip":
                restored = restore_pixels(restorer, image.pixels, components, tile=options.tile, seed=seed,
                                          project=options.project, ensemble=options.ensemble)
                replace = options.overwrite or decision == "replace"
                try:
                    write_png(target, restored, image, bits=options.bits, overwrite=replace)
                except TargetExistsError:
                    if not options.skip_existing:
                        raise
                    result.status, result.reason = "skipped", "output written meanwhile by another run"
            if restorer.samples:
                candidates.append({"path": str(target), "seed": seed})
        if candidates:
            result.details["candidates"] = candidates
    except JpegfixError as error:
        result.status, result.error = "failed", str(error)
    except OSError as error:
        result.status, result.error = "failed", f"write failed: {error.strerror or error}"
    except MemoryError:
        result.status, result.error = "failed", "out of memory (try a smaller --tile)"
    except Exception as error:  # a bug must cost one file, not the batch; the line says so
        detail = " ".join(str(error).split())[:300]
        result.status, result.error = "failed", f"unexpected error, please report: {type(error).__name__}: {detail}"
    result.seconds = time.perf_counter() - started
    return result


def _pass_clean(image: DecodedImage, target: Path, options: RestoreOptions, result: FileResult) -> bool:
    """Write a clean image's decoded pixels losslessly to ``target`` (same PNG naming, ICC,
    EXIF and orientation handling as a restored one) and mark ``result``; False when the
    image needs restoring."""
    verdict = judge_clean(image, options.clean_quality)
    result.details["clean_check"] = {"clean": verdict.clean, "quality": verdict.quality, "evidence": verdict.evidence}
    if not verdict.clean:
        return False
    _write_decoded(image, target, options)
    result.status, result.reason = "clean", f"passed through unrestored: {verdict.reason}"
    return True


def _write_decoded(image: DecodedImage, target: Path, options: RestoreOptions) -> None:
    """Write the decoded pixels unrestored (same naming, ICC, EXIF and orientation handling)."""
    write_png(target, image.pixels.astype(np.float32) / 255, image, bits=options.bits, overwrite=options.overwrite)


def restore_files(
    jobs: list[Job], options: RestoreOptions, on_result: Callable[[FileResult], None] = lambda r: None
) -> list[FileResult]:
    """Restore every job in order, reporting each result to ``on_result`` as it finishes."""
    sources = {job.source.resolve() for job in jobs}
    restorers: dict[str, Restorer] = {}
    reader = None
    if options.readout:
        from jpegfix.quality import QualityReader

        reader = QualityReader()
    results = []
    for job in jobs:
        result = restore_file(job, options, restorers, sources, reader)
        on_result(result)
        results.append(result)
    return results
