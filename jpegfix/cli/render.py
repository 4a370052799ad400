"""Rich consoles: progress and messages on stderr, results and JSON on stdout."""

from __future__ import annotations

import contextlib
import os
import sys

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

# soft_wrap: a message is one line even when it is longer than the terminal is wide.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def progress_bar(quiet: bool = False) -> Progress:
    """A progress bar on stderr showing images (or tiles) done, megapixels per second, time
    elapsed and the estimated time left."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[megapixels]:.2f} MP/s"), TimeElapsedColumn(), TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err_console, disable=quiet, transient=False, redirect_stdout=False,
    )


class ClosedPipeTolerantStream:
    """Wraps stdout so that a reader that goes away (``jpegfix restore --json | head -c 5``)
    ends the output quietly instead of the command: later writes go to /dev/null, and the
    command still finishes its work and exits by its own outcome."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._drop()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._drop()

    def _drop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())  # also silences the interpreter's final flush
            os.close(devnull)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def tolerate_closed_stdout() -> None:
    """Install :class:`ClosedPipeTolerantStream` on ``sys.stdout`` (once)."""
    if not isinstance(sys.stdout, ClosedPipeTolerantStream) and sys.stdout is not None:
        sys.stdout = ClosedPipeTolerantStream(sys.stdout)
