"""``jpegfix restore``: restore files, globs and folders to PNGs in an output folder."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from jpegfix.cli.options import DeviceOpt, JsonOpt, ModelOpt, QuietOpt, TileOpt
from jpegfix.cli.render import console, err_console, progress_bar
from jpegfix.limits import BYTES_PER_PIXEL, DEFAULT_MAX_MEMORY_GB, parse_limit
from jpegfix.limits import BASE_BYTES as _BASE

_MEMORY_HELP = (
    f"Refuse, before decoding, images whose restore would need more memory than this many GB. "
    f"The estimate comes from the size the header declares: about {_BASE / 1e9:.1f} GB "
    f"(program, model, one tile) + {BYTES_PER_PIXEL[3]} bytes per colour pixel or {BYTES_PER_PIXEL[1]} "
    f"per grey pixel (measured on CPU restores). The default fits colour images up to about 114 MP "
    f"and refuses a 144 MP one in well under a second."
)


def restore_command(
    inputs: Annotated[list[str], typer.Argument(help="Image files, globs or folders.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (created if missing).")],
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    tile: TileOpt = 0,
    quality: Annotated[Optional[int], typer.Option("--quality", min=1, max=100, help="Strength: treat images as IJG JPEGs of this quality instead of reading their tables (useful for photos compressed several times).")] = None,
    samples: Annotated[int, typer.Option("--samples", min=1, max=100, help="Candidates per image from a sampling model (--model one-to-many): NAME_1.png ... NAME_N.png.")] = 1,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Noise seed of the first candidate (candidate i uses seed + i - 1); the same seed gives the same picture.")] = 0,
    project: Annotated[bool, typer.Option("--projection/--no-projection", help="Keep table-guided results inside the file's quantization intervals (an image the JPEG could have come from; guards high-quality files).")] = True,
    ensemble: Annotated[bool, typer.Option("--ensemble", help="Average the 8 rotations and flips of each image: slightly better, 8x slower.")] = False,
    suffix: Annotated[str, typer.Option("--suffix", help="Appended to each output file name before .png.")] = "",
    bits: Annotated[int, typer.Option("--bits", help="Output bit depth, 8 or 16.")] = 8,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Recurse into folders and mirror their structure.")] = False,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Skip files whose output exists.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs (never inputs).")] = False,
    skip_clean: Annotated[bool, typer.Option("--skip-clean", help="Pass through images that are already clean (judged from the pixels: recovered tables, an earlier compression under a JPEG's tables, the quality ranker), writing their decoded pixels losslessly instead of restoring them.")] = False,
    clean_quality: Annotated[int, typer.Option("--clean-quality", min=1, max=100, help="With --skip-clean: IJG quality from which an image counts as clean.")] = 95,
    max_megapixels: Annotated[float, typer.Option("--max-megapixels", help="Refuse images that declare more megapixels (checked from the header, before decoding; any value works, Pillow's own limit is not used).")] = 150.0,
    max_memory: Annotated[float, typer.Option("--max-memory", help=_MEMORY_HELP)] = DEFAULT_MAX_MEMORY_GB,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Restore JPEG-compressed images and write PNGs, keeping ICC profile, EXIF and orientation."""
    if bits not in (8, 16):
        raise typer.BadParameter("must be 8 or 16", param_hint="--bits")
    if skip_existing and overwrite:
        raise typer.BadParameter("choose one of --skip-existing and --overwrite")
    for name, value in (("--max-megapixels", max_megapixels), ("--max-memory", max_memory)):
        try:
            parse_limit(value, name)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint=name) from None
    from jpegfix.engine import RestoreOptions, model_for, plan_jobs, restore_files
    from jpegfix.paths import check_suffix

    try:
        check_suffix(suffix)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--suffix") from None
    from jpegfix.models import MODELS

    if model is not None:
        from jpegfix.errors import UnknownModelError

        try:
            spec = MODELS.get(model_for(model, 3))  # a method name stands for its -s models
        except UnknownModelError as error:
            raise typer.BadParameter(str(error), param_hint="--model") from None
        if spec.role != "restorer":
            raise typer.BadParameter(f"{model} is a compression-quality {spec.role}, not a restoration model",
                                     param_hint="--model")
    if samples > 1 and (model is None or not spec.samples):
        raise typer.BadParameter(f"{model or 'the default models'} give one result per image; candidates need a "
                                 f"sampling model (--model one-to-many)", param_hint="--samples")
    options = RestoreOptions(model=model, device=device, tile=tile, quality=quality, bits=bits,
                             samples=samples, seed=seed, project=project, ensemble=ensemble,
                             overwrite=overwrite, skip_existing=skip_existing,
                             skip_clean=skip_clean, clean_quality=clean_quality,
                             max_pixels=int(min(max_megapixels * 1e6, 2**62)),
                             max_memory=max_memory * 1e9, readout=as_json)
    jobs, problems = plan_jobs(inputs, out, recursive=recursive, suffix=suffix)
    for problem in problems:
        err_console.print(f"[red]error[/] {escape(problem.source)}: {escape(problem.error)}", highlight=False)
    results = list(problems)
    with progress_bar(quiet) as progress:
        task = progress.add_task("restoring", total=len(jobs), megapixels=0.0)
        done_mp = [0.0]

        def on_result(result) -> None:
            done_mp[0] += result.megapixels
            rate = done_mp[0] / max(progress.tasks[task].elapsed or 1e-9, 1e-9)
            progress.update(task, advance=1, megapixels=rate)
            if result.status == "failed":
                progress.console.print(f"[red]error[/] {escape(result.source)}: {escape(result.error)}", highlight=False)
            elif not as_json and not quiet:
                # Results go to stdout, as the README says; only when both streams are the same
                # terminal do they go through the bar's console, which prints above the bar.
                shared_terminal = console.is_terminal and err_console.is_terminal
                (progress.console if shared_terminal else console).print(_line(result), highlight=False)

        results += restore_files(jobs, options, on_result)
    if as_json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    elif quiet:
        pass
    else:
        _summary(results)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


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
    return escape(f"{result.source} -> {target}  [{result.model}: {result.reason}]  "
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
