"""The restore engine for pixels: load a restorer, choose a model for an image, and run it
over the image: quantization maps -> tiles -> network -> blend -> projection.

Library code: it never prints or exits; problems are :class:`jpegfix.errors.JpegfixError`
subclasses. Files, output names and batches are :mod:`jpegfix.batch`'s concern.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from jpegfix.catalogue import check_restorer, model_for
from jpegfix.dct import project_in_bands
from jpegfix.devices import pick_device
from jpegfix.errors import InputError
from jpegfix.jpeg import ComponentTable, DecodedImage, unit_float
from jpegfix.models import MODELS
from jpegfix.models.registry import ModelSpec
from jpegfix.models.restorer import Restorer
from jpegfix.output import quantize
from jpegfix.qmaps import build_qmaps, ijg_components
from jpegfix.recovery import at_origin, grid_padding, tables_from_pixels, tables_under_jpeg
from jpegfix.runtime import TORCH_DTYPES, Accelerated, pick_precision
from jpegfix.tiling import GRID, run_tiled
from jpegfix.weights import load_model

DEFAULT_TABLE_MODELS = {3: "qgcn-unet-color-m", 1: "qgcn-unet-gray-m"}
"""Default models for images whose quantization tables are known (JPEG files, or --quality)."""
DEFAULT_BLIND_MODELS = {3: "qgcn-unet-blind-color-m", 1: "qgcn-unet-blind-gray-m"}
"""Default models for images without usable tables (JPEGs whose tables fail validation, or a
blind model asked for by method): the best measured blind model of each kind on LIVE1 (never
trained on), harm included (docs/blind.md): the medium blind U-Nets. Colour +1.20 to +1.21 dB
at q10-40 (the small one +1.04 to +0.99), grey +1.24 to +1.39 (contrastive-gray-s +1.14 to
+1.24); at q90-100 no image more than 0.01 dB worse, clean photos back at 76 dB or more
against themselves, most bit-identical."""
DEFAULT_OVERLAP = 32
DEFAULT_CONTEXT = 48
"""Pixels of extra context read around each tile and discarded after the network: a
convolution near a tile edge then sees the same neighbours as in the whole image."""
FINEST_RESTORED_STEP = 3.0
"""A JPEG whose mean luma quantization step is below this (IJG quality 98-100: mean step 2.4
to 1) is left as decoded by the table-guided models: its tables allow less change than the
network's own noise. Measured with the full-range weights, projection on: LIVE1 q98 -0.01 dB
(colour, 2 of 29 images below -0.05) and q100 -0.00; scikit-image crops -0.00 to -0.03 at q98.
At q95 (mean step 5.8) they still gain: LIVE1 +0.17 colour / +0.11 grey with no image worse,
the crops +0.05 to +0.25."""
GPU_TILE = 1024
"""Tile side on GPUs: tiles of this side are batched (:func:`tile_batch`), so a photo fills
the GPU with several tiles per forward pass instead of one huge one."""
GPU_MAX_BATCH = 8
COMPILED_MEMORY_FACTOR = 2.5
"""Activation memory of a compiled CPU runtime relative to torch: OpenVINO held 555 bytes
per tile pixel for qgcn-color-s against torch's 323 (peak RSS over 512-1600 px tiles); 2.5
keeps a 12 MP photo under 2 GB (2.0 peaked at 2.09 GB)."""
CPU_TILE_BUDGET = 1.5 * 2**30
"""Bytes of activations one CPU tile may use (keeps a 12 MP photo well under 4 GB peak)."""


# -- models and devices ----------------------------------------------------------------


def load_restorer(name: str, device: str = "auto", *, download: bool = True, folder: Path | None = None,
                  backend: str = "auto", precision: str = "auto", bits: int = 8) -> Restorer:
    """Load registered model ``name`` with verified weights on ``device`` (from ``folder``
    when given, see :func:`jpegfix.weights.load_model`), run by ``backend`` in ``precision``
    (:mod:`jpegfix.runtime`; ``bits`` 16 keeps float32 under ``auto``).

    Raises:
        UnknownModelError, MissingWeightsError.
    """
    spec = MODELS.get(name)
    check_restorer(spec)
    net, card = load_model(spec, download=download, folder=folder)
    return runtime_restorer(spec, net, device, backend=backend, precision=precision, bits=bits, card=card)


def runtime_restorer(spec: ModelSpec, net: torch.nn.Module, device: str = "auto", *, backend: str = "auto",
                     precision: str = "auto", bits: int = 8, card: dict | None = None) -> Restorer:
    """``net`` (model ``spec``'s network) on ``device`` behind the Restorer contract, run by
    ``backend`` in ``precision`` (:mod:`jpegfix.runtime`); the choice and its reasons are in
    ``runner.choice``."""
    target = pick_device(device)
    chosen, why = pick_precision(precision, target, bits)
    runner = Accelerated(net.to(target), target, backend, chosen, name=spec.name)
    runner.choice.reason += f"; {chosen}: {why}"
    return Restorer(spec=spec, net=net, device=target, dtype=TORCH_DTYPES[chosen], card=card or {}, runner=runner)


# -- one image in memory ---------------------------------------------------------------


def auto_tile(restorer: Restorer) -> int:
    """Largest tile side (multiple of 16) whose activations fit the device's free memory."""
    per_pixel = float(getattr(restorer.net, "bytes_per_pixel", 2048))
    if restorer.runner.backend != "torch":
        per_pixel *= COMPILED_MEMORY_FACTOR
    if restorer.device.type == "cuda":
        return GPU_TILE
    budget = min(CPU_TILE_BUDGET, 0.3 * _available_memory())
    side = int(math.sqrt(budget / per_pixel)) // GRID * GRID
    return max(256, min(side, 4096))


def _available_memory() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30


def restore_pixels(
    restorer: Restorer,
    pixels: np.ndarray,
    components: list[ComponentTable] | None = None,
    *,
    tile: int = 0,
    overlap: int = DEFAULT_OVERLAP,
    context: int = DEFAULT_CONTEXT,
    seed: int = 0,
    project: bool = True,
    ensemble: bool = False,
    on_tile: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Restore (H, W, C) uint8 or uint16 ``pixels``; returns (H, W, C) float32 in [0, 1].

    ``components`` are the JPEG's quantization tables (required by table-guided models).
    ``tile`` 0 picks the tile side from free memory; an out-of-memory error halves it and
    retries. The image is padded on the 16-pixel grid so every tile sees the true block grid;
    each tile is run with ``context`` extra pixels around it (kept on the grid), then tiles
    are blended over ``overlap`` pixels. Sampling models get the noise map of ``seed`` for
    the whole padded image, cut per tile: the same seed gives the same picture at any tile size.
    With ``project`` and ``components``, the result is moved into the file's quantization
    intervals (:func:`jpegfix.dct.project_in_bands`): it then stays an image the JPEG could
    have come from, which bounds how far a restoration can stray on a high-quality file.
    ``ensemble`` averages the restorations of the 8 rotations and flips (8x the time).
    ``on_tile(done, total)`` follows the tiles (of all 8 passes with ``ensemble``).
    """
    if restorer.needs_tables and components is None:
        raise InputError(f"{restorer.spec.name} needs quantization tables")
    if restorer.needs_tables and leaves_alone(components):
        return unit_float(pixels)
    top, left = grid_padding(components) if restorer.needs_tables else (0, 0)
    if top or left:  # tables recovered from a cropped image: put its block grid at (0, 0)
        shifted = np.pad(pixels, ((top, 0), (left, 0), (0, 0)), mode="reflect")
        restored = restore_pixels(restorer, shifted, at_origin(components), tile=tile, overlap=overlap,
                                  context=context, seed=seed, project=project, ensemble=ensemble,
                                  on_tile=on_tile)
        return restored[top:, left:]
    if pixels.shape[2] != restorer.spec.channels:
        kind = "grey" if pixels.shape[2] == 1 else "colour"
        raise InputError(f"{restorer.spec.name} expects {restorer.spec.channels}-channel images, this one is {kind}")
    if ensemble and restorer.samples:
        raise InputError(f"{restorer.spec.name} draws its result from noise; --ensemble averages deterministic models only")
    height, width = pixels.shape[:2]
    image = torch.from_numpy(unit_float(pixels).transpose(2, 0, 1).copy())[None]
    padded_h, padded_w = -(-height // GRID) * GRID, -(-width // GRID) * GRID
    padded = _pad(image, padded_h - height, padded_w - width)
    noise = restorer.noise(seed, padded_h, padded_w)
    run = dict(tile=tile, overlap=overlap, context=context)
    if not ensemble:
        maps = _maps(restorer, components, padded_h, padded_w)
        result = _restore_padded(restorer, padded, maps, restorer.prepare(image), noise, on_tile=on_tile, **run)
    else:
        # x8 self-ensemble on the padded image: its sides are multiples of 16, so every
        # rotation and flip keeps the 8x8 grid where the blocks are. A flip leaves each
        # frequency's step where it was; a quarter turn swaps horizontal and vertical
        # frequencies, so it takes the transposed tables.
        result = torch.zeros_like(padded[0])
        for turns in range(4):
            for flip in (False, True):
                oriented = _orient(padded, turns, flip)
                tables = _transposed(components) if turns % 2 and components is not None else components
                maps = _maps(restorer, tables, *oriented.shape[-2:])
                vector = restorer.prepare(_orient(image, turns, flip))
                step = _pass_progress(on_tile, 2 * turns + flip, 8)
                out = _restore_padded(restorer, oriented, maps, vector, None, on_tile=step, **run)
                result += _unorient(out, turns, flip) / 8
    result = result[None, :, :height, :width]
    if project and components is not None:
        result = project_in_bands(result, image, components)  # ``image`` is the decoded input
    return result[0].permute(1, 2, 0).numpy()


def restore_uint8(restorer: Restorer, pixels: np.ndarray, components: list[ComponentTable] | None = None, *,
                  tile: int = 0, seed: int = 0, project: bool = True, ensemble: bool = False) -> np.ndarray:
    """:func:`restore_pixels` rounded back to (H, W, C) uint8: the call contract the benchmark
    shares with its peers' ``restore(pixels, components)``."""
    restored = restore_pixels(restorer, pixels, components, tile=tile, seed=seed, project=project, ensemble=ensemble)
    return quantize(restored, 8)


def _pass_progress(on_tile: Callable[[int, int], None] | None, index: int,
                   passes: int) -> Callable[[int, int], None] | None:
    """``on_tile`` for pass ``index`` of ``passes`` equal passes over the tiles."""
    if on_tile is None:
        return None
    return lambda done, total: on_tile(index * total + done, passes * total)


def leaves_alone(components: list[ComponentTable]) -> bool:
    """True for tables too fine to restore (see :data:`FINEST_RESTORED_STEP`)."""
    return float(np.mean(components[0].table)) < FINEST_RESTORED_STEP


def _restore_padded(restorer: Restorer, padded: torch.Tensor, maps: torch.Tensor | None, vector: Any,
                    noise: torch.Tensor | None, *, tile: int, overlap: int, context: int,
                    on_tile: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Run ``restorer`` tile by tile over a (1, C, H, W) image padded to the 16-pixel grid;
    returns (C, H, W). Tiles whose crops have the same shape go through the network together,
    up to :func:`tile_batch` at a time. An out-of-memory error halves the tile and retries."""
    padded_h, padded_w = padded.shape[-2:]
    margin = -(-context // GRID) * GRID

    def crop(top: int, left: int, h: int, w: int) -> tuple[tuple[int, int], list[torch.Tensor | None]]:
        y0, x0 = max(0, top - margin), max(0, left - margin)
        y1, x1 = min(padded_h, top + h + margin), min(padded_w, left + w + margin)
        s = restorer.noise_scale
        pieces = [padded[..., y0:y1, x0:x1],
                  maps[..., y0:y1, x0:x1] if maps is not None else None,
                  noise[..., y0 // s : y1 // s, x0 // s : x1 // s] if noise is not None else None]
        return (top - y0, left - x0), pieces

    def process(boxes: list[tuple[int, int, int, int]]) -> list[torch.Tensor]:
        crops = [crop(*box) for box in boxes]
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, (_, pieces) in enumerate(crops):
            groups.setdefault(tuple(pieces[0].shape), []).append(index)
        outputs: list[torch.Tensor] = [torch.empty(0)] * len(boxes)
        for members in groups.values():
            stacked = [torch.cat([crops[i][1][k] for i in members]) if crops[members[0]][1][k] is not None else None
                       for k in range(3)]
            restored = restorer(stacked[0], stacked[1], vector, stacked[2])
            for out, i in zip(restored, members):
                (dy, dx), (_, _, h, w) = crops[i][0], boxes[i]
                outputs[i] = out[:, dy : dy + h, dx : dx + w]
        return outputs

    side = tile or auto_tile(restorer)
    batch = tile_batch(restorer, side + 2 * margin)
    while True:
        try:
            return run_tiled(process, padded.shape[1], padded_h, padded_w, side, overlap, batch=batch, on_tile=on_tile)
        except (torch.OutOfMemoryError, RuntimeError) as error:
            if "out of memory" not in str(error).lower() or side <= 128:
                raise
            if batch > 1:
                batch = 1
            else:
                side = max(128, side // 2 // GRID * GRID)
            if restorer.device.type == "cuda":
                torch.cuda.empty_cache()


def tile_batch(restorer: Restorer, side: int) -> int:
    """Tiles of ``side`` pixels (with context) per forward pass: one on CPUs (a larger tile
    does the same work with less context), as many as half the free GPU memory holds (up to
    :data:`GPU_MAX_BATCH`) on a GPU, which then stays busy between tiles."""
    if restorer.device.type != "cuda":
        return 1
    per_pixel = float(getattr(restorer.net, "bytes_per_pixel", 2048))
    free, _ = torch.cuda.mem_get_info(restorer.device)
    return max(1, min(GPU_MAX_BATCH, int(0.5 * free / (per_pixel * side * side))))


def _maps(restorer: Restorer, components: list[ComponentTable] | None, height: int, width: int) -> torch.Tensor | None:
    if not restorer.needs_tables:
        return None
    return torch.from_numpy(build_qmaps(components, height, width))[None]


def _orient(image: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    image = torch.rot90(image, turns, dims=(-2, -1))
    return torch.flip(image, dims=(-1,)) if flip else image


def _unorient(image: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    if flip:
        image = torch.flip(image, dims=(-1,))
    return torch.rot90(image, -turns, dims=(-2, -1))


def _transposed(components: list[ComponentTable]) -> list[ComponentTable]:
    """The tables of the image turned a quarter: rows and columns of frequencies swap."""
    return [ComponentTable(c.table.T, c.block_width, c.block_height) for c in components]


def _pad(image: torch.Tensor, bottom: int, right: int) -> torch.Tensor:
    if not bottom and not right:
        return image
    mode = "reflect" if bottom < image.shape[-2] and right < image.shape[-1] else "replicate"
    return F.pad(image, (0, right, 0, bottom), mode=mode)


# -- choosing a model for an image -------------------------------------------------------


class ModelChoice(Protocol):
    """What :func:`choose_model` reads from a batch's options (:class:`jpegfix.batch.RestoreOptions`)
    or an API call: a forced model or method name, and a forced IJG quality."""

    model: str | None
    quality: int | None


def choose_model(image: DecodedImage, options: ModelChoice) -> tuple[str | None, list[ComponentTable] | None, str]:
    """(model name, tables to use, reason) for one image; name None: leave it as decoded.

    Table-guided default when tables are known (the file's, an earlier compression under
    them, tables recovered from the pixels, or IJG tables at ``--quality``); the blind
    default for a JPEG whose tables are unusable; ``options.model`` overrides all. An image
    that is not a JPEG and whose pixels show no JPEG quantization is left as decoded unless a
    model is forced: it was never compressed or was resized after decoding. The blind U-Net
    leaves clean photos nearly alone, but gains only +0.04 dB on 0.75x-resized quality-30
    JPEGs and loses up to 0.49 on a resized quality-90 one (LIVE1, docs/blind.md): nothing
    there is worth the risk yet. The reason names the model and says why it was chosen.

    Raises:
        InputError: the image cannot be restored with the chosen model and options.
    """
    channels = image.channels
    if options.quality is not None:
        subsampling = image.subsampling or "4:2:0"
        components = ijg_components(options.quality, channels, subsampling)
        source = f"--quality {options.quality} (IJG tables, {subsampling if channels == 3 else 'grey'})"
    elif image.components is not None:
        components = image.components
        source = "JPEG quantization tables from the file"
        if _wants_tables(options, channels):
            components, source = tables_under_jpeg(image.pixels, components) or (components, source)
    else:
        components = None
        source = image.tables_problem or f"{image.format or 'this'} file has no JPEG quantization tables"
        if _wants_tables(options, channels):
            components, source = tables_from_pixels(image.pixels) or (components, source)
    if options.model:
        name, why = model_for(options.model, channels), "--model"
    elif components is not None:
        name, why = DEFAULT_TABLE_MODELS[channels], "table-guided default"
    elif image.format != "JPEG":
        blind = DEFAULT_BLIND_MODELS[channels]
        return None, None, (f"left as decoded: {source}, and its pixels show no JPEG quantization on any 8x8 grid "
                            f"(never compressed, or resized after decoding); --model {blind} restores it blind")
    else:
        name, why = DEFAULT_BLIND_MODELS[channels], "blind default"
    spec = MODELS.get(name)
    check_restorer(spec)
    if spec.needs_tables and components is None:
        blind = DEFAULT_BLIND_MODELS[channels]
        raise InputError(f"{source}; pass --quality Q to restore it as a JPEG of quality Q, or use --model {blind}")
    if spec.channels != channels:
        other = (DEFAULT_TABLE_MODELS if spec.needs_tables else DEFAULT_BLIND_MODELS)[channels]
        kind = "grey" if channels == 1 else "colour"
        raise InputError(f"{name} is a {spec.channels}-channel model and this image is {kind}; try --model {other}")
    if components is not None and not spec.needs_tables:
        reason = f"{why}, blind model (tables not used)"
    elif spec.needs_tables and leaves_alone(components):
        reason = f"{why}, {source}; left as decoded (quality 98 or finer: nothing to restore)"
    else:
        reason = f"{why}, {source}"
    return name, components if spec.needs_tables else None, reason


def _wants_tables(options: ModelChoice, channels: int) -> bool:
    """Whether reading tables from the pixels can change the choice: not when a blind model
    is forced."""
    return not options.model or MODELS.get(model_for(options.model, channels)).needs_tables
