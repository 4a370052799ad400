"""Where a network's forward pass runs: torch eager, or a compiled CPU runtime.

Every network call of the restore engine and of the quality readout goes through
:class:`Accelerated`, an ``nn.Module`` that wraps the network. On its first call with a given
input layout it exports the network once to ONNX (read by OpenVINO and ONNX Runtime) with dynamic batch, height and width, keeps the export in the user
cache (keyed by the weights' sha256, the layout, the runtime's version and the precision),
checks the compiled network against torch on a small probe, and from then on runs it. Any
failure (runtime not installed, export or compile error, a probe that disagrees) costs one
warning and the call runs in torch: nothing is lost.

Measured on a 2-core AMD EPYC (AVX2, no AVX-512/AMX), qgcn-color-s, 1024x768, two threads
(docs/speed.md): torch eager 1.0x, torch channels-last 1.2x, ONNX Runtime 1.8x, OpenVINO
3.3x. So ``auto`` takes OpenVINO on CPUs, then ONNX Runtime, then torch; GPUs stay on torch.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

BACKENDS = ("auto", "torch", "openvino", "onnxruntime")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CPU_RUNTIMES = ("openvino", "onnxruntime")
"""Compiled CPU runtimes, fastest first (measured, see the module docstring)."""
TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
PROBE_SIDE = 64
"""Side of the example the network is exported with; the probe uses another shape, so a
runtime that fixed the export's shape is caught before it restores anything."""
PROBE_TOLERANCE = {"fp32": 1e-4, "bf16": 2 / 255, "fp16": 2 / 255}
"""Largest difference to torch float32 a compiled network may show on the probe."""


class RuntimeFallbackWarning(RuntimeWarning):
    """A compiled runtime could not be used; the network runs in torch instead."""


@dataclass
class Choice:
    """How one network runs, and why (reported per file and in ``--json``)."""

    backend: str
    precision: str
    reason: str
    compiled_s: float = 0.0
    """Seconds this process spent exporting and compiling (0 when the cache was reused)."""
    cache: str = ""
    """Folder holding the export (empty for torch)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def label(self) -> str:
        return f"{self.backend} {self.precision}"


# -- choosing ---------------------------------------------------------------------------


def _cpuinfo(field: str) -> str:
    """The first ``field`` line's value in /proc/cpuinfo ("" where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    return set(_cpuinfo("flags").split())


def cpu_model() -> str:
    """The CPU's name, for cards and reports ("Intel(R) Xeon(R) Processor")."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def native_bf16(flags: set[str] | None = None) -> bool:
    """True on CPUs with bfloat16 arithmetic in hardware (AMX or AVX-512 BF16)."""
    flags = cpu_flags() if flags is None else flags
    return bool({"amx_bf16", "avx512_bf16"} & flags)


def pick_precision(requested: str, device: torch.device, bits: int = 8,
                   flags: set[str] | None = None) -> tuple[str, str]:
    """(precision, reason). ``auto``: bf16 on CPUs with AMX or AVX-512 BF16, bf16 (or fp16
    where the GPU lacks it) on GPUs, fp32 elsewhere and always for 16-bit output (reduced
    precision is held within one 8-bit grey level of fp32, not within one 16-bit level)."""
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r} (use {', '.join(PRECISIONS)})")
    if requested != "auto":
        return requested, "asked for"
    if bits > 8:
        return "fp32", "16-bit output keeps float32"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", "GPU with bfloat16"
        return "fp16", "GPU without bfloat16"
    if device.type == "mps":
        return "fp16", "Apple GPU"
    if native_bf16(flags):
        return "bf16", "CPU with AMX / AVX-512 BF16"
    return "fp32", "CPU without bfloat16 hardware"


def installed(backend: str) -> bool:
    """True when ``backend``'s Python package can be imported here."""
    if backend == "torch":
        return True
    # both read the ONNX export, which torch writes with the onnx package
    return all(importlib.util.find_spec(module) is not None for module in (backend, "onnx"))


