"""Options shared by several commands, declared once."""

from __future__ import annotations

from typing import Annotated, Optional

import typer


def _check_device(value: str) -> str:
    """Refuse an unavailable device while parsing (usage error, exit 2), before any work."""
    if value == "auto":
        return value
    from jpegfix.devices import pick_device
    from jpegfix.errors import DeviceError

    try:
        pick_device(value)
    except DeviceError as error:
        raise typer.BadParameter(str(error)) from None
    return value


DeviceOpt = Annotated[str, typer.Option("--device", callback=_check_device,
                                        help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps.")]
ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="Model name (see `jpegfix models`) or a method name (cqr: cqr-color-s or cqr-gray-s per image); default: chosen per image.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print results as JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]
MIN_TILE = 64
"""Smallest tile side taken: below it the tiles' context and overlap cost more than the tile
itself, and a mistyped --tile 5 would silently run for hours."""


def _check_tile(value: int) -> int:
    if value != 0 and value < MIN_TILE:
        raise typer.BadParameter(f"{value} is neither 0 (chosen from free memory) nor a side of at least {MIN_TILE} pixels")
    return value


TileOpt = Annotated[int, typer.Option("--tile", callback=_check_tile,
                                      help=f"Tile side in pixels, 0 (chosen from free memory) or at least {MIN_TILE}.")]

# jpegfix.runtime.BACKENDS / PRECISIONS, spelled here because that module imports torch and
# parsing options must not (tests/test_runtime.py checks that the two agree).
BACKEND_CHOICES = ("auto", "torch", "openvino", "onnxruntime")
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")


def _one_of(*choices: str):
    """A typer callback that refuses any value but ``choices`` (a usage error, exit 2)."""

    def check(value: str) -> str:
        if value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
        return value
    return check


BackendOpt = Annotated[str, typer.Option("--backend", callback=_one_of(*BACKEND_CHOICES),
                                          help="auto (the fastest installed: OpenVINO, then ONNX Runtime, on CPUs; torch on GPUs), torch, openvino or onnxruntime. A compiled runtime exports each model once and caches it.")]
PrecisionOpt = Annotated[str, typer.Option("--precision", callback=_one_of(*PRECISION_CHOICES),
                                           help="auto: bf16 on CPUs with AMX or AVX-512 BF16 and on GPUs (fp16 where they lack bf16), fp32 elsewhere and for --bits 16.")]
ThreadsOpt = Annotated[int, typer.Option("--threads", min=0, help="CPU threads for the networks (0: all cores).")]
