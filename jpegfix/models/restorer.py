"""The Restorer: one loaded network behind a method-independent call contract.

The engine talks only to this class, and this class knows nothing of the engine (whole
images, with padding, tiles and projection, are :func:`jpegfix.engine.restore_pixels`).
Contract: images are float tensors (N, C, H, W) in [0, 1], H and W multiples of
``size_multiple``; quantization maps (N, K, H, W) are passed to models that ``needs_tables``; ``prepare(whole_image)`` computes per-image context once (QGCN's
global vector), which every tile of that image then shares. Sampling models (One-to-Many)
also take a noise map: :meth:`Restorer.noise` draws it for the whole image from a seed, and
each tile gets its own cut of it, like the quantization maps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from jpegfix.models.registry import ModelSpec
from jpegfix.runtime import TORCH_DTYPES, Accelerated


@dataclass
class Restorer:
    spec: ModelSpec
    net: nn.Module
    device: torch.device
    dtype: torch.dtype = torch.float32
    """Autocast dtype: float32 on CPU, bfloat16 (or float16) on GPUs that support it."""
    card: dict[str, Any] = field(default_factory=dict)
    runner: Accelerated | None = None
    """Runs ``net`` on tiles (torch or a compiled runtime, :mod:`jpegfix.runtime`); torch in
    ``dtype`` when not given."""

    def __post_init__(self) -> None:
        if self.runner is None:
            precision = {dtype: name for name, dtype in TORCH_DTYPES.items()}[self.dtype]
            self.runner = Accelerated(self.net, self.device, "torch", precision, name=self.spec.name)

    @property
    def size_multiple(self) -> int:
        return int(getattr(self.net, "size_multiple", 1))

    @property
    def needs_tables(self) -> bool:
        return self.spec.needs_tables

    @property
    def samples(self) -> bool:
        """True for models whose output depends on a random noise map (several candidates)."""
        return self.spec.samples

    @property
    def noise_scale(self) -> int:
        """Image pixels per noise-map pixel along each side."""
        return int(getattr(self.net, "noise_scale", 1))

    def noise(self, seed: int, height: int, width: int) -> torch.Tensor | None:
        """The (1, Z, H/scale, W/scale) noise map of a ``height`` x ``width`` image for ``seed``
        (drawn on the CPU, so a seed gives the same picture on every device), or None for
        deterministic models."""
        if not self.samples:
            return None
        return self.net.sample_noise(1, height, width, torch.Generator().manual_seed(seed))

    def _autocast(self):
        enabled = self.device.type in ("cuda", "mps") and self.dtype != torch.float32
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=enabled)

    @torch.inference_mode()
    def prepare(self, image: torch.Tensor) -> Any:
        """Per-image context from the whole (1, C, H, W) image, or None for local models."""
        prepare = getattr(self.net, "global_vector", None)
        if prepare is None:
            return None
        with self._autocast():
            return prepare(image.to(self.device)).float()

    @torch.inference_mode()
    def __call__(self, tile: torch.Tensor, qmaps: torch.Tensor | None, context: Any = None,
                 noise: torch.Tensor | None = None) -> torch.Tensor:
        """Restore (N, C, h, w) tiles (one image's: they share its ``context``); returns
        (N, C, h, w) float32 in [0, 1] on the device. This is the one place the engine runs
        a network on pixels."""
        args = [self._to_device(tile)]
        if self.needs_tables:
            args.append(self._to_device(qmaps))
        if self.samples:
            args.append(self._to_device(noise))
        if context is not None:
            args.append(context.expand(tile.shape[0], *context.shape[1:]))
        out = self.runner(*args)
        return out.to(self.device).float().clamp_(0, 1)

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """Pinned host memory and an asynchronous copy on CUDA (the copy overlaps the GPU's
        work on the previous batch); a no-op on the CPU."""
        if self.device.type != "cuda":
            return tensor
        return tensor.pin_memory().to(self.device, non_blocking=True)