def runtime_version(backend: str) -> str:
    package = {"torch": "torch", "openvino": "openvino", "onnxruntime": "onnxruntime"}[backend]
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def pick_backend(requested: str, device: torch.device, precision: str = "fp32",
                 available: Callable[[str], bool] | None = None) -> tuple[str, str]:
    """(backend, reason) for ``requested`` (one of :data:`BACKENDS`) on ``device``;
    ``available`` tells whether a runtime is installed (:func:`installed`, looked up at call
    time so that it can be replaced)."""
    available = available or installed
    if requested not in BACKENDS:
        raise ValueError(f"unknown backend {requested!r} (use {', '.join(BACKENDS)})")
    if requested == "torch":
        return "torch", "asked for"
    if device.type != "cpu":
        return "torch", f"{device.type} device: compiled runtimes run on the CPU only"
    if requested != "auto":
        if not available(requested):
            return "torch", f"{requested} is not installed (pip install 'jpegfix[{_extra(requested)}]')"
        if requested == "onnxruntime" and precision != "fp32":
            return "torch", f"onnxruntime runs fp32 only here, {precision} asked for"
        return requested, "asked for"
    for backend in CPU_RUNTIMES:
        if backend == "onnxruntime" and precision != "fp32":
            continue
        if available(backend):
            return backend, "fastest installed CPU runtime"
    return "torch", "no compiled CPU runtime installed (pip install 'jpegfix[fast]')"


def _extra(backend: str) -> str:
    return "fast" if backend == "openvino" else "onnx"


# -- the cache ---------------------------------------------------------------------------


def cache_root() -> Path:
    """``$JPEGFIX_CACHE``, else ``$XDG_CACHE_HOME/jpegfix``, else ``~/.cache/jpegfix``."""
    if os.environ.get("JPEGFIX_CACHE"):
        return Path(os.environ["JPEGFIX_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jpegfix"


def weights_digest(net: nn.Module) -> str:
    """sha256 of the network's parameters and buffers (names, shapes and bytes): the export
    is invalid as soon as any weight changes, whatever file it came from."""
    digest = hashlib.sha256(type(net).__qualname__.encode())
    for name, tensor in net.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def layout(inputs: tuple[torch.Tensor, ...]) -> str:
    """The input layout an export is valid for: rank and channels of each input (batch,
    height and width are dynamic)."""
    return ",".join(f"{t.dim()}d{t.shape[1] if t.dim() > 1 else ''}" for t in inputs)


def cache_folder(net: nn.Module, inputs: tuple[torch.Tensor, ...], backend: str, precision: str) -> Path:
    key = "|".join([weights_digest(net), layout(inputs), backend, runtime_version(backend),
                    runtime_version("torch"), precision])
    return cache_root() / "compiled" / hashlib.sha256(key.encode()).hexdigest()[:24]


# -- running -----------------------------------------------------------------------------


class Accelerated(nn.Module):
    """``net`` behind a runtime: call it like ``net`` (tensors in, a tensor out).

    The runtime is compiled lazily per input layout on the first call (so one wrapper serves
    any network and any of its call signatures); :attr:`choice` says what runs and why.
    Attributes the wrapper does not have are read from ``net``.
    """

    def __init__(self, net: nn.Module, device: torch.device | str = "cpu", backend: str = "auto",
                 precision: str = "fp32", threads: int = 0, name: str = ""):
        super().__init__()
        self.net = net
        self.device = torch.device(device)
        self.precision = precision
        self.threads = threads
        self.name = name or type(net).__name__
        self.backend, reason = pick_backend(backend, self.device, precision)
        self.choice = Choice(self.backend, precision, reason)
        self._runners: dict[str, Callable[..., np.ndarray]] = {}

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("net"), name)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.backend == "torch":
            return self._torch(*inputs)
        key = layout(inputs)
        if key not in self._runners:
            runner = self._compile(inputs)
            if runner is None:
                return self._torch(*inputs)
            self._runners[key] = runner
        arrays = [t.detach().float().cpu().contiguous().numpy() for t in inputs]
        return torch.from_numpy(self._runners[key](arrays))

    def _torch(self, *inputs: torch.Tensor) -> torch.Tensor:
        dtype = TORCH_DTYPES[self.precision]
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype != torch.float32):
            return self.net(*inputs)

    def _compile(self, inputs: tuple[torch.Tensor, ...]) -> Callable[..., np.ndarray] | None:
        """Export (or reuse the cached export), compile and probe; None after a fallback."""
        with torch.inference_mode(False):  # tracing needs ordinary tensors
            return self._compile_traced(inputs)

    def _compile_traced(self, inputs: tuple[torch.Tensor, ...]) -> Callable[..., np.ndarray] | None:
        started = time.perf_counter()
        try:
            example, probe = _crops(inputs, PROBE_SIDE, PROBE_SIDE), _crops(inputs, PROBE_SIDE - 16, PROBE_SIDE + 16)
            folder = cache_folder(self.net, inputs, self.backend, self.precision)
            exported = _export(self.net, example, folder)
            runner = _load(self.backend, folder, self.precision, self.threads or torch.get_num_threads())
            with torch.no_grad():
                expected = self.net(*probe).float().numpy()
            got = runner([t.numpy() for t in probe])
            error = float(np.abs(got - expected).max())
            if not error <= PROBE_TOLERANCE[self.precision]:
                raise RuntimeError(f"its output differs from torch by {error:.2g} on a probe")
        except Exception as error:  # noqa: BLE001 - any runtime failure falls back to torch
            detail = " ".join(str(error).split())[:200] or type(error).__name__
            message = f"{self.backend} could not run {self.name} ({detail}); using torch"
            warnings.warn(message, RuntimeFallbackWarning, stacklevel=2)
            self.choice = Choice("torch", self.precision, f"{self.backend} failed: {detail}")
            self.backend = "torch"
            return None
        if exported:
            self.choice.compiled_s += time.perf_counter() - started
        self.choice.cache = str(folder)
        return runner


