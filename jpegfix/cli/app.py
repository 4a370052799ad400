"""The Typer application. Heavy imports (torch) happen inside commands so --help is instant."""

from __future__ import annotations

import signal
import sys
import warnings
from typing import Annotated, Optional

import typer

from jpegfix import __version__
from jpegfix.cli.bench import bench_command
from jpegfix.cli.download import download_command
from jpegfix.cli.info import info_command
from jpegfix.cli.models import models_command
from jpegfix.cli.probe import probe_command
from jpegfix.cli.probe_candidates import probe_candidates_command
from jpegfix.cli.probe_ranker import probe_ranker_command
from jpegfix.cli.render import tolerate_closed_stdout
from jpegfix.cli.probe_tables import probe_tables_command
from jpegfix.cli.restore import restore_command
from jpegfix.cli.train import train_command

app = typer.Typer(
    name="jpegfix", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Remove JPEG compression artifacts from photos.",
)
app.command("restore")(restore_command)
app.command("info")(info_command)
app.command("models")(models_command)
app.command("download")(download_command)
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
    """Run the command line: usage errors are one line on stderr with exit 2, warnings from
    third-party libraries one line each, and a closed stdout pipe ends output quietly."""
    tolerate_closed_stdout()
    warnings.showwarning = _one_line_warning
    # SIGTERM unwinds like Ctrl-C, so a file being written removes its temporary on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        code = app(standalone_mode=False, prog_name="jpegfix")
    except typer.Abort:
        print("interrupted", file=sys.stderr)
        code = 130
    except typer.TyperException as error:  # usage errors (exit 2) and other click exceptions
        ctx = getattr(error, "ctx", None)
        where = ctx.command_path if ctx is not None else "jpegfix"
        code = getattr(error, "exit_code", 1)
        hint = f" (see {where} --help)" if code == 2 else ""
        message = " ".join(error.format_message().split())
        print(f"{where}: error: {message}{hint}", file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    text = " ".join(str(message).split())
    print(f"warning: {text} ({category.__name__})", file=sys.stderr)
