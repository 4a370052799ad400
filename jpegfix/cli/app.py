"""The Typer application. Heavy imports (torch) happen inside commands so --help is instant."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from jpegfix import __version__
from jpegfix.cli.bench import bench_command
from jpegfix.cli.info import info_command
from jpegfix.cli.models import models_command
from jpegfix.cli.probe import probe_command
from jpegfix.cli.probe_candidates import probe_candidates_command
from jpegfix.cli.probe_ranker import probe_ranker_command
from jpegfix.cli.probe_tables import probe_tables_command
from jpegfix.cli.restore import restore_command
from jpegfix.cli.train import train_command

app = typer.Typer(
    name="jpegfix", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Remove JPEG compression artifacts from photos.",
)
app.command("restore")(restore_command)
app.command("info")(info_command)
app.command("models")(models_command)
app.command("train")(train_command)
app.command("probe-encoder")(probe_command)
app.command("probe-ranker")(probe_ranker_command)
app.command("probe-candidates")(probe_candidates_command)
app.command("probe-tables")(probe_tables_command)
app.command("bench")(bench_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"jpegfix {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = None,
) -> None:
    """Remove JPEG compression artifacts from photos."""


def main() -> None:
    app()
