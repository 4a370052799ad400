"""Finding, verifying, loading and writing model weights (safetensors) and their cards (JSON).

Resolution order for a model's weights: the folder in ``$JPEGFIX_WEIGHTS`` if set, the
weights shipped inside the package, the Hugging Face cache, then ``hf_hub_download`` from
the spec's repo at its pinned revision (skipped when ``HF_HUB_OFFLINE`` is set, or at once
when the Hub cannot be reached: no minute of retries per file). The card comes with the
weights from the same place; a file from the Hub is loaded only when its card's sha256
matches. Finding files never imports torch (``jpegfix models`` lists them in a blink); a
"spec" here is a :class:`jpegfix.models.ModelSpec` or a :class:`jpegfix.catalogue.Entry`.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from jpegfix.errors import MissingWeightsError

if TYPE_CHECKING:
    from torch import nn

    from jpegfix.catalogue import Entry
    from jpegfix.models.registry import ModelSpec

SUFFIX = ".safetensors"
CARD_SUFFIX = ".json"
HUB_REPO_ENV = "JPEGFIX_HUB_REPO"
HUB_REVISION_ENV = "JPEGFIX_HUB_REVISION"
HUB_PROBE_SECONDS = 1.5
"""How long to wait for a connection to the Hub before calling it unreachable."""


def package_folder() -> Path:
    """The weights folder shipped with the package (``weights/`` in a source checkout).

    An installed wheel maps the top-level ``weights/`` to ``jpegfix._weights``; when
    ``jpegfix`` is imported from a source tree (tests run from the checkout) that package
    does not exist, and the folder beside ``jpegfix/`` is the same files.
    """
    try:
        return Path(str(resources.files("jpegfix._weights")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "weights"


def search_folders() -> list[Path]:
    folders = [Path(os.environ["JPEGFIX_WEIGHTS"])] if os.environ.get("JPEGFIX_WEIGHTS") else []
    return folders + [package_folder()]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_card(spec: ModelSpec | Entry) -> dict[str, Any] | None:
    """The model card from the first search folder that has one, else None."""
    for folder in search_folders():
        path = folder / (spec.weights_name + CARD_SUFFIX)
        if path.is_file():
            return json.loads(path.read_text())
    return None


def hub_of(spec: ModelSpec | Entry) -> tuple[str, str]:
    """(repo, revision) the spec's weights come from ($JPEGFIX_HUB_REPO / _REVISION override)."""
    return os.environ.get(HUB_REPO_ENV, spec.hub_repo), os.environ.get(HUB_REVISION_ENV, spec.hub_revision)


def find_local(spec: ModelSpec | Entry) -> Path | None:
    """``spec``'s weight file if it is here already (search folders, then the Hugging Face
    cache at the pinned revision); never touches the network."""
    filename = spec.weights_name + SUFFIX
    for folder in search_folders():
        if (folder / filename).is_file():
            return folder / filename
    return cached_hub_file(*hub_of(spec), filename)


def cached_hub_file(repo: str, revision: str, filename: str) -> Path | None:
    """``filename`` of ``repo`` at ``revision`` in the Hugging Face cache, or None.

    The cache layout huggingface_hub documents (guides/manage-cache): ``models--<org>--<name>/
    refs/<revision>`` holds the commit, the file is ``snapshots/<commit>/<filename>``. Read
    here rather than through ``try_to_load_from_cache``, whose import (httpx, ~0.3 s) would be
    most of ``jpegfix models``'s time.
    """
    from huggingface_hub.constants import HF_HUB_CACHE

    folder = Path(HF_HUB_CACHE) / ("models--" + repo.replace("/", "--"))
    try:
        commit = (folder / "refs" / revision).read_text().strip()
    except OSError:
        commit = revision  # a commit hash is its own ref
    path = folder / "snapshots" / commit / filename
    return path if path.is_file() else None


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def locate(spec: ModelSpec | Entry, *, download: bool = True) -> Path:
    """Path of ``spec``'s weight file, downloading it with its card if allowed and needed.

    Raises:
        MissingWeightsError: not shipped, not cached, and not downloadable (offline, the Hub
            unreachable, or the download failed); one line saying how to get them.
    """
    found = find_local(spec)
    if found is not None:
        return found
    repo, revision = hub_of(spec)
    if offline():
        reason = "HF_HUB_OFFLINE is set"
    elif not download:
        reason = "downloads disabled"
    else:
        reason = hub_unreachable()
        if reason is None:
            try:
                return download_files(spec)
            except MissingWeightsError:  # downloaded, but not what the card says
                raise
            except Exception as error:  # noqa: BLE001 - any failure becomes the one line below
                reason = f"download from {repo}@{revision} failed ({type(error).__name__})"
    raise MissingWeightsError(
        f"no weights for {spec.name}: not shipped or in the Hugging Face cache, and {reason}; "
        f"run `jpegfix download {spec.name}` online (HF_HUB_OFFLINE unset) or put "
        f"{spec.weights_name}{SUFFIX} and its card in $JPEGFIX_WEIGHTS"
    )


