"""Which files a batch reads and the names it writes: the one place that decides both.

Inputs are files, globs or folders, and one rule places every output, whatever named it:
the folders below the inputs' common parent are mirrored in the output folder (a folder
input counts from itself, a glob from the folder before its first wildcard, a file from its
own folder). An output is ``<stem><suffix>.<ext>``; when two inputs of one folder share a
stem (``copy.jpg``, ``copy.png``), each keeps its own extension in its name
(``copy.jpg.png``, ``copy.png.png``), so no two inputs ever map to one output.

What a file is comes from its first bytes, not its name: a JPEG named ``.png`` is read as
the JPEG it is. Folders and globs skip, and say so: hidden files and folders, macOS
AppleDouble ``._*`` files, and files that are not images jpegfix reads (AVIF, HEIC, JPEG
XL, PSD, ...); a file with an image's name whose bytes are not one (empty, damaged) is read and fails
with the reader's reason. A file named on the command line is never skipped silently: if it cannot be read it
fails with its reason. Anything that is not a regular file (a named pipe, a device) is
refused with its kind named, never opened; a folder that cannot be listed is reported as
such, not as "holds no images". Globs are expanded here, extensions matched in any case
(``*.jpg`` finds ``IMG.JPG``). The suffix is checked once (no path separators, no control
characters), and a name longer than the file system allows is a per-file failure. An
output folder inside a scanned folder is not scanned (a rerun would restore its outputs), a
file named twice is read once, and a folder's subfolders, when not searched, are listed as
skipped so that ``-r`` is not missed.
"""

from __future__ import annotations

import glob
import os
import stat
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

FORMAT_BY_SUFFIX = {".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG", ".png": "PNG", ".webp": "WEBP",
                    ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".gif": "GIF"}
"""The format a file name promises, for listings whose bytes are not read (object stores)."""
INPUT_SUFFIXES = set(FORMAT_BY_SUFFIX)
"""Names of the formats jpegfix reads; what a file holds is judged from its bytes (:func:`sniff`)."""
LOSSLESS_FORMATS = ("PNG", "TIFF", "BMP", "GIF")
"""Formats whose pixels are stored without loss (WebP only when its image chunk is VP8L)."""
NAME_MAX = 255
"""Bytes in one file name on Linux, macOS and Windows file systems (used when the file system
cannot be asked)."""
SUPPORTED = ("JPEG", "PNG", "TIFF", "WEBP", "BMP", "GIF")
"""Formats read, as :func:`sniff` names them (a lossless WebP is ``WEBP`` with ``lossless``;
of an animated GIF the first frame, with a note)."""
_SIGNATURES = [  # (offset, bytes, format); the supported ones first
    (0, b"\xff\xd8", "JPEG"), (0, b"\x89PNG\r\n\x1a\n", "PNG"), (0, b"II*\x00", "TIFF"), (0, b"MM\x00*", "TIFF"),
    (0, b"BM", "BMP"), (0, b"GIF8", "GIF"), (4, b"ftypavif", "AVIF"), (4, b"ftypavis", "AVIF"),
    (4, b"ftypheic", "HEIC"), (4, b"ftypheix", "HEIC"), (4, b"ftypmif1", "HEIF"), (0, b"\xff\x0a", "JPEG XL"),
    (4, b"JXL ", "JPEG XL"), (4, b"jP  ", "JPEG 2000"), (0, b"\xff\x4f\xff\x51", "JPEG 2000"), (0, b"8BPS", "PSD"),
    (0, b"II+\x00", "BigTIFF"), (0, b"MM\x00+", "BigTIFF"), (0, b"%PDF", "PDF"),
]


@dataclass(frozen=True)
class Found:
    """An input file, what it holds, and the folder its output path is measured from."""

    source: Path
    base: Path
    """A folder input itself, a glob's folder before its first wildcard, a file's own folder."""
    format: str = ""
    """What :func:`sniff` read: ``JPEG``, ``PNG``, ``TIFF``, ``WEBP``, ``BMP``, ``GIF``."""
    lossless: bool = False
    """The file's pixels are stored without loss (PNG, TIFF, BMP, GIF, lossless WebP)."""


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


def output_paths(
    found: list[Found], suffix: str, extension: Callable[[Found], str]
) -> tuple[list[tuple[Found, Path]], list[tuple[str, str]]]:
    """The output path of every input, relative to the output folder, and ``(source, reason)``
    for an input whose name is still taken (only by contrived names, ``a.jpg`` beside
    ``a.jpg.png``). Pure: decided from the paths alone.

    ``extension(found)`` gives each output's extension (``.png``). Folders below the inputs'
    common parent (of their ``base`` folders) are mirrored; stems shared within one output
    folder, in any case, keep their source extension.
    """
    if not found:
        return [], []
    common = os.path.commonpath([os.path.abspath(f.base) for f in found])
    folders = [Path(os.path.relpath(os.path.abspath(f.source.parent), common)) for f in found]
    entries = [(folder.as_posix(), f.source.name, extension(f)) for f, folder in zip(found, folders)]
    planned, refused = [], []
    for item, folder, (name, clash) in zip(found, folders, name_outputs(entries, suffix)):
        if clash is None:
            planned.append((item, folder / name))
        else:
            refused.append((str(item.source), f"output name {folder / name} is also that of {found[clash].source}"))
    return planned, refused


