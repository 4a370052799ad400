"""``jpegfix probe-encoder``: does a contrastive model's encoder separate JPEG qualities?"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from jpegfix.cli.options import DeviceOpt, JsonOpt
from jpegfix.cli.render import console, err_console


def probe_command(
    data: Annotated[Path, typer.Option("--data", help="Folder of held-out images (never the training images).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Contrastive model whose encoder is probed.")] = "contrastive-color-s",
    crops: Annotated[int, typer.Option("--crops", min=1, help="Crops per image, each cut at every quality.")] = 8,
    size: Annotated[int, typer.Option("--size", min=16, help="Crop side in pixels.")] = 64,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Nearest-neighbour classification of held-out crops into qualities 10..90 from encoder
    vectors: accuracy and confusion table (references and queries come from different images)."""
    from jpegfix.bench.encoder_probe import probe_encoder
    from jpegfix.data import list_images, load_image
    from jpegfix.engine import load_restorer
    from jpegfix.errors import JpegfixError
    from jpegfix.models import MODELS

    name = model
    try:
        spec = MODELS.get(name)
    except JpegfixError as error:
        raise typer.BadParameter(str(error), param_hint="--model") from None
    if spec.method != "contrastive":
        raise typer.BadParameter(f"{name} has no compression-quality encoder (a contrastive model has)", param_hint="--model")
    try:
        encoder = load_restorer(name, device).net.encoder
        images = [load_image(path, spec.channels) for path in list_images([data])]
        result = probe_encoder(encoder, images, crops=crops, size=size)
    except (JpegfixError, ValueError) as error:
        err_console.print(f"error: {error}", highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps({"model": name, "data": str(data), **asdict(result), "chance": result.chance}, indent=2))
        return
    console.print(f"{name} on {data}: accuracy {result.accuracy:.3f} (chance {result.chance:.3f}), "
                  f"mean |quality error| {result.mean_abs_error:.1f}; {result.queries} query crops against "
                  f"{result.references} references from {result.images} images, {size}px", highlight=False)
    table = Table(title="rows: true quality, columns: nearest reference's quality")
    table.add_column("true")
    for quality in result.qualities:
        table.add_column(str(quality), justify="right")
    for quality, row in zip(result.qualities, result.confusion):
        table.add_row(str(quality), *(str(n) for n in row))
    console.print(table)
