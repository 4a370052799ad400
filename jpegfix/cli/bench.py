"""``jpegfix bench``: score models against plain JPEG, published figures and peers; speed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from jpegfix.cli.options import DeviceOpt, JsonOpt, QuietOpt
from jpegfix.cli.render import console, err_console

BAD_INPUT = 2


def bench_command(
    dataset: Annotated[Optional[str], typer.Option(
        "--dataset", "-d", help="Comma list of live1, live1_gray, classic5, bsds500, bsds500_gray, bsds500_half, "
                                "bsds500_half_gray (BSDS500 at half size: references without their own quality-95 "
                                "blocking, for high qualities) or image folders (default: live1; none with --speed "
                                "alone).")] = None,
    qf: Annotated[Optional[str], typer.Option(
        "--qf", help="Comma list of JPEG qualities 1..100 (default 10,20,30,40) and/or 'none': the clean image "
                     "as input, scored against itself (how much a model changes an image that needs nothing).")] = None,
    tables: Annotated[str, typer.Option(
        "--tables", help="Compress with 'ijg' tables at each --qf quality, or with every table of a named "
                         "real-world set (cameras, phones, editors; one column per table, labelled with its "
                         "nearest IJG quality; --qf then only takes 'none').")] = "ijg",
    requality: Annotated[Optional[int], typer.Option(
        "--requality", help="Double compression: save each decoded JPEG again at this IJG quality on the same "
                            "grid; models get that file's (last) tables.")] = None,
    resize: Annotated[Optional[float], typer.Option(
        "--resize", help="Resize each decoded image by this factor (bicubic, antialiased); the input has no "
                         "tables; the reference is the clean image resized alike.")] = None,
    shift: Annotated[Optional[str], typer.Option(
        "--shift", help="X,Y: crop X columns and Y rows off each decoded image (off the 8x8 grid); the input "
                        "has no tables; the reference is cropped alike.")] = None,
    model: Annotated[Optional[str], typer.Option(
        "--model", "-m", help="Comma list of jpegfix models, peers (arcnn, dncnn3) and `default` (what `jpegfix restore` picks per image, with no --model). The jpeg row is always shown.")] = None,
    peers_dir: Annotated[Optional[Path], typer.Option(
        "--peers-dir", help="Folder with arcnn/q*.mat and dncnn3/DnCNN3.mat (default: the development checkout's shared peers folder, when there is one).")] = None,
    no_peers: Annotated[bool, typer.Option(
        "--no-peers", help="Run peers only when named in --model, even if their weights are present.")] = False,
    data_root: Annotated[Optional[Path], typer.Option(
        "--data-root", help="Folder holding the data set folders (else $JPEGFIX_DATA, then the download cache, then the development checkout's shared data, when there is one).")] = None,
    subsampling: Annotated[str, typer.Option(
        "--subsampling", help="Chroma subsampling of colour JPEGs: 420, 422 or 444.")] = "420",
    channel: Annotated[Optional[str], typer.Option(
        "--channel", help="Score colour sets on rgb or y (MATLAB BT.601 luma); grey sets are always y.")] = None,
    project: Annotated[bool, typer.Option("--projection/--no-projection", help="Project table-guided results into the file's quantization intervals, as restore does by default.")] = True,
    ensemble: Annotated[bool, typer.Option("--ensemble", help="x8 self-ensemble of jpegfix's models, as restore --ensemble.")] = False,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Use the first N images of each set.")] = None,
    save_images: Annotated[Optional[Path], typer.Option("--save-images", help="Keep decoded and restored images here (PNG).")] = None,
    json_output: JsonOpt = False,
    csv_path: Annotated[Optional[Path], typer.Option("--csv", help="Write one row per image, model and quality.")] = None,
    markdown_path: Annotated[Optional[Path], typer.Option("--markdown", help="Write the tables as Markdown.")] = None,
    plot_path: Annotated[Optional[Path], typer.Option("--plot", help="Write a PNG: PSNR gain vs quality; gain vs speed.")] = None,
    speed: Annotated[bool, typer.Option("--speed", help="Time every model on one synthetic image of --size.")] = False,
    size: Annotated[str, typer.Option("--size", help="Speed input, WIDTHxHEIGHT.")] = "2048x1536",
    repeats: Annotated[int, typer.Option("--repeats", help="Timed calls per model (median reported).")] = 3,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed calls first (the first also counts MACs).")] = 1,
    backends: Annotated[str, typer.Option("--backend", help="Runtimes: with --speed, comma-separated, each timed (torch, openvino, onnxruntime, auto; 'all': torch and every installed one); for scores, the one named (else auto).")] = "all",
    precisions: Annotated[str, typer.Option("--precision", help="Precisions: with --speed, comma-separated, each timed (fp32, bf16, fp16, auto); for scores, the one named.")] = "fp32",
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """Benchmark models on standard sets: PSNR, SSIM, PSNR-B per quality beside plain JPEG,
    the peers and published figures, and the harm (images made worse, the worst loss); with
    --speed, time and memory per model.

    Inputs without tables (--qf none, --resize, --shift) go to table-guided models through
    the restore engine's model choice for a PNG; where it gives no tables the model is
    refused for that image (a note, not a failure). See docs/bench.md."""
    from jpegfix.bench import datasets as data_sets
    from jpegfix.bench.peers import default_peers_dir
    from jpegfix.bench.cases import IJG_TABLES, Degradation
    from jpegfix.bench.protocol import SUBSAMPLINGS, BenchSettings, plan_columns
    from jpegfix.bench.rows import plan_rows
    from jpegfix.errors import JpegfixError

    try:
        if qf is None:
            qualities: list[int | None] = [10, 20, 30, 40] if tables == IJG_TABLES else []
        else:
            qualities = _qualities(qf)
        if subsampling not in SUBSAMPLINGS:
            raise ValueError(f"--subsampling must be 420, 422 or 444, got {subsampling!r}")
        if channel is not None and channel not in ("rgb", "y"):
            raise ValueError(f"--channel must be rgb or y, got {channel!r}")
        width, height = _size(size)
        for option, value in (("--limit", limit), ("--repeats", repeats), ("--warmup", warmup)):
            if value is not None and value < 1:
                raise ValueError(f"{option} must be at least 1, got {value}")
        degradation = Degradation(requality, resize, _shift(shift) if shift is not None else None)
        settings = BenchSettings(tuple(qualities), SUBSAMPLINGS[subsampling], channel, save_images, tables, degradation,
                                 project, ensemble)
        plan_columns(settings)  # an unknown table set is bad input, before any model loads
        names = _split(dataset) if dataset else ([] if speed else ["live1"])
        sets = [data_sets.resolve_dataset(name, data_root, limit=limit) for name in names]
        peers = peers_dir if peers_dir is not None else default_peers_dir()
        refs = plan_rows(_split(model) if model else [], peers, auto_peers=not no_peers)
    except (ValueError, JpegfixError) as error:
        _bad_input(error)
        return

    runtime = _single(_backends(backends)), _single(_split(precisions))
    result = _run_quality(sets, refs, settings, device, quiet, runtime)
    if speed:
        axes = (_backends(backends), tuple(_split(precisions)))
        result.speed = _run_speed(refs, device, width, height, repeats, warmup, settings.subsampling, quiet, axes)
    _render(result, json_output)
    _write_files(result, csv_path, markdown_path, plot_path)
    failed = sum(len(run.failures) for run in result.datasets) + sum(1 for s in result.speed if s.error)
    if failed:
        err_console.print(f"{failed} failure(s); see above" + (" and the JSON/CSV output" if json_output or csv_path else ""))
        raise typer.Exit(1)


def _single(values) -> str:  # type: ignore[no-untyped-def]
    """The one value given, else auto (quality rows run on one runtime: the speed axes' list
    applies to --speed)."""
    return values[0] if len(values) == 1 else "auto"


def _run_quality(sets, refs, settings, device, quiet, runtime=("auto", "auto")):  # type: ignore[no-untyped-def]
    import gc

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from jpegfix.bench.protocol import BenchResult, describe_protocol, run_benchmark
    from jpegfix.bench.rows import load_row
    from jpegfix.errors import JpegfixError

    if not sets:
        return BenchResult(settings, [r.name for r in refs], [], describe_protocol(settings, [], {}))
    try:
        rows = [(ref.name, load_row(ref, device, *runtime)) for ref in refs]
    except JpegfixError as error:
        _bad_input(error)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=err_console, transient=True, disable=quiet)
    with progress:
        task = progress.add_task("bench", total=None)

        def on_event(event) -> None:  # type: ignore[no-untyped-def]
            if event.failure is not None:
                f = event.failure
                what = f"{f.model} " if f.model else ""
                column = f" {f.column}" if f.column else ""
                progress.console.print(f"failed: {f.dataset}/{f.image}{column} {what}- {f.error}", highlight=False)
            if event.done >= 0:
                progress.update(task, completed=event.done, total=event.total, description=event.message)

        result = run_benchmark(sets, rows, settings, on_event)
    del rows
    gc.collect()
    return result


def _backends(text: str) -> tuple[str, ...]:
    from jpegfix.runtime import CPU_RUNTIMES, installed

    if text == "all":
        return ("torch", *(b for b in CPU_RUNTIMES if installed(b)))
    return tuple(_split(text))


def _run_speed(refs, device, width, height, repeats, warmup, subsampling, quiet, axes):  # type: ignore[no-untyped-def]
    from jpegfix.bench.speed import measure_rows

    models = [r for r in refs if r.kind in ("peer", "jpegfix")]  # the default row is a policy, not one network
    if not models:
        err_console.print("speed: no model to time (the jpeg row has no network)")
        return []

    def on_result(result) -> None:  # type: ignore[no-untyped-def]
        if not quiet:
            text = f"error: {result.error}" if result.error else f"{result.megapixels_per_s:.3f} MP/s"
            err_console.print(f"speed {result.model} {result.backend} {result.precision}: {text}", highlight=False)

    if not quiet:
        err_console.print(f"speed: {len(models)} model(s) on {width}x{height}, {warmup} warm-up + {repeats} timed calls each")
    return measure_rows(models, device, width, height, repeats=repeats, warmup=warmup, subsampling=subsampling,
                        isolate=True, on_result=on_result, backends=axes[0], precisions=axes[1])


def _render(result, json_output: bool) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    from jpegfix.bench.report import (HARM_TOLERANCE_DB, case_title, speed_cells, speed_header, summarize,
                                      table_cells, to_json)

    if json_output:
        typer.echo(json.dumps(to_json(result), indent=2))
        return
    protocol = result.protocol
    console.print(f"[dim]{protocol.get('encoder', '')}; subsampling {result.settings.subsampling}; "
                  f"torch {protocol.get('torch', '')}[/dim]")
    for summary in summarize(result):
        header, body = table_cells(summary)
        channel = "RGB" if summary.channel == "rgb" else "Y (BT.601 luma)"
        table = Table(title=f"{summary.name}: {channel}, {summary.images} images{case_title(result.settings)}",
                      caption=f"PSNR dB (gain over JPEG) / SSIM / PSNR-B dB / harm: images worse than their "
                              f"input, of those more than {HARM_TOLERANCE_DB:g} dB worse, worst gain (clean input: "
                              f"PSNR vs input, mean and lowest); * some images failed or were refused; "
                              "† gain over our JPEG row", show_lines=True)
        for index, name in enumerate(header):
            table.add_column(name, justify="left" if index == 0 else "right", no_wrap=index == 0)
        for cells, row in zip(body, summary.rows):
            table.add_row(*cells, style="dim italic" if row.kind == "published" else None)
        console.print(table)
        for note in summary.notes:
            console.print(f"  {note}", highlight=False)
    if result.speed:
        table = Table(title="speed", caption="peak MB: peak RSS (CPU) or allocator peak (CUDA); "
                                             "+MB: RSS increase over the loaded model")
        for index, name in enumerate(speed_header()):
            table.add_column(name, justify="left" if index < 3 else "right", no_wrap=index == 0)
        for cells in speed_cells(result.speed):
            table.add_row(*cells)
        from rich.console import Console

        # ten columns: print them whole even on a narrow terminal (it wraps lines, no figure is cut)
        Console(file=console.file, width=max(console.width, 140), soft_wrap=True).print(table)


def _write_files(result, csv_path, markdown_path, plot_path) -> None:  # type: ignore[no-untyped-def]
    from jpegfix.bench.report import markdown, write_csv, write_plot

    if csv_path:
        write_csv(result, csv_path)
        err_console.print(f"wrote {csv_path}")
    if markdown_path:
        Path(markdown_path).write_text(markdown(result))
        err_console.print(f"wrote {markdown_path}")
    if plot_path:
        write_plot(result, plot_path)
        err_console.print(f"wrote {plot_path}")


def _bad_input(error: Exception) -> None:
    err_console.print(f"error: {error}", highlight=False, soft_wrap=True)
    raise typer.Exit(BAD_INPUT)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _qualities(text: str) -> list[int | None]:
    values: list[int | None] = []
    for part in _split(text):
        if part.lower() == "none":
            values.append(None)
            continue
        try:
            value = int(part)
        except ValueError:
            raise ValueError(f"--qf takes whole numbers 1..100 or none, got {part!r}") from None
        if not 1 <= value <= 100:
            raise ValueError(f"JPEG quality must be in 1..100, got {value}")
        values.append(value)
    if not values:
        raise ValueError("--qf needs at least one quality")
    return sorted(set(values), key=lambda q: -1 if q is None else q)


def _shift(text: str) -> tuple[int, int]:
    try:
        x, y = (int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--shift takes X,Y in pixels, got {text!r}") from None
    return x, y


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size takes WIDTHxHEIGHT, got {text!r}") from None
    if width < 16 or height < 16:
        raise ValueError(f"--size must be at least 16x16, got {text!r}")
    return width, height
