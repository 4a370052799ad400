"""``jpegfix download``: fetch models' weights and cards into the Hugging Face cache ahead of use."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from jpegfix.cli.render import console, err_console


def download_command(
    models: Annotated[list[str], typer.Argument(help="Model names (see `jpegfix models`) or method names (both CPU-size models).", show_default=False)],
) -> None:
    """Download weights and their cards, checking each file's sha256 against its card."""
    from jpegfix import catalogue
    from jpegfix.errors import JpegfixError, UnknownModelError
    from jpegfix.weights import card_of, locate, verify

    try:
        entries = [catalogue.get(name) for model in models for name in catalogue.models_for(model)]
    except UnknownModelError as error:
        raise typer.BadParameter(str(error), param_hint="MODELS") from None
    failed = False
    for entry in entries:
        try:
            path = locate(entry)
            verify(path, card_of(entry, path))
        except JpegfixError as error:
            err_console.print(f"[red]error[/] {escape(str(error))}", highlight=False)
            failed = True
        else:
            console.print(escape(f"{entry.name}: {path}"), highlight=False)
    if failed:
        raise typer.Exit(1)