def hub_unreachable(timeout: float = HUB_PROBE_SECONDS) -> str | None:
    """Why the Hugging Face endpoint cannot be reached (no DNS, refused, timed out), or None.

    ``hf_hub_download`` retries a dead network for about 25 s; one quick connection says
    the same before the batch starts."""
    from huggingface_hub import constants

    url = urlsplit(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as error:
        return f"{url.hostname} cannot be reached ({error.strerror or error})"
    return None


def download_files(spec: ModelSpec | Entry) -> Path:
    """Download ``spec``'s card and weights from its Hub repo into the Hugging Face cache and
    check the weights against the card's sha256; returns the weights' path.

    Raises:
        MissingWeightsError: the card records no sha256 or the weights do not match it.
    """
    from huggingface_hub import hf_hub_download

    repo, revision = hub_of(spec)
    card_path = Path(hf_hub_download(repo, spec.weights_name + CARD_SUFFIX, revision=revision))
    path = Path(hf_hub_download(repo, spec.weights_name + SUFFIX, revision=revision))
    verify(path, json.loads(card_path.read_text()), required=True)
    return path


def verify(path: Path, card: dict[str, Any] | None, *, required: bool = False) -> None:
    """Raises MissingWeightsError when ``path`` does not match the card's sha256 (or, when
    ``required``, the card records none)."""
    expected = (card or {}).get("sha256")
    if required and not expected:
        raise MissingWeightsError(f"{path.name}: no model card with a sha256 beside it, so it cannot be checked")
    if expected and sha256_of(path) != expected:
        raise MissingWeightsError(f"{path.name}: sha256 does not match its model card (corrupt or replaced file)")


def load_model(spec: ModelSpec, *, download: bool = True, folder: Path | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Build ``spec``'s network from its card's arch_args and load verified weights (eval mode).

    ``folder`` loads ``folder/<name>.safetensors`` and its card instead of searching (an
    experiment's export, such as a variant trained with other architecture settings).

    Raises:
        MissingWeightsError: no weights (or none in ``folder``), or a sha256 mismatch.
    """
    from safetensors.torch import load_file

    if folder is not None:
        path = Path(folder) / (spec.weights_name + SUFFIX)
        if not path.is_file():
            raise MissingWeightsError(f"no {path.name} in {folder}")
        card = _card_beside(path)
        verify(path, card)
    else:
        path = locate(spec, download=download)
        card = card_of(spec, path)
        # Shipped and $JPEGFIX_WEIGHTS files are checked when their card has a sha256; a
        # file from the Hub cache only with one (a flipped byte must not load).
        verify(path, card, required=not any(path.parent == folder for folder in search_folders()))
    arch_args = (card or {}).get("arch_args", spec.arch_args)
    net = spec.arch(**arch_args)
    net.load_state_dict(load_file(str(path)))
    return net.eval(), card or {}


def card_of(spec: ModelSpec | Entry, path: Path | None) -> dict[str, Any] | None:
    """The card of ``spec``'s weights at ``path``: a search folder's, else the one beside the
    file (a Hub download's, in the same cache snapshot)."""
    return read_card(spec) or (_card_beside(path) if path is not None else None)


def _card_beside(path: Path) -> dict[str, Any] | None:
    card = path.with_suffix(CARD_SUFFIX)
    return json.loads(card.read_text()) if card.is_file() else None


def save_model(net: nn.Module, folder: Path, name: str, card: dict[str, Any],
               dtype: str = "float32") -> tuple[Path, Path]:
    """Write ``folder/name.safetensors`` and ``folder/name.json`` atomically; the card gets the
    network's own hyperparameters and the file's sha256, so it cannot disagree with the weights.
    Floating-point tensors are stored as ``dtype`` (see :attr:`ModelSpec.weights_dtype`)."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    weights_path, card_path = folder / (name + SUFFIX), folder / (name + CARD_SUFFIX)
    stored = getattr(torch, dtype)
    state = {k: (v.to(stored) if v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in net.state_dict().items()}
    temporary = weights_path.with_suffix(".tmp")
    save_file(state, str(temporary))
    os.replace(temporary, weights_path)
    card = {**card, "arch_args": net.hyperparameters, "weights_dtype": dtype, "sha256": sha256_of(weights_path),
            "parameters": sum(v.numel() for v in state.values())}
    temporary = card_path.with_suffix(".tmp")
    temporary.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(temporary, card_path)
    return weights_path, card_path