def name_outputs(entries: list[tuple[str, str, str]], suffix: str) -> list[tuple[str, int | None]]:
    """The naming rule, for local paths and object-store keys alike: for each (output folder,
    source file name, output extension), the output file name and the index of the earlier
    entry that already has it (None when it is free). Stems shared within one output folder,
    in any case, keep their source extension; names are compared without case.
    """
    stems = Counter((folder, PurePosixPath(name).stem.casefold()) for folder, name, _ in entries)
    taken: dict[tuple[str, str], int] = {}
    named = []
    for index, (folder, name, extension) in enumerate(entries):
        stem = PurePosixPath(name).stem
        output = f"{name if stems[(folder, stem.casefold())] > 1 else stem}{suffix}{extension}"
        clash = taken.get((folder, output.casefold()))
        if clash is None:
            taken[(folder, output.casefold())] = index
        named.append((output, clash))
    return named


def nearest_existing(path: Path) -> Path:
    """``path`` itself if it exists, else its nearest existing ancestor (what a later
    ``mkdir(parents=True)`` would build on)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def name_too_long(folder: Path, name: str) -> str | None:
    """Why ``name`` cannot be created in ``folder`` (too many bytes), or None."""
    limit = NAME_MAX
    probe = nearest_existing(folder)
    try:
        limit = os.pathconf(probe, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        pass
    size = len(os.fsencode(name))
    if size > limit:
        return f"output name is {size} bytes, over the file system's {limit}-byte limit (use a shorter --suffix or rename the file)"
    return None


def find_inputs(
    items: list[str], *, recursive: bool = False, output: Path | None = None
) -> tuple[list[Found], list[tuple[str, str]], list[tuple[str, str]]]:
    """Expand files, globs and folders; returns the inputs found, ``(path, reason)`` for every
    file or folder skipped (hidden, AppleDouble, not a supported image, a subfolder without
    ``recursive``), and ``(item, reason)`` for every item that fails (missing, unreadable,
    not a regular file, an unreadable named file), each in order.

    ``output`` is the batch's output folder: when it lies inside a scanned folder, folder
    scans and globs leave it out, so a rerun does not restore the last run's outputs. An
    input named twice (``a.jpg ./a.jpg``) is read once.
    """
    found: list[Found] = []
    skipped: list[tuple[str, str]] = []
    problems: list[tuple[str, str]] = []
    output = output.resolve() if output is not None else None  # once; the scans compare resolved paths
    for item in items:
        kind, reason = _kind(item)
        if kind == "folder":
            files, folder_skipped, folder_problems = _scan_folder(Path(item), recursive, output)
            found += files
            skipped += folder_skipped
            problems += folder_problems
            if not files and not folder_problems:
                what = f" ({len(folder_skipped)} other entries skipped)" if folder_skipped else ""
                problems.append((item, f"folder holds no images{what}"))
        elif kind == "file":
            path = Path(item)
            why_not, fmt, lossless = _judge(path, named=True)
            if why_not:
                problems.append((item, why_not))
            else:
                found.append(Found(path, path.parent, fmt, lossless))
        elif kind == "missing" and glob.has_magic(item):
            files, glob_skipped = _expand_glob(item, recursive, output)
            found += files
            skipped += glob_skipped
            if not files:
                problems.append((item, "pattern matches no images" if glob_skipped else "pattern matches no files"))
        else:
            problems.append((item, reason))
    return _once_each(found), skipped, problems


def _once_each(found: list[Found]) -> list[Found]:
    """``found`` without repeats of a file (by its resolved path), first mention kept."""
    seen: set[Path] = set()
    kept = []
    for item in found:
        key = item.source.resolve()
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept


def _inside(path: Path, folder: Path | None) -> bool:
    """Whether ``path`` (resolved here) is ``folder`` (already resolved) or lies below it;
    False without a folder."""
    if folder is None:
        return False
    path = path.resolve()
    return path == folder or folder in path.parents


def _expand_glob(pattern: str, recursive: bool, output: Path | None = None) -> tuple[list[Found], list[tuple[str, str]]]:
    """The images a glob matches, extensions in any case; Python's glob already leaves out
    hidden names (``*`` does not match a leading dot). Matches in ``output`` (resolved), when
    it lies below the glob's fixed folder, are left out (one skipped entry says so)."""
    head, tail = os.path.split(pattern)
    base = Path(_fixed_prefix(pattern))
    excluded = output if not _inside(base, output) else None
    found, skipped = [], []
    for match in sorted(glob.glob(os.path.join(head, _any_case(tail)), recursive=recursive)):
        path = Path(match)
        if _kind(path)[0] != "file":
            continue
        if _inside(path, excluded):
            if not skipped or skipped[-1] != (str(output), OUTPUT_FOLDER):
                skipped.append((str(output), OUTPUT_FOLDER))
            continue
        why_not, fmt, lossless = _judge(path, named=tail.startswith("."))  # '.*' asks for hidden files
        if why_not:
            skipped.append((match, why_not))
        else:
            found.append(Found(path, base, fmt, lossless))
    return found, skipped


