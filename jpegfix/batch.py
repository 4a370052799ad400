"""Batches of files: plan (source, target) jobs, restore each file and write its output.

Library code: it never prints or exits. Per-file problems become :class:`FileResult`
records with ``status="failed"`` and a one-line ``error``; the batch always goes on.
Pixels are :mod:`jpegfix.engine`'s concern; it is called as ``engine.X`` so that one
restore path serves the CLI, the benchmark and the Python API.
"""

from __future__ import annotations

import contextlib
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from jpegfix import engine
from jpegfix.catalogue import require_weights
from jpegfix.clean import DEFAULT_CLEAN_QUALITY
from jpegfix.clean import judge as judge_clean
from jpegfix.devices import pick_device
from jpegfix.errors import InputError, JpegfixError, OutputError
from jpegfix.jpeg import DEFAULT_MAX_PIXELS, DecodedImage, read_image, unit_float
from jpegfix.limits import DEFAULT_MAX_MEMORY_GB
from jpegfix.models.restorer import Restorer
from jpegfix.output import DEFAULT_JPEG_QUALITY, EXTENSIONS, choose_format, is_complete_output, write_image
from jpegfix.paths import check_suffix, find_inputs, name_too_long, output_paths
from jpegfix.qmaps import estimate_quality
from jpegfix.writer import TargetExistsError


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
    bits: int | None = None
    """Output bits per sample; None keeps each input's (16 for 16-bit PNGs and TIFFs)."""
    format: str = "auto"
    """``png``, ``tiff``, ``webp`` (lossless), ``jpeg``, or ``auto`` (:func:`jpegfix.output.choose_format`)."""
    jpeg_quality: int = DEFAULT_JPEG_QUALITY
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
    """Move table-guided results into the file's quantization intervals (see :func:`jpegfix.engine.restore_pixels`)."""
    ensemble: bool = False
    """Average the 8 rotations and flips (x8 self-ensemble: 8x the time)."""
    skip_clean: bool = False
    """Pass images that are already clean (judged from the pixels, :mod:`jpegfix.clean`)
    through unrestored: their decoded pixels are written losslessly as the output."""
    clean_quality: int = DEFAULT_CLEAN_QUALITY
    """IJG quality from which ``skip_clean`` counts an image as clean."""
    backend: str = "auto"
    """Where networks run: auto, torch, openvino or onnxruntime (:mod:`jpegfix.runtime`)."""
    precision: str = "auto"
    """auto, fp32, bf16 or fp16; auto keeps fp32 for 16-bit output."""
    prefetch: bool | None = None
    """Decode the next file while restoring this one; None: on GPUs (on a CPU the decoder
    would take cores from the network)."""
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
    """``ok``, ``skipped``, ``clean`` (passed through unrestored: ``--skip-clean``, or no JPEG
    history in a non-JPEG's pixels) or ``failed``."""
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


def plan_jobs(inputs: list[str], out_dir: Path, *, recursive: bool = False, suffix: str = "",
              output_format: str = "auto", bits: int | None = None) -> tuple[list[Job], list[FileResult]]:
    """Expand files, globs and folders into (source, target) jobs (the rule is
    :mod:`jpegfix.paths`'s; each output's format :func:`jpegfix.output.choose_format`'s).

    Returns the jobs, a skipped result for every file a folder or glob passes over (hidden,
    AppleDouble, not a supported image), and a failed result for every input that matched
    nothing, cannot be read, is not a regular file, or whose output name is too long.

    Raises:
        ValueError: ``suffix`` cannot be part of a file name.
    """
    check_suffix(suffix)
    found, skipped, unusable = find_inputs(inputs, recursive=recursive, output=out_dir)

    def extension(item) -> str:
        return EXTENSIONS[choose_format(output_format, item.format, item.lossless, bits)]

    planned, taken = output_paths(found, suffix, extension)
    problems = [FileResult(item, None, "failed", reason) for item, reason in unusable + taken]
    problems += [FileResult(item, None, "skipped", reason=reason) for item, reason in skipped]
    jobs = []
    for item, relative in planned:
        target = out_dir / relative
        too_long = name_too_long(target.parent, target.name)
        if too_long:
            problems.append(FileResult(str(item.source), None, "failed", too_long))
        else:
            jobs.append(Job(item.source, target))
    return jobs, problems


