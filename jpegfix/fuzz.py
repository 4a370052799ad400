"""A mutation fuzzer for the restore path: hostile JPEG and PNG files in, one clean outcome out.

Seeds are small valid files made here (colour and grey JPEGs, baseline and progressive,
4:2:0 and 4:4:4, one with EXIF; RGB, grey and RGBA PNGs). Each case applies one or two
mutations to a seed: bit flips, truncation, a duplicated segment or chunk, an edited length
field, edited dimensions (bombs by header), or stray bytes between segments. PNG mutations
get their chunk CRCs recomputed half of the time, so they reach the decoder instead of
stopping at the first CRC check.

Every case runs :func:`jpegfix.batch.restore_file` (read, choose a model, restore, write) in
a forked child, with the models loaded once in the parent. The contract checked per case:

- ``ok``: a PNG that decodes was written; ``failed``: a one-line reason, nothing written;
- nothing printed by anyone (warnings, libjpeg messages): output of the child is a ``leak``;
- no exception escapes (``traceback``), no signal death (``crash``), no more than ``timeout``
  seconds of CPU time and no block of more than six times that on the wall clock (``hang``;
  ``slow`` when the file declares 1 MP or more, which may take that long); the input file is left byte for byte as it was (``input-changed``).

The child's peak resident memory (``wait4``) and time are recorded with the size the file
declares, so the limits for small images can be checked. Run ``python -m jpegfix.fuzz
--help``; the test suite runs a bounded number of cases (tests/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import signal
import struct
import sys
import tempfile
import time
import traceback
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

BAD_OUTCOMES = ("traceback", "hang", "crash", "leak", "input-changed", "bad-output", "bad-message")
"""Outcomes that break the contract; ``ok`` and ``failed`` are the two good ones."""
SMALL_PIXELS = 1_000_000
"""Cases declaring fewer pixels than this are held to the time and memory bounds."""


@dataclass
class Case:
    index: int
    seed: str
    mutations: list[str]
    size: int
    declared: tuple[int, int] | None
    outcome: str = ""
    detail: str = ""
    seconds: float = 0.0
    """Wall-clock time of the case."""
    cpu_seconds: float = 0.0
    """CPU time of the case (user + system): what the machine's load cannot inflate."""
    peak_mb: float = 0.0


@dataclass
class Summary:
    cases: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    small_cases: int = 0
    small_max_seconds: float = 0.0
    small_max_cpu_seconds: float = 0.0
    small_max_peak_mb: float = 0.0
    max_peak_mb: float = 0.0
    max_seconds: float = 0.0
    bad: list[dict] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not any(self.outcomes.get(o) for o in BAD_OUTCOMES)


# -- seeds -----------------------------------------------------------------------------