def _fixed_prefix(pattern: str) -> str:
    """The folder of ``pattern`` before its first wildcard: ``in`` for ``in/**/*.jpg``."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return os.path.join(*fixed) if fixed else "."


def _any_case(name_pattern: str) -> str:
    """A glob file-name pattern matching letters in either case (``*.jpg`` -> ``*.[jJ][pP][gG]``);
    bracket sets are left as written."""
    out, in_set = [], False
    for char in name_pattern:
        if char == "[" and not in_set:
            in_set = True
        elif char == "]" and in_set:
            in_set = False
        elif not in_set and char.lower() != char.upper():
            char = f"[{char.lower()}{char.upper()}]"
        out.append(char)
    return "".join(out)


def _judge(path: Path, *, named: bool) -> tuple[str | None, str, bool]:
    """(reason it is not read, format, lossless). Hidden files are skipped only when found
    by a scan or a glob that does not ask for them (``named`` is False); AppleDouble files,
    metadata beside a picture, always. A file that should be an image (named, or with an
    image's extension) but is empty, damaged or unreadable goes on to the reader, which
    fails it with the precise reason."""
    if path.name.startswith("._"):
        return "macOS AppleDouble metadata file, not an image", "", False
    if path.name.startswith(".") and not named:
        return "hidden file", "", False
    try:
        fmt, lossless = sniff(path)
    except OSError:  # unreadable: judged by its name below, and the reader says why
        fmt, lossless = "", False
    if fmt in SUPPORTED or (not fmt and (named or path.suffix.lower() in INPUT_SUFFIXES)):
        return None, fmt, lossless  # unknown bytes that should be an image: the reader says what is wrong
    if fmt:
        return f"{fmt} is not supported; jpegfix reads JPEG, PNG, TIFF, WebP, BMP and GIF", "", False
    return "not an image jpegfix reads (unknown file format)", "", False


def sniff(path: Path) -> tuple[str, bool]:
    """(format read from the first bytes, whether its pixels are stored without loss); the
    format is "" when unknown. Opened without blocking, so a special file cannot hang it."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        head = os.pread(descriptor, 32, 0)
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return "WEBP", _webp_is_lossless(descriptor)
    finally:
        os.close(descriptor)
    fmt = next((name for offset, magic, name in _SIGNATURES if head[offset : offset + len(magic)] == magic), "")
    return fmt, fmt in LOSSLESS_FORMATS


def _webp_is_lossless(descriptor: int) -> bool:
    """Whether a WebP's image chunk is VP8L (lossless) rather than VP8 (lossy), walking the
    RIFF chunks (an extended file puts ICC, EXIF or animation chunks first)."""
    position = 12
    for _ in range(64):
        header = os.pread(descriptor, 8, position)
        if len(header) < 8:
            return False
        kind, size = header[:4], int.from_bytes(header[4:], "little")
        if kind in (b"VP8L", b"VP8 "):
            return kind == b"VP8L"
        position += 8 + size + (size & 1)
    return False


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


OUTPUT_FOLDER = "the output folder: its files are not inputs"
NOT_SEARCHED = "folder not searched (use -r to include subfolders)"


def _scan_folder(root: Path, recursive: bool, output: Path | None = None
                 ) -> tuple[list[Found], list[tuple[str, str]], list[tuple[str, str]]]:
    """Images under ``root`` (sorted, one level or all), files and folders skipped with their
    reasons, and a problem per folder that cannot be listed and per image-named entry that is
    not a regular file. Hidden folders, and ``output`` (resolved) when it lies below ``root``, are not
    entered; without ``recursive`` each subfolder is reported as not searched."""
    found: list[Found] = []
    skipped: list[tuple[str, str]] = []
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
                if output is not None and path.resolve() == output:
                    skipped.append((str(path), OUTPUT_FOLDER))
                elif entry.name.startswith("."):
                    if recursive:
                        skipped.append((str(path), "hidden folder"))
                elif recursive:
                    subfolders.append(path)
                else:
                    skipped.append((str(path), NOT_SEARCHED))
            elif kind == "file":
                why_not, fmt, lossless = _judge(path, named=False)
                if why_not:
                    skipped.append((str(path), why_not))
                else:
                    found.append(Found(path, root, fmt, lossless))
            elif path.suffix.lower() in INPUT_SUFFIXES:
                problems.append((str(path), reason))
        pending[:0] = subfolders
    found.sort(key=lambda f: f.source)
    return found, skipped, problems
