"""``jpegfix probe-tables``: how well are JPEG tables recovered from decoded pixels?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from jpegfix.cli.options import JsonOpt
from jpegfix.cli.render import console, err_console


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter("must be a comma list of integers", param_hint=option) from None
    if not all(1 <= v <= 100 for v in values):
        raise typer.BadParameter("qualities must be in 1..100", param_hint=option)
    return values


def probe_tables_command(
    data: Annotated[list[Path], typer.Option("--data", help="Image folder(s); repeat for several sets.")],
    qf: Annotated[str, typer.Option("--qf", help="Comma list of JPEG qualities for the aligned case.")] = "5,10,20,30,40,50,60,70,80,90,95,100",
    subsampling: Annotated[str, typer.Option("--subsampling", help="Comma list: 4:2:0, 4:4:4 (colour images).")] = "4:2:0,4:4:4",
    special: Annotated[str, typer.Option("--special-qf", help="Qualities of the grid-shifted and 0.75x-resized cases.")] = "10,30,50,90",
    double: Annotated[str, typer.Option("--double", help="FIRST/SECOND quality pairs, comma separated.")] = "10/90,20/90,30/90,10/95,20/95,30/95",
    grey: Annotated[bool, typer.Option("--grey", help="Probe the grey (luma) versions of the images.")] = False,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Use the first N images of each folder.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Compress each image in memory (a PNG copy of a JPEG holds exactly its decoding), recover
    the tables from the pixels and score: luma table exact, all tables exact, quality within 2,
    grid offset of crops, false "found" on clean and resized images, and the earlier quality of
    double compressions."""
    from jpegfix.bench.table_probe import TableProbe, probe_image, summary
    from jpegfix.data import list_images, load_image
    from jpegfix.errors import JpegfixError

    qualities, specials = _ints(qf, "--qf"), _ints(special, "--special-qf")
    layouts = tuple(s.strip() for s in subsampling.split(",") if s.strip())
    if not set(layouts) <= {"4:2:0", "4:4:4"} or not layouts:
        raise typer.BadParameter("choose from 4:2:0 and 4:4:4", param_hint="--subsampling")
    try:
        doubles = tuple((int(a), int(b)) for a, b in (pair.split("/") for pair in double.split(",") if pair.strip()))
    except ValueError:
        raise typer.BadParameter("pairs look like 10/90", param_hint="--double") from None
    results = {}
    try:
        for folder in data:
            probe = TableProbe()
            for path in list_images([folder])[:limit]:
                probe_image(probe, load_image(path, 1 if grey else 3), qualities, layouts, specials, doubles)
            results[str(folder)] = probe
    except (JpegfixError, OSError) as error:
        err_console.print(f"error: {error}", highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps({name: {"summary": summary(p), "rows": [r.rates() for r in p.rows.values()]}
                          for name, p in results.items()}, indent=2))
        return
    for name, probe in results.items():
        console.print(f"[bold]{name}[/]: {summary(probe)}", highlight=False)
        table = Table("case", "quality", "layout", "images", "found", "luma exact", "all exact", "within 2", "offset")
        for row in probe.rows.values():
            rates = row.rates()
            cell = lambda key: f"{rates[key]:.3f}" if rates[key] is not None else "-"
            table.add_row(row.case, row.quality, row.subsampling, str(row.images), cell("found_rate"),
                          cell("luma_exact_rate"), cell("all_exact_rate"), cell("within_2_rate"), cell("offset_right_rate"))
        console.print(table)