def _picture(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8: gradients, a sharp-edged square and noise, so every coefficient band is used."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width, y / height, (x + y) / (width + height)], axis=2) * 200
    base[height // 4 : 3 * height // 4, width // 3 : 2 * width // 3] = (230, 40, 90)
    noisy = base + rng.normal(0, 12, base.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def seed_files(rng_seed: int = 0) -> dict[str, bytes]:
    """Valid small files to mutate: name -> bytes."""
    rng = np.random.default_rng(rng_seed)
    colour = _picture(48, 64, rng)
    grey = colour.mean(axis=2).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "fuzz-camera"
    seeds = {}

    def save(name: str, array: np.ndarray, fmt: str, **options) -> None:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format=fmt, **options)
        seeds[name] = buffer.getvalue()

    save("colour-420-q30.jpg", colour, "JPEG", quality=30, subsampling=2)
    save("colour-444-q75.jpg", colour, "JPEG", quality=75, subsampling=0)
    save("colour-progressive.jpg", colour, "JPEG", quality=50, progressive=True)
    save("colour-exif.jpg", colour, "JPEG", quality=60, exif=exif.tobytes())
    save("grey-q20.jpg", grey, "JPEG", quality=20)
    save("colour.png", colour, "PNG")
    save("grey.png", grey, "PNG")
    save("rgba.png", np.dstack([colour, np.full(grey.shape, 200, np.uint8)]), "PNG")
    return seeds


# -- structure of the seeds ------------------------------------------------------------


def jpeg_segments(data: bytes) -> list[tuple[int, int]]:
    """(offset, total length) of each marker segment from SOI up to and including the first SOS."""
    segments, position = [], 2
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        segments.append((position, 2 + length))
        if marker == 0xDA:
            break
        position += 2 + length
    return segments


def png_chunks(data: bytes) -> list[tuple[int, int]]:
    """(offset, total length) of each chunk (length, type, data, CRC)."""
    chunks, position = [], 8
    while position + 12 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        chunks.append((position, 12 + length))
        position += 12 + length
    return chunks


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute every chunk's CRC, so a mutation reaches the decoder."""
    out = bytearray(data)
    for offset, total in png_chunks(data):
        end = offset + total
        if end > len(out):
            break
        crc = zlib.crc32(bytes(out[offset + 4 : end - 4])) & 0xFFFFFFFF
        out[end - 4 : end] = struct.pack(">I", crc)
    return bytes(out)


def _pieces(data: bytes) -> list[tuple[int, int]]:
    return jpeg_segments(data) if data[:2] == b"\xff\xd8" else png_chunks(data)


# -- mutations -------------------------------------------------------------------------

INTERESTING_SIZES = (0, 1, 7, 8, 9, 16, 255, 1000, 4096, 12000, 30000, 65535)


def flip_bits(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    out = bytearray(data)
    count = rng.randint(1, 8)
    header = min(len(out), 700)
    for _ in range(count):
        position = rng.randrange(header) if rng.random() < 0.5 else rng.randrange(len(out))
        out[position] ^= 1 << rng.randrange(8)
    return bytes(out), f"flip {count} bits"


def truncate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    cut = rng.randrange(1, len(data))
    return data[:cut], f"truncate to {cut} bytes"


def duplicate_piece(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    pieces = _pieces(data)
    if not pieces:
        return flip_bits(data, rng)
    offset, total = rng.choice(pieces)
    piece = data[offset : offset + total]
    return data[: offset + total] + piece + data[offset + total :], f"duplicate segment at {offset}"


def edit_length(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    pieces = _pieces(data)
    if not pieces:
        return truncate(data, rng)
    offset, total = rng.choice(pieces)
    out = bytearray(data)
    if data[:2] == b"\xff\xd8":
        old = total - 2
        new = rng.choice([0, 1, 2, old - 1, old + 1, old * 2, rng.randrange(65536), 65535]) % 65536
        out[offset + 2 : offset + 4] = new.to_bytes(2, "big")
    else:
        old = total - 12
        new = rng.choice([0, old - 1, old + 1, old * 2, rng.randrange(2**31), 2**31 - 1, 2**32 - 1]) % 2**32
        out[offset : offset + 4] = new.to_bytes(4, "big")
    return bytes(out), f"length {old} -> {new} at {offset}"


def edit_dimensions(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    out = bytearray(data)
    width, height = rng.choice(INTERESTING_SIZES), rng.choice(INTERESTING_SIZES)
    if data[:2] == b"\xff\xd8":
        sof = next((o for o, _ in jpeg_segments(data) if data[o + 1] in (0xC0, 0xC1, 0xC2)), None)
        if sof is None:
            return flip_bits(data, rng)
        out[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    else:
        out[16:24] = struct.pack(">II", width, height)
    return bytes(out), f"declare {width}x{height}"


def insert_stray_bytes(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    pieces = _pieces(data)
    offset = rng.choice(pieces)[0] if pieces else rng.randrange(len(data))
    stray = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
    return data[:offset] + stray + data[offset:], f"{len(stray)} stray bytes at {offset}"


MUTATIONS: tuple[Callable[[bytes, random.Random], tuple[bytes, str]], ...] = (
    flip_bits, truncate, duplicate_piece, edit_length, edit_dimensions, insert_stray_bytes,
)


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, list[str]]:
    """One or two mutations of ``data``; PNGs get their CRCs fixed half of the time."""
    applied = []
    for _ in range(rng.choice((1, 1, 2))):
        data, what = rng.choice(MUTATIONS)(data, rng)
        applied.append(what)
        if not data:
            break
    if data[:8] == b"\x89PNG\r\n\x1a\n" and rng.random() < 0.5:
        data = fix_png_crcs(data)
        applied.append("fix CRCs")
    return data, applied


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) the header declares, read without decoding; None when it cannot be read."""
    if data[:2] == b"\xff\xd8":
        from jpegfix.markers import scan_jpeg

        header = scan_jpeg(data)
        return (header.width, header.height) if header.coding else None
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    return None


# -- running one case ------------------------------------------------------------------


class Runner:
    """Runs cases against one set of loaded models; each case in a forked child."""

    def __init__(self, folder: Path, timeout: float = 10.0, device: str = "cpu") -> None:
        import torch

        from jpegfix.batch import RestoreOptions
        from jpegfix.engine import DEFAULT_BLIND_MODELS, DEFAULT_TABLE_MODELS, load_restorer

        torch.set_num_threads(1)
        self.folder = folder
        self.timeout = timeout
        self.options = RestoreOptions(device=device)
        names = {*DEFAULT_TABLE_MODELS.values(), *DEFAULT_BLIND_MODELS.values()}
        self.restorers = {name: load_restorer(name, device) for name in sorted(names)}

    def run(self, case: Case, data: bytes, name: str) -> Case:
        source = self.folder / f"case-{case.index}{Path(name).suffix}"
        target = self.folder / "out" / f"case-{case.index}.png"
        source.write_bytes(data)
        log = self.folder / f"case-{case.index}.log"
        started = time.perf_counter()
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: never returns
            os.close(reader)
            self._child(source, target, log, writer)
        os.close(writer)
        status, usage, timed_out = _wait(pid, max(60.0, 6 * self.timeout))
        case.seconds = round(time.perf_counter() - started, 3)
        case.cpu_seconds = round(usage.ru_utime + usage.ru_stime, 3)
        case.peak_mb = round(usage.ru_maxrss / 1024, 1)
        with os.fdopen(reader, "rb") as pipe:
            report = pipe.read().decode("utf-8", "replace")
        printed = log.read_text("utf-8", "replace") if log.exists() else ""
        case.outcome, case.detail = _judge(status, timed_out, report, printed, data, source, target)
        if case.outcome == "hang" and not _small(case):
            case.outcome = "slow"  # a large image may legitimately take longer than the bound
        for path in (source, target, log):
            path.unlink(missing_ok=True)
        return case

    def _child(self, source: Path, target: Path, log: Path, writer: int) -> None:
        code = 0
        try:
            limit = int(self.timeout + 0.999)
            resource.setrlimit(resource.RLIMIT_CPU, (limit, limit + 1))  # SIGXCPU past the bound
            descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(descriptor, 1)
            os.dup2(descriptor, 2)
            from jpegfix.batch import Job, Sources, restore_file

            result = restore_file(Job(source, target), self.options, self.restorers, Sources([source]))
            message = json.dumps({"status": result.status, "error": result.error})
        except BaseException:
            message, code = "TRACEBACK " + traceback.format_exc(), 3
        try:
            os.write(writer, message.encode("utf-8", "replace")[:60000])
        finally:
            os._exit(code)


def _wait(pid: int, timeout: float):
    """(wait status, rusage, timed out) of child ``pid``, killing it after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage, False
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            return status, usage, True
        time.sleep(0.005)


def _judge(status: int, timed_out: bool, report: str, printed: str, data: bytes, source: Path,
           target: Path) -> tuple[str, str]:
    if timed_out:
        return "hang", "blocked: killed at the wall-clock limit"
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGXCPU:
        return "hang", "over the CPU-time limit"
    if os.WIFSIGNALED(status):
        return "crash", f"killed by signal {os.WTERMSIG(status)}"
    if report.startswith("TRACEBACK"):
        return "traceback", report[len("TRACEBACK ") :].strip().splitlines()[-1]
    if printed.strip():
        return "leak", " | ".join(printed.strip().splitlines())[:300]
    if source.read_bytes() != data:
        return "input-changed", "the input file was modified"
    try:
        result = json.loads(report)
    except ValueError:
        return "crash", f"no report from the child (exit status {os.waitstatus_to_exitcode(status)})"
    if result["status"] in ("ok", "clean"):  # clean: written as decoded (no JPEG history in the pixels)
        try:
            with Image.open(target) as image:
                image.load()
        except Exception as error:
            return "bad-output", f"written PNG does not decode: {error}"
        return "ok", ""
    error = result.get("error") or ""
    if result["status"] != "failed" or not error.strip() or "\n" in error or "Traceback" in error:
        return "bad-message", repr(error)[:300]
    if target.exists():
        return "bad-output", "a failed case left an output"
    return "failed", error


# -- a campaign ------------------------------------------------------------------------


def run_fuzz(cases: int, seed: int = 0, timeout: float = 10.0, keep: Path | None = None,
             on_case: Callable[[Case], None] = lambda c: None) -> tuple[Summary, list[Case]]:
    """Run ``cases`` mutated files; returns the summary and every case's record."""
    seeds = seed_files(seed)
    names = sorted(seeds)
    rng = random.Random(seed)
    summary, records = Summary(), []
    with tempfile.TemporaryDirectory(prefix="jpegfix-fuzz-") as folder:
        runner = Runner(Path(folder), timeout)
        for index in range(cases):
            name = names[index % len(names)]
            data, applied = mutate(seeds[name], rng)
            if not data:
                data, applied = seeds[name][:1], applied + ["(kept 1 byte)"]
            try:
                declared = declared_size(data)
            except Exception:
                declared, applied = None, applied + ["DECLARED-SIZE PARSER RAISED"]
                summary.outcomes["traceback"] = summary.outcomes.get("traceback", 0) + 1
            case = runner.run(Case(index, name, applied, len(data), declared), data, name)
            _count(summary, case)
            if case.outcome in BAD_OUTCOMES:
                summary.bad.append(asdict(case))
                if keep is not None:
                    keep.mkdir(parents=True, exist_ok=True)
                    (keep / f"case-{index}{Path(name).suffix}").write_bytes(data)
            records.append(case)
            on_case(case)
    return summary, records


def _small(case: Case) -> bool:
    return case.declared is not None and case.declared[0] * case.declared[1] < SMALL_PIXELS


def _count(summary: Summary, case: Case) -> None:
    summary.cases += 1
    summary.outcomes[case.outcome] = summary.outcomes.get(case.outcome, 0) + 1
    summary.max_peak_mb = max(summary.max_peak_mb, case.peak_mb)
    summary.max_seconds = max(summary.max_seconds, case.seconds)
    if _small(case):
        summary.small_cases += 1
        summary.small_max_seconds = max(summary.small_max_seconds, case.seconds)
        summary.small_max_cpu_seconds = max(summary.small_max_cpu_seconds, case.cpu_seconds)
        summary.small_max_peak_mb = max(summary.small_max_peak_mb, case.peak_mb)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jpegfix.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=200, help="mutated files to run (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the seeds and the mutations")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="CPU seconds before a case counts as a hang (a blocked case: 6x this on the clock, at least 60)")
    parser.add_argument("--report", type=Path, help="write the summary and every case as JSON here")
    parser.add_argument("--keep", type=Path, help="save inputs of bad cases in this folder")
    parser.add_argument("--log", type=Path, help="append each case as a JSON line here as it finishes")
    args = parser.parse_args(argv)
    started = time.time()

    log = args.log.open("a", buffering=1) if args.log else None

    def progress(case: Case) -> None:
        if log:
            log.write(json.dumps(asdict(case)) + "\n")
        if case.outcome in BAD_OUTCOMES or (case.index + 1) % 250 == 0:
            print(f"{case.index + 1}/{args.cases} {case.outcome} {case.seed} {'; '.join(case.mutations)} "
                  f"{case.detail[:120]}", file=sys.stderr, flush=True)

    summary, records = run_fuzz(args.cases, args.seed, args.timeout, args.keep, progress)
    summary_data = asdict(summary) | {"wall_seconds": round(time.time() - started, 1)}
    print(json.dumps({k: v for k, v in summary_data.items() if k != "bad"}, indent=2))
    if args.report:
        args.report.write_text(json.dumps({"summary": summary_data, "cases": [asdict(c) for c in records]}, indent=1))
    return 0 if summary.clean else 1


if __name__ == "__main__":
    sys.exit(main())
