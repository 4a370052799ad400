"""Finding, verifying, loading and writing model weights (safetensors) and their cards (JSON).

Resolution order for a model's weights: the folder in ``$JPEGFIX_WEIGHTS`` if set, the
weights shipped inside the package, the Hugging Face cache, then ``hf_hub_download`` from
the spec's repo at its pinned revision (skipped when ``HF_HUB_OFFLINE`` is set). Every file
is checked against the sha256 its card records before it is loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from jpegfix.errors import MissingWeightsError
from jpegfix.models.registry import ModelSpec

SUFFIX = ".safetensors"
CARD_SUFFIX = ".json"
HUB_REPO_ENV = "JPEGFIX_HUB_REPO"
HUB_REVISION_ENV = "JPEGFIX_HUB_REVISION"


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


def read_card(spec: ModelSpec) -> dict[str, Any] | None:
    """The model card from the first search folder that has one, else None."""
    for folder in search_folders():
        path = folder / (spec.weights_name + CARD_SUFFIX)
        if path.is_file():
            return json.loads(path.read_text())
    return None


def locate(spec: ModelSpec, *, download: bool = True) -> Path:
    """Path of ``spec``'s weight file, downloading it if allowed and needed.

    Raises:
        MissingWeightsError: not shipped, not cached, and not downloadable (offline or failed).
    """
    filename = spec.weights_name + SUFFIX
    for folder in search_folders():
        if (folder / filename).is_file():
            return folder / filename
    repo = os.environ.get(HUB_REPO_ENV, spec.hub_repo)
    revision = os.environ.get(HUB_REVISION_ENV, spec.hub_revision)
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo, filename, revision=revision, local_files_only=True))
    except Exception:
        pass
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if download and not offline:
        try:
            return Path(hf_hub_download(repo, filename, revision=revision))
        except Exception as error:
            reason = f"download from {repo}@{revision} failed ({type(error).__name__})"
    else:
        reason = "offline mode (HF_HUB_OFFLINE)" if offline else "downloads disabled"
    raise MissingWeightsError(
        f"no weights for {spec.name}: not shipped, not in the Hugging Face cache, {reason}; "
        f"train them with `jpegfix train --method {spec.method} ... --export {spec.name}` "
        f"or put {filename} in $JPEGFIX_WEIGHTS"
    )


def verify(path: Path, card: dict[str, Any] | None) -> None:
    """Raises MissingWeightsError when ``path`` does not match the card's sha256."""
    expected = (card or {}).get("sha256")
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
    else:
        path = locate(spec, download=download)
        card = read_card(spec) or _card_beside(path)
    verify(path, card)
    arch_args = (card or {}).get("arch_args", spec.arch_args)
    net = spec.arch(**arch_args)
    net.load_state_dict(load_file(str(path)))
    return net.eval(), card or {}


def _card_beside(path: Path) -> dict[str, Any] | None:
    card = path.with_suffix(CARD_SUFFIX)
    return json.loads(card.read_text()) if card.is_file() else None


def save_model(net: nn.Module, folder: Path, name: str, card: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``folder/name.safetensors`` and ``folder/name.json`` atomically; the card gets the
    network's own hyperparameters and the file's sha256, so it cannot disagree with the weights."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    weights_path, card_path = folder / (name + SUFFIX), folder / (name + CARD_SUFFIX)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    temporary = weights_path.with_suffix(".tmp")
    save_file(state, str(temporary))
    os.replace(temporary, weights_path)
    card = {**card, "arch_args": net.hyperparameters, "sha256": sha256_of(weights_path),
            "parameters": sum(v.numel() for v in state.values())}
    temporary = card_path.with_suffix(".tmp")
    temporary.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(temporary, card_path)
    return weights_path, card_path
