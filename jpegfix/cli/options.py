"""Options shared by several commands, declared once."""

from __future__ import annotations

from typing import Annotated, Optional

import typer



def _check_device(value: str) -> str:
    """Refuse an unavailable device while parsing (usage error, exit 2), before any work."""
    if value == "auto":
        return value
    from jpegfix.devices import pick_device
    from jpegfix.errors import DeviceError

    try:
        pick_device(value)
    except DeviceError as error:
        raise typer.BadParameter(str(error)) from None
    return value


DeviceOpt = Annotated[str, typer.Option("--device", callback=_check_device,
                                        help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps.")]
ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="Model name (see `jpegfix models`) or a method name (cqr: cqr-color-s or cqr-gray-s per image); default: chosen per image.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print results as JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]
TileOpt = Annotated[int, typer.Option("--tile", help="Tile side in pixels (0: chosen from free memory).")]
