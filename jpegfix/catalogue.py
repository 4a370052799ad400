"""What jpegfix knows about every registered model without importing torch.

``jpegfix models``, ``jpegfix download`` and the restore command's early checks (model name,
role, --quality, weights present) need a model's plain facts, not its network; importing the
architectures costs torch's 1-2 s. ``catalogue.json`` is the registry's plain fields, written
by ``python -m jpegfix.catalogue`` and kept equal to :data:`jpegfix.models.MODELS` by
``tests/test_catalogue.py``.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from jpegfix.errors import InputError, UnknownModelError

PATH = Path(__file__).with_name("catalogue.json")
METHODS = ("qgcn", "cqr", "contrastive", "one-to-many")
"""Method names: ``--model cqr`` stands for a method's CPU-size model of the image's kind."""


@dataclass(frozen=True)
class Entry:
    """A model's facts, the same fields and meanings as :class:`jpegfix.models.ModelSpec`."""

    name: str
    method: str
    role: str
    channels: int
    needs_tables: bool
    samples: bool
    weights: str
    hub_repo: str
    hub_revision: str
    description: str

    @property
    def weights_name(self) -> str:
        return self.weights or self.name


def entries_of(specs: Iterable) -> list[dict]:
    """The catalogue rows of registry ``specs`` (what ``catalogue.json`` holds)."""
    return [{f.name: getattr(spec, f.name) for f in fields(Entry)} for spec in specs]


@lru_cache(maxsize=1)
def entries() -> dict[str, Entry]:
    return {row["name"]: Entry(**row) for row in json.loads(PATH.read_text())}


def get(name: str) -> Entry:
    """The entry of model ``name``.

    Raises:
        UnknownModelError: not a registered model (the message names close ones).
    """
    known = entries()
    if name in known:
        return known[name]
    raise unknown_model(name, known)


def unknown_model(name: str, known: Iterable[str]) -> UnknownModelError:
    """The error for an unknown model name, naming the closest known ones."""
    known = list(known)
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(known)}"
    return UnknownModelError(f"unknown model {name!r}{hint}")


def model_for(name: str, channels: int) -> str:
    """``name``, or for a method name (``--model cqr``) that method's CPU-size model for the
    image's channel count (``cqr-color-s`` or ``cqr-gray-s``)."""
    if name in METHODS:
        return f"{name}-{'color' if channels == 3 else 'gray'}-s"
    return name


def models_for(name: str) -> list[str]:
    """Every model ``--model name`` can mean: both CPU-size models of a method, else itself."""
    return list(dict.fromkeys(model_for(name, channels) for channels in (3, 1)))


def check_restorer(spec) -> None:
    """Raises InputError for registered networks that do not restore images (CQR's ranker)."""
    if spec.role != "restorer":
        raise InputError(f"{spec.name} is a compression-quality {spec.role}, not a restoration model "
                         f"(`jpegfix info` reads images with it)")


def check_quality(model: str, quality: int | None) -> None:
    """Raises InputError when a quality is asked of forced ``model`` (a name or a method) and
    that model reads no quantization tables: the quality would silently change nothing."""
    if quality is not None and not get(model_for(model, 3)).needs_tables:
        raise InputError(f"{model} is a blind model: it reads no quantization tables, so a quality changes "
                         f"nothing; leave it out, or use a table-guided model (qgcn)")


def require_weights(model: str | None) -> None:
    """Make sure every model ``--model model`` can mean has its weights, downloading them when
    allowed, before a batch starts: a missing file then costs one line, not every file.

    Raises:
        UnknownModelError, MissingWeightsError.
    """
    from jpegfix.weights import locate

    for name in models_for(model) if model else []:
        locate(get(name))


def main() -> None:
    from jpegfix.models import MODELS

    PATH.write_text(json.dumps(entries_of(MODELS), indent=1) + "\n")
    print(f"wrote {len(entries())} models to {PATH}")


if __name__ == "__main__":
    main()
