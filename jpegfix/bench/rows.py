"""The rows of a benchmark: plain ``jpeg``, the peers and jpegfix models, and how each is loaded.

A row is planned as a picklable :class:`RowRef` (so that the speed benchmark can load it
again in a child process) and loaded into a restorer with the call contract of
:mod:`jpegfix.engine`: ``spec`` (name, channels, needs_tables), ``card``, ``device`` and
``net``, restored through :func:`restore_function` (``restore(pixels, components) -> pixels``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

from jpegfix.errors import JpegfixError, MissingWeightsError
from jpegfix.bench.peers import PEERS, available_peers, load_peer, peer_files

JPEG_ROW = "jpeg"
DEFAULT_ROW = "default"
"""Scores what ``jpegfix restore`` does with no ``--model``: the engine's choice per image."""


@dataclass(frozen=True)
class RowRef:
    """A planned row: what to load, not the loaded network."""

    name: str
    kind: str
    """``jpeg`` (decoded JPEG, no network), ``peer``, ``jpegfix`` or ``default`` (the
    engine's own choice per image, :class:`EngineDefault`)."""
    peers_dir: str | None = None


def plan_rows(models: list[str], peers_dir: str | Path | None, *, auto_peers: bool = True) -> list[RowRef]:
    """Rows for a run: ``jpeg`` first, then the peers, then jpegfix models in the given order.

    Peers are added when their weights are under ``peers_dir`` (``auto_peers``) or when named
    in ``models``; a named peer without weights is an error.

    Raises:
        UnknownModelError: a name is neither a peer nor a registered jpegfix model.
        MissingWeightsError: a named peer's weight files are missing.
    """
    from jpegfix.models import MODELS

    folder = str(Path(peers_dir)) if peers_dir is not None else None
    named_peers = [m for m in models if m in PEERS]
    for name in named_peers:
        if name not in available_peers(peers_dir):
            where = ", ".join(str(p) for p in peer_files(name, peers_dir)) if peers_dir else "no peers folder"
            raise MissingWeightsError(f"{name} weights not found ({where}); pass --peers-dir")
    peers = [p for p in PEERS if p in named_peers or (auto_peers and p in available_peers(peers_dir))]
    rows = [RowRef(JPEG_ROW, "jpeg")] + [RowRef(p, "peer", folder) for p in peers]
    seen = {r.name for r in rows}
    for name in _expand_methods(models):
        if name in seen:
            continue
        if name == DEFAULT_ROW:
            rows.append(RowRef(name, "default"))
            seen.add(name)
            continue
        MODELS.get(name)  # raises UnknownModelError with close names
        rows.append(RowRef(name, "jpegfix"))
        seen.add(name)
    return rows


def _expand_methods(models: list[str]) -> list[str]:
    """A method name (``--model contrastive``) stands for its CPU-size colour and grey models;
    each data set then runs the one that matches its channels."""
    from jpegfix.models import METHODS

    expanded = []
    for name in models:
        expanded += [f"{name}-color-s", f"{name}-gray-s"] if name in METHODS else [name]
    return expanded


def load_row(ref: RowRef, device: str = "auto", backend: str = "auto", precision: str = "auto") -> Any:
    """The restorer for ``ref`` (None for the ``jpeg`` row).

    Raises:
        JpegfixError: weights missing, or the restore engine unavailable.
    """
    if ref.kind == "jpeg":
        return None
    if ref.kind == "default":
        return EngineDefault(device, backend, precision)
    if ref.kind == "peer":
        from jpegfix.devices import pick_device

        return load_peer(ref.name, ref.peers_dir, pick_device(device))
    try:
        from jpegfix.engine import load_restorer
    except ImportError as error:
        raise JpegfixError(f"cannot load {ref.name}: the restore engine is unavailable ({error})") from None
    return load_restorer(ref.name, device=device, backend=backend, precision=precision)


def restore_function(restorer: Any) -> Callable[..., Any]:
    """``restore(pixels, components, **options) -> uint8 pixels`` of a loaded row: the engine's
    :func:`jpegfix.engine.restore_uint8` for jpegfix's models, a peer's own ``restore``."""
    from jpegfix.models.restorer import Restorer

    if isinstance(restorer, Restorer):
        from jpegfix.engine import restore_uint8

        return partial(restore_uint8, restorer)
    return restorer.restore


@dataclass(frozen=True)
class DefaultSpec:
    """The ``spec`` of the default row: any channel count; tables are the engine's business."""

    name: str = DEFAULT_ROW
    channels: int = 0
    needs_tables: bool = False


class EngineDefault:
    """The ``default`` row: per image, the model and tables ``jpegfix restore`` would choose
    with no ``--model`` (:func:`jpegfix.engine.choose_model`: the file's tables, an earlier
    compression found under them, tables recovered from pixels, or the blind default), run
    through the same :func:`jpegfix.engine.restore_uint8`. Its harm column is the tool's."""

    spec = DefaultSpec()
    card = None
    net = None

    def __init__(self, device: str = "auto", backend: str = "auto", precision: str = "auto") -> None:
        self.device, self.backend, self.precision = device, backend, precision
        self._restorers: dict[str, Any] = {}

    def restore(self, pixels: Any, components: Any = None, project: bool = True, ensemble: bool = False) -> Any:
        from jpegfix.batch import RestoreOptions
        from jpegfix.engine import choose_model, load_restorer, restore_uint8

        name, tables, _ = choose_model(as_file(pixels, components), RestoreOptions(project=project, ensemble=ensemble))
        if name is None:  # left as decoded
            return pixels
        if name not in self._restorers:
            self._restorers[name] = load_restorer(name, self.device, backend=self.backend, precision=self.precision)
        return restore_uint8(self._restorers[name], pixels, tables, project=project, ensemble=ensemble)


def as_file(pixels: Any, components: Any = None) -> Any:
    """The :class:`jpegfix.jpeg.DecodedImage` restore would read for a case: a JPEG file with
    ``components`` as its tables, or a PNG of the pixels when there are none."""
    from jpegfix.jpeg import DecodedImage

    return DecodedImage(pixels, "JPEG" if components is not None else "PNG", components)
