"""``jpegfix probe-ranker``: does a CQR ranker's score order JPEG qualities on unseen images?"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from jpegfix.cli.options import DeviceOpt, JsonOpt
from jpegfix.cli.render import console, err_console


def probe_ranker_command(
    data: Annotated[Path, typer.Option("--data", help="Folder of held-out images (never the training images).")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Ranker to probe (default: cqr-ranker-color).")] = None,
    qf: Annotated[str, typer.Option("--qf", help="Comma list of JPEG qualities.")] = "5,15,25,35,45,55,65,75,85,95",
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Use the first N images.")] = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Spearman correlation between the ranker's score and the true JPEG quality over held-out
    images, each compressed at every quality; also per quality mean scores and, through the
    calibration table, the mean error of the estimated quality."""
    from jpegfix.bench.ranker_probe import probe_ranker
    from jpegfix.data import list_images, load_image
    from jpegfix.devices import pick_device
    from jpegfix.errors import JpegfixError
    from jpegfix.models import MODELS
    from jpegfix.quality import RANKERS
    from jpegfix.weights import load_model

    name = model or RANKERS[3]
    try:
        spec = MODELS.get(name)
        qualities = tuple(int(q) for q in qf.split(","))
    except (JpegfixError, ValueError) as error:
        raise typer.BadParameter(str(error)) from None
    if spec.role != "ranker":
        raise typer.BadParameter(f"{name} is not a quality ranker (try {RANKERS[3]} or {RANKERS[1]})", param_hint="--model")
    if not all(1 <= q <= 100 for q in qualities):
        raise typer.BadParameter("qualities must be in 1..100", param_hint="--qf")
    try:
        ranker = load_model(spec)[0].to(pick_device(device))
        images = [load_image(path, spec.channels) for path in list_images([data])[:limit]]
        result = probe_ranker(ranker, images, qualities=qualities)
    except (JpegfixError, ValueError) as error:
        err_console.print(f"error: {error}", highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps({"model": name, "data": str(data), **asdict(result)}, indent=2))
        return
    mae = f", mean |estimated - true quality| {result.quality_mae:.1f}" if result.quality_mae is not None else ""
    console.print(f"{name} on {data} ({result.images} images): Spearman {result.spearman:.3f} pooled, "
                  f"{result.per_image_spearman:.3f} within images{mae}", highlight=False)
    table = Table("quality", "mean score")
    for quality, score in zip(result.qualities, result.mean_scores):
        table.add_row(str(quality), f"{score:+.3f}")
    console.print(table)