class Sources:
    """The batch's input files, known by resolved path and by file identity (device, inode):
    on a case-insensitive file system (macOS, Windows) ``IMG_1.JPG`` and the output name
    ``IMG_1.jpg`` resolve to two strings but are one file, which must never be replaced."""

    def __init__(self, paths: set[Path] | list[Path]):
        self.paths = {Path(p).resolve() for p in paths}
        self.ids = set()
        for path in self.paths:
            with contextlib.suppress(OSError):
                info = os.stat(path)
                self.ids.add((info.st_dev, info.st_ino))

    def holds(self, path: Path) -> bool:
        """Whether ``path`` (existing or not) is one of the inputs."""
        if path.resolve() in self.paths:
            return True
        try:
            info = os.stat(path)
        except OSError:
            return False
        return (info.st_dev, info.st_ino) in self.ids


def _check_target(job: Job, sources: Sources, options: RestoreOptions) -> str | None:
    """'skip' to skip the job, 'replace' for an incomplete output that --skip-existing may
    replace, None to write a new file; raises OutputError when the target must not be written.

    This is the early answer, before any work; the write itself claims the name atomically
    (:mod:`jpegfix.writer`), so a concurrent run cannot be overwritten in between.
    """
    if sources.holds(job.target):
        raise OutputError("output path is an input file; choose another output folder or --suffix")
    if os.path.lexists(job.target):
        if options.skip_existing:
            return "skip" if is_complete_output(job.target) else "replace"
        if not options.overwrite:
            raise OutputError(f"{job.target} exists (use --overwrite or --skip-existing)")
        if not _replaceable(job):
            raise OutputError(f"{job.target} lies beside its source and is not jpegfix's output of it (its "
                              f"modification time differs from {job.source.name}'s); not replaced: move it "
                              "or choose another output folder")
    folder = job.target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create output folder {folder}: {error.strerror or error}") from None
    if not os.access(folder, os.W_OK):
        raise OutputError(f"output folder {folder} is not writable")
    return None


OUTPUT_TIME_TOLERANCE = 2.0
"""Seconds: FAT file systems keep modification times to 2 s."""


def _replaceable(job: Job) -> bool:
    """Whether --overwrite may replace ``job.target``. Anywhere but beside the source, yes: the
    output folder is jpegfix's. Beside it (``-o`` the input's own folder) the name may belong
    to an original (``a.png`` next to ``a.jpg``); jpegfix's outputs carry their source's
    modification time, so only a file that does is taken for an earlier output."""
    if job.target.parent.resolve() != job.source.parent.resolve():
        return True
    try:
        return abs(os.stat(job.target).st_mtime - os.stat(job.source).st_mtime) < OUTPUT_TIME_TOLERANCE
    except OSError:
        return True  # gone meanwhile, or the source unreadable (its read will fail and say why)


def candidate_targets(target: Path, samples: int) -> list[Path]:
    """``target`` itself for one sample, else ``stem_1.png`` ... ``stem_N.png`` beside it."""
    if samples == 1:
        return [target]
    return [target.with_name(f"{target.stem}_{i}{target.suffix}") for i in range(1, samples + 1)]


