"""Speed and memory of each model on one synthetic photo-sized input, measured in one run.

Each model restores the same kind of input (a smooth synthetic image with texture, JPEG
compressed by Pillow at quality 30, in the model's own channel count) through its full
``restore`` call, as a user would run it, on each asked-for backend and precision
(:mod:`jpegfix.runtime`): one torch eager float32 call (counts multiply-accumulates with
forward hooks and gives the reference for the largest 8-bit difference), ``warmup`` calls
(the first compiles, or reuses the cached export), then ``repeats`` timed calls; the median
is reported. Memory:

* CPU: peak resident set size. Peak RSS is a per-process figure, so by default each model
  is measured in a fresh child process (``isolate=True``); the report gives the child's peak
  RSS and its increase over the RSS just before the first call (after the model is loaded).
  On Linux the peak is reset through ``/proc/self/clear_refs`` before the first call where
  allowed, so loading does not count.
* CUDA: the allocator peak (``torch.cuda.max_memory_allocated``) during the calls.
"""

from __future__ import annotations

import gc
import io
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from jpegfix.bench.rows import RowRef, load_row, restore_function
from jpegfix.errors import MissingWeightsError
from jpegfix.qmaps import ijg_components

SPEED_QUALITY = 30


@dataclass
class SpeedResult:
    model: str
    device: str
    width: int
    height: int
    channels: int
    warmup: int
    repeats: int
    seconds: list[float] = field(default_factory=list)
    """Each timed call, in seconds."""
    median_s: float = 0.0
    megapixels_per_s: float = 0.0
    macs_per_pixel: float = 0.0
    """Multiply-accumulates of Conv2d, ConvTranspose2d and Linear layers per input pixel."""
    params: int = 0
    """Parameters of the modules that ran (for ARCNN: the one per-quality model used)."""
    peak_memory_mb: float | None = None
    """CPU: peak RSS of the measuring process; CUDA: allocator peak."""
    memory_increase_mb: float | None = None
    """CPU: peak RSS minus the RSS before the first call (activations and workspaces)."""
    memory_kind: str = ""
    threads: int = 0
    untrained: bool = False
    """Timed with random weights because none are installed (speed does not depend on them)."""
    error: str = ""
    cpu_median_s: float = 0.0
    """Median CPU time of this process per call (all threads): on a machine shared with other
    jobs wall time depends on them, CPU time much less (at one thread it is the time the call
    would take alone)."""
    megapixels_per_cpu_s: float = 0.0
    backend: str = "torch"
    """Runtime that ran the network (:mod:`jpegfix.runtime`); ``runtime_note`` says why."""
    precision: str = "fp32"
    max_diff_8bit: int | None = None
    """Largest difference of the 8-bit output to torch eager float32 on the same input."""
    runtime_note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def synthetic_input(width: int, height: int, channels: int, quality: int = SPEED_QUALITY,
                    subsampling: str = "4:2:0") -> tuple[np.ndarray, list]:
    """A deterministic (height, width, channels) uint8 photo-like image, JPEG round-tripped,
    and its IJG component tables."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 128 + 60 * np.sin(x / 97.0) * np.cos(y / 53.0)
    planes = [base + 30 * np.sin((x + 40 * c) / (23.0 + 7 * c)) for c in range(channels)]
    pixels = np.stack(planes, axis=-1) + rng.normal(0, 12, (height, width, channels))
    pixels = np.clip(pixels, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, subsampling=subsampling)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        array = np.asarray(decoded, dtype=np.uint8)
    array = array[..., None] if array.ndim == 2 else array
    return array, ijg_components(quality, channels, subsampling)


def count_macs(net: Any, call: Callable[[], Any]) -> tuple[int, int]:
    """(multiply-accumulates, parameters) of the modules of ``net`` that run during ``call()``.

    Conv2d: output elements x in/groups x kernel area; ConvTranspose2d: input elements x
    out/groups x kernel area; Linear: output elements x in_features. Other layers (ReLU,
    pooling, pixel shuffle, interpolation) are not counted.
    """
    from torch import nn

    macs = 0
    ran: dict[int, nn.Module] = {}

    def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
        nonlocal macs
        ran[id(module)] = module
        if isinstance(module, nn.ConvTranspose2d):
            area = module.kernel_size[0] * module.kernel_size[1]
            macs += inputs[0].numel() * (module.out_channels // module.groups) * area
        elif isinstance(module, nn.Conv2d):
            area = module.kernel_size[0] * module.kernel_size[1]
            macs += output.numel() * (module.in_channels // module.groups) * area
        elif isinstance(module, nn.Linear):
            macs += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in net.modules()]
    try:
        call()
    finally:
        for handle in handles:
            handle.remove()
    seen: set[int] = set()
    params = 0
    for module in ran.values():
        for p in module.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                params += p.numel()
    return macs, params


def measure_speed(name: str, restorer: Any, width: int, height: int, *, repeats: int = 3, warmup: int = 1,
                  subsampling: str = "4:2:0") -> SpeedResult:
    """Time ``restorer`` in this process (see the module docstring for what is measured)."""
    import torch

    device = torch.device(str(restorer.device))
    channels = restorer.spec.channels
    result = SpeedResult(name, str(device), width, height, channels, max(warmup, 1), repeats,
                         threads=torch.get_num_threads())
    pixels, components = synthetic_input(width, height, channels, SPEED_QUALITY, subsampling)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    # MACs and the float32 reference from torch eager (hooks do not see a compiled runtime),
    # before the peak is reset; then the warm-up calls (the first compiles where needed).
    eager = replace(restorer, runner=None, dtype=torch.float32) if hasattr(restorer, "runner") else restorer
    reference: list[np.ndarray] = []
    restore_eager = restore_function(eager)
    macs, params = count_macs(restorer.net, lambda: reference.append(restore_eager(pixels, components)))
    del eager, restore_eager
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        result.memory_kind = "cuda allocator peak"
    else:
        reset = _reset_peak_rss()
        result.memory_kind = "peak RSS" + ("" if reset else " (since process start)")
    rss_before = _rss_mb("VmRSS")
    restore = restore_function(restorer)
    for _ in range(result.warmup):
        output = restore(pixels, components)
    result.max_diff_8bit = int(np.abs(output.astype(np.int16) - reference[0].astype(np.int16)).max())
    choice = getattr(getattr(restorer, "runner", None), "choice", None)
    if choice is not None:
        result.backend, result.precision = choice.backend, choice.precision
        result.runtime_note = choice.reason
    sync()
    cpu_seconds = []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        restore(pixels, components)
        sync()
        result.seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
    result.median_s = statistics.median(result.seconds)
    result.megapixels_per_s = width * height / 1e6 / result.median_s
    result.cpu_median_s = statistics.median(cpu_seconds)
    result.megapixels_per_cpu_s = width * height / 1e6 / max(result.cpu_median_s, 1e-9)
    result.macs_per_pixel = macs / (width * height)
    result.params = params
    if device.type == "cuda":
        result.peak_memory_mb = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        result.peak_memory_mb = _rss_mb("VmHWM")
        if result.peak_memory_mb is not None and rss_before is not None:
            result.memory_increase_mb = result.peak_memory_mb - rss_before
    return result


def measure_row(ref: RowRef, device: str, width: int, height: int, repeats: int, warmup: int,
                subsampling: str = "4:2:0", threads: int = 0, backend: str = "torch",
                precision: str = "fp32") -> SpeedResult:
    """Load row ``ref`` and measure it; errors come back in ``SpeedResult.error``."""
    try:
        import torch

        if threads:
            torch.set_num_threads(threads)
        try:
            restorer, untrained = load_row(ref, device, backend, precision), False
        except MissingWeightsError:
            if ref.kind != "jpegfix":
                raise
            restorer, untrained = untrained_restorer(ref.name, device, backend, precision), True
        result = measure_speed(ref.name, restorer, width, height, repeats=repeats, warmup=warmup,
                               subsampling=subsampling)
        result.untrained = untrained
        return result
    except Exception as error:  # noqa: BLE001 - reported in the table, the run goes on
        return SpeedResult(ref.name, device, width, height, 0, warmup, repeats, backend=backend, precision=precision,
                           error=f"{type(error).__name__}: {error}")


def untrained_restorer(name: str, device: str, backend: str = "torch", precision: str = "auto") -> Any:
    """Model ``name`` with random weights: the paper-size configurations ship no weights on a
    CPU-only project, yet their cost is what users weigh against the small ones."""
    from jpegfix.engine import runtime_restorer
    from jpegfix.models import MODELS

    spec = MODELS.get(name)
    return runtime_restorer(spec, spec.build().eval(), device, backend=backend, precision=precision)


def measure_rows(refs: list[RowRef], device: str, width: int, height: int, *, repeats: int = 3, warmup: int = 1,
                 subsampling: str = "4:2:0", isolate: bool = True,
                 on_result: Callable[[SpeedResult], None] | None = None,
                 backends: tuple[str, ...] = ("torch",), precisions: tuple[str, ...] = ("fp32",)) -> list[SpeedResult]:
    """Measure every model row (``jpeg`` is skipped) on every backend and precision (peers:
    torch float32 only), one after the other.

    With ``isolate`` each combination runs in a fresh spawned process with this process's
    torch thread count, so that peak RSS belongs to it alone.
    """
    import torch

    threads = torch.get_num_threads()
    results = []
    combinations = [(ref, backend, precision) for ref in refs for backend in backends for precision in precisions
                    if ref.kind == "jpegfix" or (backend, precision) == ("torch", "fp32")]
    for ref, backend, precision in combinations:
        if ref.kind == "jpeg":
            continue
        args = (ref, device, width, height, repeats, warmup, subsampling, threads, backend, precision)
        if isolate:
            with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
                result = pool.submit(measure_row, *args).result()
        else:
            result = measure_row(*args)
        results.append(result)
        if on_result:
            on_result(result)
    return results


def _reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rss_mb(field_name: str) -> float | None:
    """``VmRSS`` or ``VmHWM`` of this process in MiB from /proc; peak from getrusage elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    if field_name == "VmHWM":
        try:
            import resource
            import sys

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return peak / 2**20 if sys.platform == "darwin" else peak / 1024
        except (ImportError, OSError):
            return None
    return None