def _crops(inputs: tuple[torch.Tensor, ...], height: int, width: int) -> tuple[torch.Tensor, ...]:
    """Small top-left crops of ``inputs`` (4-D ones at their own scale relative to the first
    input, as a noise map at half resolution), batch 1, float32 on the CPU."""
    full_h, full_w = inputs[0].shape[-2:]
    crops = []
    for t in inputs:
        t = t[:1].detach().float().cpu().clone()
        if t.dim() == 4:
            scale_h, scale_w = max(1, full_h // t.shape[-2]), max(1, full_w // t.shape[-1])
            h, w = min(height, full_h) // scale_h, min(width, full_w) // scale_w
            t = t[..., :h, :w]
        crops.append(t.contiguous())
    return tuple(crops)


def _export(net: nn.Module, example: tuple[torch.Tensor, ...], folder: Path) -> bool:
    """Write the ONNX export to ``folder`` unless it is there; True when this call wrote it.
    Written in a temporary folder and renamed, so a crash never leaves a half export.

    ONNX is the one export format: OpenVINO and ONNX Runtime both read it, and
    ``torch.onnx.export`` took 4 s of CPU for cqr-color-s where ``openvino.convert_model``
    took several times longer."""
    if (folder / "done").exists():
        return False
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        names = [f"input{i}" for i in range(len(example))]
        axes = {n: ({0: "n", 2: "h", 3: "w"} if t.dim() == 4 else {0: "n"}) for n, t in zip(names, example)}
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer chatter about shape arithmetic, checked by the probe
            torch.onnx.export(net, example, str(scratch / "model.onnx"), input_names=names,
                              output_names=["output"], dynamic_axes=axes, dynamo=False)
        (scratch / "done").write_text("")
        try:
            scratch.rename(folder)
        except OSError:  # another process finished the same export first
            if not (folder / "done").exists():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return True


OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}


def _load(backend: str, folder: Path, precision: str, threads: int) -> Callable[[list[np.ndarray]], np.ndarray]:
    """A function running the export in ``folder``: list of float32 arrays -> float32 array."""
    if backend == "openvino":
        import openvino as ov

        config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": OPENVINO_PRECISION[precision],
                  "PERFORMANCE_HINT": "LATENCY", "CACHE_DIR": str(folder / "blobs")}
        compiled = ov.Core().compile_model(str(folder / "model.onnx"), "CPU", config)
        request = compiled.create_infer_request()
        return lambda arrays: np.array(request.infer(arrays)[0], copy=True)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda arrays: session.run(None, dict(zip(names, arrays)))[0]
