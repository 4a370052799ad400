"""Putting a finished file under its final name: whole, durable, and never over someone else's.

The bytes go to a short temporary name in the target folder (``.jpegfix-<random>.part``, so
it fits wherever the final name fits), are flushed to disk with ``fsync``, and are then
claimed under the final name:

- without ``overwrite``, by ``link``: the kernel refuses it atomically when the name exists,
  so two concurrent runs into one folder can never replace each other's outputs (checking
  for the name first and renaming later leaves a window in which both "win");
- with ``overwrite``, by ``rename``, which replaces atomically.

The folder is then fsynced, so a file reported as written survives a power loss. The
temporary file is created with mode 0666 less the umask, as any other new file would be.
While being written it holds an ``flock``; a temporary left by a killed run has no holder,
and :func:`remove_stale_temporaries` deletes it on the next write into that folder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import time
from pathlib import Path
from typing import Callable, Iterator

from jpegfix.errors import OutputError

TEMPORARY_PREFIX = ".jpegfix-"
TEMPORARY_SUFFIX = ".part"
STALE_AFTER_S = 10.0
"""A temporary is only judged stale once this old, so a file just created by a live run,
not yet locked, is never taken for a dead run's."""


_SWEPT: set[Path] = set()


class TargetExistsError(OutputError):
    """The final name was taken (by an earlier run, or a concurrent one) and overwrite is off."""


def write_exclusive(target: Path, write: Callable[[Path], None], *, overwrite: bool = False) -> None:
    """Write ``target`` through ``write(temporary_path)`` and claim it atomically.

    Raises:
        TargetExistsError: ``target`` exists and ``overwrite`` is False (nothing is changed).
        OSError: the folder is not writable, the disk is full, ...; the temporary is removed.
    """
    folder = target.parent
    if folder not in _SWEPT:  # once per folder and process: a batch must not rescan for every file
        remove_stale_temporaries(folder)
        _SWEPT.add(folder)
    with _temporary(folder) as temporary:
        write(temporary)
        _fsync_file(temporary)
        if overwrite:
            os.replace(temporary, target)
        else:
            _link_no_replace(temporary, target)
    _fsync_folder(folder)


@contextlib.contextmanager
def _temporary(folder: Path) -> Iterator[Path]:
    """A new, locked, empty file in ``folder``; removed on the way out (after a link it is a
    second name of the output, after a rename it no longer exists)."""
    while True:
        path = folder / f"{TEMPORARY_PREFIX}{secrets.token_hex(6)}{TEMPORARY_SUFFIX}"
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)  # released by the kernel if this process dies
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(descriptor)


def _link_no_replace(temporary: Path, target: Path) -> None:
    try:
        os.link(temporary, target)
    except FileExistsError:
        raise TargetExistsError(f"{target} exists (use --overwrite or --skip-existing)") from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        # No hard links on this file system (FAT, some network shares): claim the name with
        # an exclusive create, then rename over that empty placeholder.
        try:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            raise TargetExistsError(f"{target} exists (use --overwrite or --skip-existing)") from None
        os.replace(temporary, target)


def _fsync_file(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_folder(folder: Path) -> None:
    """Make the new name durable; some file systems cannot fsync a folder, which is fine."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def remove_stale_temporaries(folder: Path) -> int:
    """Delete this module's temporaries in ``folder`` that no live writer holds; returns how many.

    A temporary is stale when it is older than :data:`STALE_AFTER_S` and its lock can be
    taken (the writer that held it has exited or was killed).
    """
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if not (entry.name.startswith(TEMPORARY_PREFIX) and entry.name.endswith(TEMPORARY_SUFFIX)):
            continue
        try:
            if time.time() - entry.stat(follow_symlinks=False).st_mtime < STALE_AFTER_S:
                continue
            descriptor = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(entry.path)
            removed += 1
        except OSError:
            pass  # held by a live writer, or already gone
        finally:
            os.close(descriptor)
    return removed