def restore_file(
    job: Job, options: RestoreOptions, restorers: dict[str, Restorer], sources: Sources,
    reader: Any = None,
    *, on_tile: Callable[[int, int], None] | None = None, decoded: Future | None = None,
) -> FileResult:
    """Restore one file; never raises for problems with that file (they go in the result).

    ``decoded`` is the input already being read (by :func:`restore_files`' prefetch);
    ``on_tile(done, total)`` follows the tiles of each restoration.
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
        image = decoded.result() if decoded is not None else _read(job, options)
        result.height, result.width = image.height, image.width
        if image.notes:
            result.details["notes"] = image.notes
        if options.skip_clean and _pass_clean(image, targets[0], decisions[0], options, result):
            return result
        name, components, reason = engine.choose_model(image, options)
        result.model, result.reason = name, reason
        if name is None:  # nothing JPEG-like to undo: passed through like --skip-clean's clean images
            result.status = "clean"
            _write(targets[0], unit_float(image.source_pixels), image, decisions[0], options, result)
            return result
        if image.components:
            quality, error = estimate_quality(image.components[0].table)
            result.details["jpeg_quality"] = {"ijg_estimate": quality, "table_error": round(error, 3)}
        if reader is not None:
            readout = reader.read(image.pixels)
            if "unavailable" not in readout:
                result.details["compression_quality"] = readout
        bits = options.bits or image.bits
        key = name if bits <= 8 else f"{name} {bits}-bit"  # reduced precision is for 8-bit output only
        if key not in restorers:
            restorers[key] = engine.load_restorer(name, options.device, backend=options.backend,
                                                  precision=options.precision, bits=bits)
        restorer = restorers[key]
        if options.samples > 1 and not restorer.samples:
            raise InputError(f"{name} gives one result per image; --samples needs a sampling model "
                             f"(--model one-to-many)")
        candidates = []
        for index, (target, decision) in enumerate(zip(targets, decisions)):
            seed = options.seed + index
            if decision != "skip":
                restored = engine.restore_pixels(restorer, image.source_pixels, components, tile=options.tile,
                                                 seed=seed, project=options.project, ensemble=options.ensemble,
                                                 on_tile=on_tile)
                _write(target, restored, image, decision, options, result)
            if restorer.samples:
                candidates.append({"path": str(target), "seed": seed})
        if candidates:
            result.details["candidates"] = candidates
        result.details["runtime"] = restorer.runner.choice.to_dict()
        restorer.runner.choice.compiled_s = 0.0  # the compile is reported with the file that paid for it
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


def _pass_clean(image: DecodedImage, target: Path, decision: str | None, options: RestoreOptions,
                result: FileResult) -> bool:
    """Write a clean image's decoded pixels to ``target`` (same naming, format and metadata
    as a restored one) and mark ``result``; False when the image needs restoring."""
    verdict = judge_clean(image, options.clean_quality)
    result.details["clean_check"] = {"clean": verdict.clean, "quality": verdict.quality, "evidence": verdict.evidence}
    if not verdict.clean:
        return False
    result.status, result.reason = "clean", f"passed through unrestored: {verdict.reason}"
    _write(target, unit_float(image.source_pixels), image, decision, options, result)
    return True


def _write(target: Path, pixels, image: DecodedImage, decision: str | None, options: RestoreOptions,
           result: FileResult) -> None:
    """Write one output, restored or passed through, as :func:`_check_target` decided: an
    incomplete output is replaced under --skip-existing, and a name claimed meanwhile by
    another run is a skip under --skip-existing (an error otherwise)."""
    try:
        write_image(target, pixels, image, options.bits, jpeg_quality=options.jpeg_quality,
                    overwrite=options.overwrite or decision == "replace")
    except TargetExistsError:
        if not options.skip_existing:
            raise
        result.status, result.reason = "skipped", "output written meanwhile by another run"


def _read(job: Job, options: RestoreOptions) -> DecodedImage:
    return read_image(job.source, max_pixels=options.max_pixels, max_memory=options.max_memory)


def restore_files(
    jobs: list[Job], options: RestoreOptions, on_result: Callable[[FileResult], None] = lambda r: None,
    on_tile: Callable[[int, int], None] | None = None,
) -> list[FileResult]:
    """Restore every job in order, reporting each result to ``on_result`` as it finishes
    (and each tile to ``on_tile(done, total)``).

    With ``options.prefetch`` (the default on GPUs) the next file is decoded in a thread
    while the current one is restored, so the GPU does not wait for the decoder.

    Raises:
        MissingWeightsError: a forced model (``options.model``) has no weights, before any file.
    """
    require_weights(options.model)
    sources = Sources([job.source for job in jobs])
    restorers: dict[str, Restorer] = {}
    reader = None
    if options.readout:
        from jpegfix.quality import QualityReader

        reader = QualityReader(backend=options.backend)
    prefetch = options.prefetch if options.prefetch is not None else pick_device(options.device).type != "cpu"
    results = []
    with ThreadPoolExecutor(max_workers=1) if prefetch else contextlib.nullcontext() as pool:
        ahead: Future | None = pool.submit(_read, jobs[0], options) if pool and jobs else None
        for index, job in enumerate(jobs):
            decoded, ahead = ahead, None
            if pool and index + 1 < len(jobs):
                ahead = pool.submit(_read, jobs[index + 1], options)
            result = restore_file(job, options, restorers, sources, reader, on_tile=on_tile, decoded=decoded)
            on_result(result)
            results.append(result)
    return results
