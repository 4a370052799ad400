"""``jpegfix info``: what a file is and how it was compressed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from jpegfix.cli.options import JsonOpt
from jpegfix.cli.render import console, err_console


def describe(path: Path, reader=None) -> dict:
    """Facts about ``path`` as plain data (raises JpegfixError for unreadable files).

    With a :class:`jpegfix.quality.QualityReader`, ``compression_quality`` holds the CQR
    ranker's readout (or ``{"unavailable": how to get the ranker}``), for any image format.
    """
    from jpegfix.jpeg import read_image
    from jpegfix.qmaps import IJG_CHROMA, IJG_LUMA, estimate_quality

    image = read_image(path)
    facts = {
        "file": str(path), "format": image.format, "width": image.width, "height": image.height,
        "mode": "grey" if image.channels == 1 else "RGB", "alpha": image.alpha is not None,
        "orientation": image.orientation, "icc_profile": len(image.icc_profile or b""),
        "exif": len(image.exif or b""),
    }
    if image.format == "JPEG":
        facts.update(coding=image.coding, progressive=image.progressive, subsampling=image.subsampling or None)
    if image.components:
        facts["tables"] = [c.table.tolist() for c in image.components]
        quality, error = estimate_quality(image.components[0].table, IJG_LUMA)
        estimate = {"quality": quality, "luma_error": round(error, 3)}
        if len(image.components) > 1:
            estimate["chroma_error"] = round(
                estimate_quality(image.components[1].table, IJG_CHROMA)[1], 3)
        estimate["exact_ijg"] = error == 0 and estimate.get("chroma_error", 0) == 0
        facts["ijg_quality"] = estimate
    elif image.tables_problem:
        facts["tables_problem"] = image.tables_problem
    if image.notes:
        facts["notes"] = image.notes
    facts["from_pixels"] = pixel_history(image)
    if reader is not None:
        facts["compression_quality"] = reader.read(image.pixels)
    return facts


def pixel_history(image) -> dict:
    """What the pixels alone say about the compression (any format): the recovered tables or
    why none, and for JPEGs any earlier, coarser quantization under the file's tables."""
    from jpegfix.recovery import find_earlier_compression, recover_tables

    recovery = recover_tables(image.pixels)
    facts: dict = {"found": recovery.found, "summary": recovery.reason}
    if recovery.found:
        facts.update(quality=recovery.quality, luma_error=round(recovery.table_error, 3),
                     offset=list(recovery.offset), confidence=round(recovery.confidence, 3),
                     subsampling=recovery.subsampling or None,
                     tables=[c.table.tolist() for c in recovery.components])
    if image.components:
        earlier = find_earlier_compression(image.pixels, image.components)
        facts["earlier"] = {"found": earlier.found, "summary": earlier.reason, "quality": earlier.quality,
                            "confidence": round(earlier.confidence, 3)}
    return facts


def info_command(
    files: Annotated[list[Path], typer.Argument(help="Image files.", show_default=False)],
    as_json: JsonOpt = False,
) -> None:
    """Print dimensions, mode, subsampling, quantization tables, estimated JPEG quality, and the
    compression quality the image looks like (CQR ranker; JPEG or not)."""
    from jpegfix.errors import JpegfixError
    from jpegfix.quality import QualityReader

    reports, failed, reader = [], False, QualityReader()
    for path in files:
        try:
            reports.append(describe(path, reader))
        except JpegfixError as error:
            err_console.print(f"[red]error[/] {escape(str(path))}: {escape(str(error))}", highlight=False)
            failed = True
    if as_json:
        print(json.dumps(reports, indent=2))
    else:
        for facts in reports:
            _render(facts)
    if failed:
        raise typer.Exit(1)


def _render(facts: dict) -> None:
    # File names and messages are data, not Rich markup: "a[/]b.jpg" must print as itself.
    console.print(f"[bold]{escape(facts['file'])}[/]", highlight=False)
    for key in ("format", "coding", "subsampling", "mode"):
        if facts.get(key):
            console.print(f"  {key:<12} {escape(str(facts[key]))}", highlight=False)
    console.print(f"  {'size':<12} {facts['width']}x{facts['height']}")
    console.print(f"  {'orientation':<12} {facts['orientation']}   icc {facts['icc_profile']} B   exif {facts['exif']} B")
    if "ijg_quality" in facts:
        q = facts["ijg_quality"]
        kind = "exact IJG tables" if q["exact_ijg"] else f"nearest IJG, mean table error {q['luma_error']}"
        console.print(f"  {'quality':<12} {q['quality']} ({kind})")
        for name, table in zip(("Y", "Cb", "Cr"), facts["tables"]):
            console.print(f"  {name} table")
            for row in table:
                console.print("    " + " ".join(f"{v:4d}" for v in row), highlight=False)
    elif "tables_problem" in facts:
        console.print(f"  tables       {escape(facts['tables_problem'])}", highlight=False)
    for note in facts.get("notes", []):
        console.print(f"  note         {escape(note)}", highlight=False)
    _render_pixel_history(facts["from_pixels"])
    readout = facts.get("compression_quality")
    if readout is None:
        return
    if "unavailable" in readout:
        console.print(f"  compression quality score: unavailable, {escape(readout['unavailable'])}", highlight=False)
    else:
        console.print(f"  compression quality score {readout['score']:+.3f} ({readout['model']}); "
                      f"{escape(readout['summary'])}", highlight=False)


def _render_pixel_history(history: dict) -> None:
    if not history["found"]:
        console.print(f"  from pixels  tables not found: {escape(history['summary'])}", highlight=False)
    else:
        x, y = history["offset"]
        console.print(f"  from pixels  IJG quality {history['quality']} (mean table error {history['luma_error']}), "
                      f"grid offset {x}, {y}, {history['subsampling'] or 'grey'}, confidence {history['confidence']:.2f}",
                      highlight=False)
        for name, table in zip(("Y", "Cb", "Cr"), history["tables"]):
            console.print(f"  {name} table (recovered)")
            for row in table:
                console.print("    " + " ".join(f"{v:4d}" for v in row), highlight=False)
    earlier = history.get("earlier")
    if earlier is not None:
        console.print(f"  earlier      {escape(earlier['summary'])}", highlight=False)
