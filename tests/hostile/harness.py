"""Running the CLI on hostile input: in this process (fast) or as a real process (exit codes,
file descriptors, signals, pipes, concurrency)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from jpegfix.cli.app import app

REPO = Path(__file__).resolve().parents[2]
_runner = CliRunner()


def run_cli(*args: str):
    """The CLI in this process; ``result.exit_code``, ``.stdout``, ``.stderr``."""
    return _runner.invoke(app, [str(a) for a in args])


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from jpegfix.cli.app import main; main()", *map(str, args)]


def cli_env() -> dict[str, str]:
    return os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


def run_process(*args: str, timeout: float = 600, **options) -> subprocess.CompletedProcess:
    """The CLI as its own process, stdout and stderr captured separately (neither a terminal)."""
    return subprocess.run(cli_command(*args), capture_output=True, text=True, timeout=timeout,
                          env=cli_env(), errors="replace", **options)


def records(stdout: str) -> dict[str, dict]:
    """``--json`` results by source file name."""
    return {Path(r["source"]).name: r for r in json.loads(stdout)}


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error ")]


def assert_one_line_errors(stderr: str, count: int | None = None) -> None:
    """Every message on stderr is an ``error NAME: reason`` line (or the one ``note:`` of a
    model compiled for the first time); nothing raw leaks."""
    assert "Traceback" not in stderr and "Warning" not in stderr, stderr
    lines = [line for line in stderr.splitlines()
             if line.strip() and not line.startswith(("restoring", "note: compiled "))]
    assert all(line.startswith("error ") for line in lines), stderr
    if count is not None:
        assert len(lines) == count, stderr
