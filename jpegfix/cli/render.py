"""Rich consoles: progress and messages on stderr, results and JSON on stdout."""

from __future__ import annotations

import contextlib

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

# soft_wrap: a message is one line even when it is longer than the terminal is wide.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def progress_bar(quiet: bool = False) -> Progress:
    """A progress bar on stderr showing images done and megapixels per second."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[megapixels]:.2f} MP/s"), TimeElapsedColumn(),
        console=err_console, disable=quiet, transient=False,
    )
