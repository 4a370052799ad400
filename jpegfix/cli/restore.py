"""``jpegfix restore``: restore files, globs and folders to PNG, TIFF, WebP or JPEG files in an output folder."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer
from rich.markup import escape

from jpegfix.cli.options import BackendOpt, DeviceOpt, JsonOpt, ModelOpt, PrecisionOpt, QuietOpt, ThreadsOpt, TileOpt
from jpegfix.cli.render import console, err_console, progress_bar
from jpegfix.limits import BYTES_PER_PIXEL, DEFAULT_MAX_MEMORY_GB, parse_limit
from jpegfix.limits import BASE_BYTES as _BASE

DEFAULT_CLEAN_QUALITY = 95
"""jpegfix.clean.DEFAULT_CLEAN_QUALITY, spelled here because that module imports numpy and the
table recovery, which parsing options must not (tests/test_cli_usage.py checks that they agree)."""
_MEMORY_HELP = (
    f"Refuse, before decoding, images whose restore would need more memory than this many GB. "
    f"The estimate comes from the size the header declares: about {_BASE / 1e9:.1f} GB "
    f"(program, model, one tile) + {BYTES_PER_PIXEL[3]} bytes per colour pixel or {BYTES_PER_PIXEL[1]} "
    f"per grey pixel (measured on CPU restores). The default fits colour images up to about 114 MP "
    f"and refuses a 144 MP one in well under a second."
)


def restore_command(
    inputs: Annotated[list[str], typer.Argument(help="Image files, globs or folders; - reads one image from stdin.", show_default=False)],
    out: Annotated[str, typer.Option("--out", "-o", help="Output folder (created if missing); - writes the one image to stdout; with --cluster also a URI (s3://bucket/out).")],
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    backend: BackendOpt = "auto",
    precision: PrecisionOpt = "auto",
    threads: ThreadsOpt = 0,
    tile: TileOpt = 0,
    quality: Annotated[Optional[int], typer.Option("--quality", min=1, max=100, help="Strength: treat images as IJG JPEGs of this quality instead of reading their tables (useful for photos compressed several times).")] = None,
    samples: Annotated[int, typer.Option("--samples", min=1, max=100, help="Candidates per image from a sampling model (--model one-to-many): NAME_1.png ... NAME_N.png.")] = 1,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Noise seed of the first candidate (candidate i uses seed + i - 1); the same seed gives the same picture.")] = 0,
    project: Annotated[bool, typer.Option("--projection/--no-projection", help="Keep table-guided results inside the file's quantization intervals (an image the JPEG could have come from; guards high-quality files).")] = True,
    ensemble: Annotated[bool, typer.Option("--ensemble", help="Average the 8 rotations and flips of each image: about +0.1 dB, for 8 network passes.")] = False,
    suffix: Annotated[str, typer.Option("--suffix", help="Appended to each output file name before its extension.")] = "",
    output_format: Annotated[str, typer.Option("--format", "-f", help="Output format: png, tiff, webp (lossless), jpeg, or auto: the input's format where it is lossless (PNG, TIFF, lossless WebP), else PNG, or TIFF with --bits 16. Metadata (EXIF with GPS, ICC, XMP, IPTC, DPI, the file time) is kept where the format holds it: docs/formats.md.")] = "auto",
    bits: Annotated[Optional[int], typer.Option("--bits", help="Output bits per sample, 8 or 16 (png, tiff); default: the input's (16 for 16-bit PNGs and TIFFs).", show_default=False)] = None,
    jpeg_quality: Annotated[int, typer.Option("--jpeg-quality", min=1, max=100, help="Quality of --format jpeg outputs (4:4:4, no chroma subsampling).")] = 95,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Recurse into folders (hidden ones skipped) and let ** in a glob match folders.")] = False,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Skip files whose output exists.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs (never inputs; beside the inputs, only earlier outputs: files with their source's modification time).")] = False,
    skip_clean: Annotated[bool, typer.Option("--skip-clean", help="Pass through images that are already clean (judged from the pixels: tables recovered from them, an earlier compression under a JPEG's tables), writing their decoded pixels losslessly instead of restoring them.")] = False,
    clean_quality: Annotated[int, typer.Option("--clean-quality", min=1, max=100, help="With --skip-clean: IJG quality from which an image counts as clean.")] = DEFAULT_CLEAN_QUALITY,
    max_megapixels: Annotated[float, typer.Option("--max-megapixels", help="Refuse images that declare more megapixels (checked from the header, before decoding; any value works, Pillow's own limit is not used).")] = 150.0,
    max_memory: Annotated[float, typer.Option("--max-memory", help=_MEMORY_HELP)] = DEFAULT_MAX_MEMORY_GB,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    cluster: Annotated[Optional[str], typer.Option("--cluster", metavar="ADDRESS", rich_help_panel="Ray cluster", help="Run on a Ray cluster: auto (the running one; what `ray job submit` uses), local (start one here) or an address (ray://head:10001). Inputs may then be URIs too; complete outputs are skipped, so a rerun resumes. Needs the extra jpegfix\\[cluster]; see docs/cluster.md.")] = None,
    actors: Annotated[int, typer.Option("--concurrency", min=0, rich_help_panel="Ray cluster", help="Restoring actors (0: as many as the cluster's GPUs, or CPUs, allow).")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, rich_help_panel="Ray cluster", help="Files per actor call.")] = 4,
    gpus_per_actor: Annotated[Optional[float], typer.Option("--gpus-per-actor", min=0, rich_help_panel="Ray cluster", help="GPUs per actor (default: 1 on a cluster with GPUs, else 0: CPU actors).")] = None,
    cpus_per_actor: Annotated[float, typer.Option("--cpus-per-actor", min=0.01, rich_help_panel="Ray cluster", help="CPUs (and threads) per actor.")] = 1.0,
    results_file: Annotated[Optional[str], typer.Option("--results", rich_help_panel="Ray cluster", help="Results file, one JSON line per file (default: OUT/jpegfix-results.jsonl).")] = None,
) -> None:
    """Restore JPEG-compressed images, keeping their metadata.

    Outputs mirror the inputs' folders below their common parent; two inputs whose names
    differ only in extension (copy.jpg, copy.png) keep it in theirs (copy.jpg.png,
    copy.png.png). Hidden and macOS ._ files, and files that are not supported images,
    are skipped and counted.
    """
    from jpegfix.output import EIGHT_BIT_ONLY, FORMATS

    if bits not in (None, 8, 16):
        raise typer.BadParameter("must be 8 or 16", param_hint="--bits")
    output_format = {"jpg": "jpeg", "tif": "tiff"}.get(output_format.lower(), output_format.lower())
    if output_format not in (*FORMATS, "auto"):
        raise typer.BadParameter(f"must be one of {', '.join(FORMATS)}, auto", param_hint="--format")
    if out == STREAM and output_format == "auto":
        output_format = "png"  # what a pipe's reader expects (and PNG holds 16 bits too)
    if bits == 16 and output_format in EIGHT_BIT_ONLY:
        raise typer.BadParameter(f"{output_format} holds 8 bits per sample; use png or tiff for 16", param_hint="--bits")
    if skip_existing and overwrite:
        raise typer.BadParameter("choose one of --skip-existing and --overwrite")
    if clean_quality != DEFAULT_CLEAN_QUALITY and not skip_clean:
        raise typer.BadParameter("goes with --skip-clean", param_hint="--clean-quality")
    if cluster is None and out != STREAM:
        _check_out_folder(Path(out))
    if cluster is None and (actors, batch_size, gpus_per_actor, cpus_per_actor, results_file) != (0, 4, None, 1.0, None):
        raise typer.BadParameter("--concurrency, --batch-size, --gpus-per-actor, --cpus-per-actor and --results "
                                 "go with --cluster")
    if cluster is not None and STREAM in (*inputs, out):
        raise typer.BadParameter("- (stdin / stdout) is for one local image, not a --cluster run", param_hint="--cluster")
    for name, value in (("--max-megapixels", max_megapixels), ("--max-memory", max_memory)):
        try:
            parse_limit(value, name)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint=name) from None
    from jpegfix.paths import check_suffix

    try:
        check_suffix(suffix)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--suffix") from None
    _check_model(model, quality, samples)
    _check_streams(inputs, out, samples, as_json)
    from jpegfix.catalogue import require_weights
    from jpegfix.errors import JpegfixError

    try:  # before torch is imported and before any file: a missing model costs one line
        require_weights(model)
    except JpegfixError as error:
        err_console.print(f"[red]error[/] {escape(str(error))}", highlight=False)
        raise typer.Exit(1) from None
    from jpegfix.batch import RestoreOptions, plan_jobs

    if threads:
        import torch

        torch.set_num_threads(threads)
    options = RestoreOptions(model=model, device=device, backend=backend, precision=precision, tile=tile,
                             quality=quality, bits=bits, format=output_format, jpeg_quality=jpeg_quality,
                             samples=samples, seed=seed, project=project, ensemble=ensemble,
                             overwrite=overwrite, skip_existing=skip_existing,
                             skip_clean=skip_clean, clean_quality=clean_quality,
                             max_pixels=int(min(max_megapixels * 1e6, 2**62)),
                             max_memory=max_memory * 1e9, readout=as_json)
    with standard_streams(inputs, out) as (inputs, out, shown):
        if cluster is None:
            from jpegfix.batch import restore_files as run

            jobs, problems = plan_jobs(inputs, Path(out), recursive=recursive, suffix=suffix,
                                       output_format=output_format, bits=bits)
        else:
            jobs, problems, run = _on_cluster(inputs, out, cluster, recursive, suffix, output_format, bits,
                                              actors, batch_size, gpus_per_actor, cpus_per_actor)
        if shown.to_stdout and len(jobs) + len(problems) != 1:
            raise typer.BadParameter(f"-o - writes one image to stdout; these inputs give {len(jobs) + len(problems)}",
                                     param_hint="--out")
        results = _run(jobs, problems, options, run, quiet=quiet or shown.to_stdout, as_json=as_json, shown=shown)
        if shown.to_stdout:
            shown.send(results[0])
    if cluster is not None:
        from jpegfix.cluster import results_location, write_results

        write_results(results, results_location(out, results_file))
    if as_json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    elif quiet or shown.to_stdout:
        pass
    else:
        _summary(results)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


def _run(jobs, problems, options, run, *, quiet: bool, as_json: bool, shown: "Streams") -> list:
    """Restore ``jobs`` with ``run`` (the local batch or the cluster's) under a progress bar,
    printing each result as it comes."""
    for problem in problems:  # failed inputs, and files a folder or glob passes over
        shown.rename(problem)
        if problem.status == "failed":
            err_console.print(f"[red]error[/] {escape(problem.source)}: {escape(problem.error)}", highlight=False)
        elif not as_json and not quiet:
            console.print(_line(problem), highlight=False)
    results = list(problems)
    with progress_bar(quiet) as progress:
        task = progress.add_task("restoring", total=len(jobs), megapixels=0.0)
        done_mp = [0.0]

        def on_result(result) -> None:
            shown.rename(result)
            done_mp[0] += result.megapixels
            rate = done_mp[0] / max(progress.tasks[task].elapsed or 1e-9, 1e-9)
            progress.update(task, advance=1, megapixels=rate)
            if result.status == "failed":
                progress.console.print(f"[red]error[/] {escape(result.source)}: {escape(result.error)}", highlight=False)
            runtime = result.details.get("runtime", {})
            if runtime.get("compiled_s") and not quiet:
                progress.console.print(escape(f"note: compiled {result.model} for {runtime['backend']} in "
                                       f"{runtime['compiled_s']:.1f} s, once: later runs reuse {runtime['cache']}"),
                                       highlight=False)
            if result.status != "failed" and not as_json and not quiet:
                # Results go to stdout, as the README says; only when both streams are the same
                # terminal do they go through the bar's console, which prints above the bar.
                shared_terminal = console.is_terminal and err_console.is_terminal
                (progress.console if shared_terminal else console).print(_line(result), highlight=False)

        tiles = progress.add_task("  tiles of this image", total=None, megapixels=0.0, visible=False)

        def on_tile(done: int, total: int) -> None:
            # one large photo takes minutes: its tiles get their own bar and ETA
            state = progress.tasks[tiles]
            if done < state.completed or total != state.total:  # a new image
                progress.reset(tiles, total=total, completed=0)
            progress.update(tiles, completed=done, visible=1 < total and done < total)

        results += run(jobs, options, on_result, on_tile)
    return results


def _check_out_folder(out: Path) -> None:
    """Usage error (exit 2) when ``out`` or a folder above it is a file: otherwise every input
    of the batch would fail on it, one line each."""
    from jpegfix.paths import nearest_existing

    probe = nearest_existing(out)
    if probe.exists() and not probe.is_dir():
        what = "is a file" if probe == out else f"cannot be created: {probe} is a file"
        raise typer.BadParameter(f"{out} {what}; give an output folder", param_hint="--out")


def _check_model(model: str | None, quality: int | None, samples: int) -> None:
    """Usage errors (exit 2) of --model and the options it decides: an unknown or non-restoring
    model, --quality with a model that ignores it, --samples with a model that gives one result.
    Read from the catalogue, before torch is imported."""
    from jpegfix import catalogue
    from jpegfix.errors import InputError, UnknownModelError

    entry = None
    if model is not None:
        try:
            entry = catalogue.get(catalogue.model_for(model, 3))  # a method name stands for its -s models
            catalogue.check_restorer(entry)
        except (UnknownModelError, InputError) as error:
            raise typer.BadParameter(str(error), param_hint="--model") from None
        try:
            catalogue.check_quality(model, quality)
        except InputError as error:
            raise typer.BadParameter(str(error), param_hint="--quality") from None
    if samples > 1 and (entry is None or not entry.samples):
        raise typer.BadParameter(f"{model or 'the default models'} give one result per image; candidates need a "
                                 f"sampling model (--model one-to-many)", param_hint="--samples")


STREAM = "-"
"""An input of ``-`` is stdin, ``-o -`` stdout (``./-`` names a file called -)."""


def _check_streams(inputs: list[str], out: Path, samples: int, as_json: bool) -> None:
    """Usage errors of ``-``: stdin is one image, stdout takes one image and nothing else."""
    if STREAM in inputs and len(inputs) > 1:
        raise typer.BadParameter("- reads one image from stdin; give it as the only input", param_hint="INPUTS")
    if str(out) != STREAM:
        return
    if samples > 1:
        raise typer.BadParameter("-o - writes one image; --samples writes several (give an output folder)",
                                 param_hint="--out")
    if as_json:
        raise typer.BadParameter("--json prints to stdout, which -o - fills with the image", param_hint="--out")
    if sys.stdout.isatty():
        raise typer.BadParameter("-o - writes image data: redirect stdout to a file or a pipe", param_hint="--out")


@dataclass
class Streams:
    """Where stdin's image and stdout's output stand in the temporary folder, and how to show
    them: a result names ``-`` rather than a temporary path."""

    folder: Path | None = None
    to_stdout: bool = False
    written: Path | None = None
    """The output file that goes to stdout."""

    def rename(self, result) -> None:
        if self.folder is None:
            return
        if Path(result.source).parent == self.folder / "in":
            result.source = STREAM
        if self.to_stdout and result.target:
            self.written, result.target = Path(result.target), STREAM

    def send(self, result) -> None:
        """Copy the one output to stdout (nothing when it failed)."""
        if result.status not in ("ok", "clean"):
            return
        sys.stdout.flush()
        with open(self.written, "rb") as file:
            shutil.copyfileobj(file, sys.stdout.buffer)
        sys.stdout.buffer.flush()


@contextlib.contextmanager
def standard_streams(inputs: list[str], out: Path) -> Iterator[tuple[list[str], Path, Streams]]:
    """(inputs, output folder, Streams) with ``-`` replaced by files in a temporary folder:
    stdin's bytes become ``in/stdin``, and ``-o -`` writes into ``out/``. The batch then runs
    exactly as for files (same checks, model choice, metadata and atomic writes)."""
    if STREAM not in inputs and str(out) != STREAM:
        yield inputs, out, Streams()
        return
    with tempfile.TemporaryDirectory(prefix="jpegfix-") as temporary:
        folder = Path(temporary)
        if STREAM in inputs:
            (folder / "in").mkdir()
            (folder / "in" / "stdin").write_bytes(sys.stdin.buffer.read())
            inputs = [str(folder / "in" / "stdin")]
        to_stdout = str(out) == STREAM
        yield inputs, folder / "out" if to_stdout else out, Streams(folder, to_stdout)


def _on_cluster(inputs, out, address, recursive, suffix, output_format, bits, actors, batch_size, gpus_per_actor,
                cpus_per_actor):
    """(jobs, problems, run) for a Ray cluster run (jpegfix.cluster); usage error without Ray."""
    from jpegfix.cluster import ClusterError, ClusterSettings, connect, plan_cluster_jobs, restore_on_cluster

    try:
        connect(address)
    except ClusterError as error:  # Ray missing (says how to install it), or no cluster there
        raise typer.BadParameter(str(error), param_hint="--cluster") from None
    settings = ClusterSettings(address=address, actors=actors, batch_size=batch_size,
                               gpus_per_actor=gpus_per_actor, cpus_per_actor=cpus_per_actor)
    jobs, problems = plan_cluster_jobs(inputs, out, recursive=recursive, suffix=suffix,
                                       output_format=output_format, bits=bits)

    def run(jobs, options, on_result, on_tile=None):  # tiles run on the actors: no tile bar
        try:
            return restore_on_cluster(jobs, options, settings, on_result)
        except ClusterError as error:
            raise typer.BadParameter(str(error), param_hint="--cluster") from None

    return jobs, problems, run


def _line(result) -> str:
    if result.status == "skipped":
        return escape(f"skipped {result.source} ({result.reason})")
    notes = "".join(f"; note: {n}" for n in result.details.get("notes", []))
    if result.status == "clean":
        return escape(f"{result.source} -> {result.target}  [{result.reason}]{notes}")
    target = result.target
    candidates = result.details.get("candidates", [])
    if len(candidates) > 1:
        target = (f"{candidates[0]['path']} ... {Path(candidates[-1]['path']).name} ({len(candidates)} candidates, "
                  f"seeds {candidates[0]['seed']}-{candidates[-1]['seed']})")
    runtime = result.details.get("runtime")
    via = f"  [{runtime['backend']} {runtime['precision']}: {runtime['reason']}]" if runtime else ""
    return escape(f"{result.source} -> {target}  [{result.model}: {result.reason}]{via}  "
                  f"{result.megapixels:.1f} MP in {result.seconds:.1f} s{notes}")


def _summary(results) -> None:
    ok = [r for r in results if r.status == "ok"]
    failed = sum(r.status == "failed" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    clean = sum(r.status == "clean" for r in results)
    seconds = sum(r.seconds for r in ok)
    megapixels = sum(r.megapixels for r in ok)
    rate = f", {megapixels / seconds:.2f} MP/s" if seconds else ""
    passed = f"{clean} clean (passed through), " if clean else ""
    console.print(f"{len(ok)} restored, {passed}{skipped} skipped, {failed} failed; "
                  f"{megapixels:.1f} MP in {seconds:.1f} s{rate}", highlight=False)
