"""The model registry: one frozen :class:`ModelSpec` per shipped or trainable model.

Method modules register their specs explicitly at import (see ``models/__init__.py``); a
duplicate name is an error rather than a silent overwrite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from torch import nn

from jpegfix.catalogue import METHODS, unknown_model

ROLES = ("restorer", "ranker")


@dataclass(frozen=True)
class ModelSpec:
    """What jpegfix knows about a model before loading it."""

    name: str
    """``<method>-<color|gray>-<size>``, the name users type after ``--model``."""
    method: str
    """One of :data:`METHODS`."""
    arch: Callable[..., nn.Module]
    """The network class; called with ``arch_args`` as keyword arguments."""
    arch_args: dict[str, Any]
    channels: int
    """1 for grey models, 3 for colour models."""
    needs_tables: bool
    """True for models that need quantization maps (JPEG input or ``--quality``)."""
    description: str = ""
    weights: str = ""
    """Weight file name (without suffix) in the weights folder; defaults to ``name``."""
    hub_repo: str = "jpegfix/jpegfix-weights"
    """Hugging Face repo for weights not shipped in the package ($JPEGFIX_HUB_REPO overrides)."""
    hub_revision: str = "v0.1.0"
    """Pinned revision (tag or commit) of ``hub_repo``; $JPEGFIX_HUB_REVISION overrides."""
    extras: dict[str, Any] = field(default_factory=dict)
    samples: bool = False
    """True for models that draw each result from a noise map (One-to-Many): ``--samples N``
    writes N different candidates, ``--seed`` picks them reproducibly."""
    weights_dtype: str = "float32"
    """How the weight file stores floating-point tensors. ``float16`` halves the file of the
    larger models (every weight file stays in the git history); loading casts back to the
    network's float32, so inference is unchanged but for the rounding of the weights."""
    role: str = "restorer"
    """``restorer`` for networks the restore engine runs; ``ranker`` for networks that score
    images instead of restoring them (CQR's compression-quality ranker, read by ``jpegfix
    info``). The engine refuses rankers and :meth:`Registry.names` leaves them out by default."""

    @property
    def weights_name(self) -> str:
        return self.weights or self.name

    def build(self, **overrides: Any) -> nn.Module:
        """An untrained network for this spec (``overrides`` replace ``arch_args`` entries)."""
        return self.arch(**{**self.arch_args, **overrides})


class Registry:
    """A name -> :class:`ModelSpec` mapping that refuses duplicates."""

    def __init__(self) -> None:
        self._specs: dict[str, ModelSpec] = {}

    def register(self, spec: ModelSpec) -> ModelSpec:
        if spec.method not in METHODS:
            raise ValueError(f"unknown method {spec.method!r} for model {spec.name!r}")
        if spec.role not in ROLES:
            raise ValueError(f"unknown role {spec.role!r} for model {spec.name!r}")
        if spec.name in self._specs:
            raise ValueError(f"model {spec.name!r} is already registered")
        self._specs[spec.name] = spec
        return spec

    def get(self, name: str) -> ModelSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise unknown_model(name, self._specs) from None

    def names(self, method: str | None = None, role: str | None = "restorer") -> list[str]:
        """Registered names of ``method`` (any if None) and ``role`` (any if None)."""
        return [s.name for s in self if method in (None, s.method) and role in (None, s.role)]

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._specs.values())

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def copy(self) -> "Registry":
        clone = Registry()
        clone._specs = dict(self._specs)
        return clone


MODELS = Registry()
