"""What a training recipe is: the networks a method trains, its stages, and its validation.

The loop in :mod:`jpegfix.train.loop` owns everything methods share (device, AMP, DDP,
checkpoints, resume, validation schedule, progress, export). A recipe owns what differs:
which networks exist, how each stage makes batches and turns a batch into losses, and
what validation measures. Multi-stage methods (easy-hard transfer, ranker then deblocker,
encoder then restorer, generator then GAN) are lists of :class:`Stage`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import torch
from torch import nn

Batch = Any


@dataclass
class Stage:
    """One phase of training with its own data, optimiser and step count."""

    name: str
    steps: int
    trainable: list[str]
    """Names of the recipe's modules this stage optimises (one Adam per name); a dotted
    path (``net.encoder``) names a part of a module."""
    lr: float
    make_batches: Callable[["TrainContext"], Callable[[int], Batch]]
    """Called once when the stage starts; returns ``batch(step)``, deterministic in ``step``."""
    step: Callable[[Batch, "TrainContext"], dict[str, float]]
    """One optimisation step: computes losses, calls ``ctx.backward``, returns scalars to log."""
    frozen: list[str] = field(default_factory=list)
    """Modules used but not trained in this stage; kept in eval mode (BatchNorm stays put).
    Every module not in ``trainable`` is frozen anyway; list dotted parts of trained modules
    here (``net.encoder``) to freeze them inside a trained module."""
    betas: tuple[float, float] = (0.9, 0.999)
    warmup: int = 0
    """Linear warm-up steps before the cosine; 0 means 2% of ``steps``. Wider nets with a
    ReLU before a zero-started output conv can die on a warm-up of a few dozen steps
    (docs/race.md), so the QGCN recipes can ask for more."""


class TrainContext(Protocol):
    device: torch.device
    modules: dict[str, nn.Module]

    def net(self, name: str) -> nn.Module: ...
    def backward(self, loss: torch.Tensor, optimizer: str) -> None: ...
    def autocast(self): ...


class Recipe(Protocol):
    method: str
    config: Any

    def build(self, ctx: TrainContext) -> dict[str, nn.Module]:
        """Create every network the method trains (called once, before any stage)."""

    def stages(self) -> list[Stage]: ...

    def validate(self, ctx: TrainContext) -> dict[str, float]:
        """Scores on held-out data; the first key is the headline number of the curve."""

    def exports(self) -> dict[str, str]:
        """Module name -> registry model name written by ``--export``."""

    def card(self) -> dict[str, Any]:
        """Method-specific facts for the model card (quality range, losses, ...)."""


def apply_overrides(config: Any, overrides: list[str]) -> Any:
    """Return ``config`` (a frozen dataclass) with ``field=value`` overrides applied.

    Values are parsed as JSON when possible (numbers, lists, booleans), else kept as strings.

    Raises:
        ValueError: an override names no field of the config.
    """
    names = {f.name: f for f in dataclasses.fields(config)}
    changes = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or key not in names:
            raise ValueError(f"unknown setting {key!r}; known: {', '.join(names)}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if isinstance(getattr(config, key), tuple) and isinstance(value, list):
            value = tuple(value)
        changes[key] = value
    return dataclasses.replace(config, **changes)


class RecipeData:
    """Training images, loaded once per run, for recipes with ``data`` folders and a ``spec``."""

    data: list
    spec: Any
    _images: list | None = None

    jpeg_scale: float = 1.0
    """Scale applied to training images stored as JPEG files (see :func:`jpegfix.data.load_image`)."""

    def training_images(self) -> list:
        """(H, W, C) uint8 images of every ``data`` folder, in the model's channel count."""
        from jpegfix.data import list_images, load_image

        if self._images is None:
            self._images = [load_image(p, self.spec.channels, self.jpeg_scale) for p in list_images(self.data)]
        return self._images
