"""Which files a batch reads and the names it writes: the one place that decides both.

Inputs are files, globs or folders. Anything that is not a regular file (a named pipe, a
device) is refused with its kind named, never opened; a folder that cannot be listed is
reported as such, not as "holds no images". Output names are ``<stem><suffix>.png`` in
the output folder; the suffix is checked once (no path separators, no control characters),
and a name longer than the file system allows is a per-file failure.
"""

from __future__ import annotations

import glob
import os
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path

INPUT_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".tif", ".tiff"}
NAME_MAX = 255
"""Bytes in one file name on Linux, macOS and Windows file systems (used when the file system
cannot be asked)."""


@dataclass(frozen=True)
class Found:
    """An input file and the folder, relative to the output folder, its output goes in."""

    source: Path
    subfolder: Path


def check_suffix(suffix: str) -> str:
    """``suffix`` if it can be part of a file name.

    Raises:
        ValueError: it holds a path separator (``/../x`` would write outside the output
            folder) or a control character (a newline would make a two-line name).
    """
    separators = {"/", "\\", os.sep, os.altsep or "/"}
    if any(c in separators for c in suffix):
        raise ValueError(f"--suffix {suffix!r} holds a path separator; it must be part of a file name")
    if any(unicodedata.category(c) == "Cc" for c in suffix):
        raise ValueError(f"--suffix {suffix!r} holds a control character")
    return suffix


def output_name(source: Path, suffix: str) -> str:
    """The output file name of ``source``: its stem, the suffix, ``.png``."""
    return f"{source.stem}{suffix}.png"


def name_too_long(folder: Path, name: str) -> str | None:
    """Why ``name`` cannot be created in ``folder`` (too many bytes), or None."""
    limit = NAME_MAX
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        limit = os.pathconf(probe, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        pass
    size = len(os.fsencode(name))
    if size > limit:
        return f"output name is {size} bytes, over the file system's {limit}-byte limit (use a shorter --suffix or rename the file)"
    return None


def find_inputs(items: list[str], *, recursive: bool = False) -> tuple[list[Found], list[tuple[str, str]]]:
    """Expand files, globs and folders; returns the inputs found and ``(item, reason)`` for
    every item that gives nothing (or cannot be used), in order."""
    found: list[Found] = []
    problems: list[tuple[str, str]] = []
    for item in items:
        kind, reason = _kind(item)
        if kind == "folder":
            files, folder_problems = _scan_folder(Path(item), recursive)
            found += files
            problems += folder_problems
            if not files and not folder_problems:
                problems.append((item, "folder holds no images"))
        elif kind == "file":
            found.append(Found(Path(item), Path()))
        elif kind == "missing" and glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=recursive))
            files = [Found(Path(m), Path()) for m in matches if _kind(m)[0] == "file"]
            found += files
            if not files:
                problems.append((item, "pattern matches no files"))
        else:
            problems.append((item, reason))
    return found, problems


def _kind(item: str | Path) -> tuple[str, str]:
    """('file' | 'folder' | 'missing' | 'other', reason when not a file or folder)."""
    try:
        mode = os.stat(item).st_mode
    except FileNotFoundError:
        return "missing", "no such file or folder"
    except NotADirectoryError:
        return "missing", "no such file or folder (a parent is a file)"
    except OSError as error:
        return "other", f"cannot access: {error.strerror or error}"
    if stat.S_ISDIR(mode):
        return "folder", ""
    if stat.S_ISREG(mode):
        return "file", ""
    return "other", f"not a regular file ({special_kind(mode)})"


def special_kind(mode: int) -> str:
    """Name what a non-regular file is, for messages."""
    kinds = [(stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")]
    return next((name for test, name in kinds if test(mode)), "a special file")


def _scan_folder(root: Path, recursive: bool) -> tuple[list[Found], list[tuple[str, str]]]:
    """Image files under ``root`` (sorted, one level or all), and a problem per folder that
    cannot be listed and per image-named entry that is not a regular file."""
    found: list[Found] = []
    problems: list[tuple[str, str]] = []
    pending = [root]
    while pending:
        folder = pending.pop(0)
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as error:
            problems.append((str(folder), f"cannot read folder: {error.strerror or error}"))
            continue
        subfolders = []
        for entry in entries:
            path = Path(entry.path)
            kind, reason = _kind(path)
            if kind == "folder":
                subfolders.append(path)
            elif path.suffix.lower() not in INPUT_SUFFIXES:
                continue
            elif kind == "file":
                found.append(Found(path, path.parent.relative_to(root)))
            else:
                problems.append((str(path), reason))
        if recursive:
            pending[:0] = subfolders
    found.sort(key=lambda f: f.source)
    return found, problems
