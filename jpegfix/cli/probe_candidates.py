"""``jpegfix probe-candidates``: evidence for a sampling model beyond PSNR (see bench/candidates.py)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from jpegfix.cli.options import DeviceOpt, JsonOpt
from jpegfix.cli.render import console, err_console


def probe_candidates_command(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Registered set (live1, ...) or a folder.")] = "live1",
    model: Annotated[str, typer.Option("--model", "-m", help="Sampling model.")] = "one-to-many-color-s",
    qf: Annotated[str, typer.Option("--qf", help="Comma list of JPEG qualities.")] = "10,30,50",
    samples: Annotated[int, typer.Option("--samples", min=2, help="Candidates per image (seeds 0..N-1).")] = 4,
    reference: Annotated[Optional[str], typer.Option("--reference", help="A pixel-loss model to compare with (default: the table-guided default).")] = None,
    ablation: Annotated[Optional[Path], typer.Option("--ablation", help="Weights folder of the same model trained without shift-and-average (jpegfix train --set shift_average=false --export ... --weights-dir DIR).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Use the first N images.")] = None,
    data_root: Annotated[Optional[Path], typer.Option("--data-root", help="Where data sets live.")] = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Share of luma DCT coefficients inside the input's quantization intervals, diversity
    between candidates, seed reproducibility, and 2-pixel-period (grid) energy with and
    without shift-and-average."""
    from jpegfix.bench.candidates import probe_candidates
    from jpegfix.bench.datasets import resolve_dataset
    from jpegfix.engine import DEFAULT_TABLE_MODELS, load_restorer
    from jpegfix.errors import JpegfixError

    try:
        qualities = tuple(int(q) for q in qf.split(","))
    except ValueError:
        raise typer.BadParameter("qualities must be integers", param_hint="--qf") from None
    if not all(1 <= q <= 100 for q in qualities):
        raise typer.BadParameter("qualities must be in 1..100", param_hint="--qf")
    try:
        restorer = load_restorer(model, device)
        data = resolve_dataset(dataset, data_root, limit=limit)
        images = [data.load(path) for path in data.paths]
        channels = restorer.spec.channels
        ref = load_restorer(reference or DEFAULT_TABLE_MODELS[channels], device)
        plain = load_restorer(model, device, folder=ablation) if ablation else None
        if plain is not None and plain.net.shift_average:
            raise JpegfixError(f"the model in {ablation} uses shift-and-average: it is not the ablation")
        results = probe_candidates(restorer, images, qualities, samples=samples, reference=ref, ablation=plain)
    except (JpegfixError, ValueError) as error:
        err_console.print(f"error: {error}", highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps({"model": model, "dataset": dataset, "images": len(images), "samples": samples,
                          "results": [asdict(r) for r in results]}, indent=2))
        return
    console.print(f"{model} on {dataset} ({len(images)} images, {samples} candidates each, seeds 0-{samples - 1})",
                  highlight=False)
    for result in results:
        table = Table("q" + str(result.quality), "PSNR dB", "luma coefficients inside intervals", "2-px-period RMS")
        table.add_row("original", "-", "-", f"{result.period2['original']:.3f}")
        for name in result.inside:
            table.add_row(name, f"{result.psnr[name]:.2f}", f"{100 * result.inside[name]:.2f}%", f"{result.period2[name]:.3f}")
        console.print(table)
        console.print(f"  diversity between candidates: {result.diversity:.2f} grey levels (mean |a - b|); "
                      f"seed 0 twice identical: {'yes' if result.reproducible else 'NO'}", highlight=False)
