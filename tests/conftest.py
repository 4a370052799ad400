"""Shared fixtures: seeded RNGs, small photos from scikit-image, JPEG files, tiny models."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from jpegfix.models import MODELS
from jpegfix.models.restorer import Restorer

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TINY_QGCN = dict(width=8, blocks=1, global_widths=(4, 4, 4, 4), global_hidden=16, global_dim=8)
# The qgcn recipe's settings for a training run of a few seconds (with the tiny_qgcn fixture).
TINY_QGCN_RUN = ["small_steps=6", "large_steps=2", "small_size=32", "small_batch=2", "large_size=64", "large_batch=1", "val_images=1"]
TINY_CONTRASTIVE = dict(encoder_width=4, width=8, blocks=(1, 1, 1), pool_sizes=(4, 8))
TINY_CQR = dict(width=8, branch=4, groups=3, window=4)
TINY_CQR_RANKER = dict(width=4, hidden=8, crop=32)
TINY_ONE_TO_MANY = dict(width=8, noise_channels=2, noise_width=4, image_units=1, noise_units=1, aggregate_units=1)
TINY = {"qgcn": TINY_QGCN, "contrastive": TINY_CONTRASTIVE, "cqr": TINY_CQR, "one-to-many": TINY_ONE_TO_MANY}
TINY_GLOBAL = dict(global_widths=(4, 4, 4, 4), global_hidden=16, global_dim=8)
TINY_QGCN_UNET = dict(widths=(4, 8, 8, 16), down_blocks=(0, 1, 1, 1), up_blocks=(0, 1, 1), **TINY_GLOBAL)
TINY_QGCN_DCT = dict(width=16, groups=1, blocks=1, refine_width=4, **TINY_GLOBAL)
TINY_BY_ARCH = {"QGCNUNet": TINY_QGCN_UNET, "BlindQGCNUNet": TINY_QGCN_UNET, "QGCNDCT": TINY_QGCN_DCT}
"""Trunks that share a method with other architectures but not their hyperparameters."""


def tiny_args(spec) -> dict:
    """Tiny hyperparameters for ``spec``'s architecture (by class, else by method)."""
    return TINY_BY_ARCH.get(spec.arch.__name__, TINY[spec.method])


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _compiled_cache(tmp_path_factory):
    """Compiled networks (jpegfix.runtime) go to a throw-away cache, never the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JPEGFIX_CACHE", str(tmp_path_factory.mktemp("jpegfix-cache")))
        yield


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """(512, 512, 3) uint8 colour photo shipped with scikit-image."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


@pytest.fixture(scope="session")
def grey_photo() -> np.ndarray:
    """(512, 512) uint8 grey photo shipped with scikit-image."""
    from skimage import data

    return np.ascontiguousarray(data.camera())


@pytest.fixture
def folders(tmp_path, photo):
    """(train, val) folders of PNG crops of ``photo``: three training images, two held out."""
    train_dir, val_dir = tmp_path / "train", tmp_path / "val"
    train_dir.mkdir(), val_dir.mkdir()
    for i in range(3):
        Image.fromarray(photo[i * 100 : i * 100 + 160, 50:250]).save(train_dir / f"{i}.png")
    for i in range(2):
        Image.fromarray(photo[300 + i * 96 : 396 + i * 96, 300:428]).save(val_dir / f"v{i}.png")
    return train_dir, val_dir


def save_jpeg(path: Path, pixels: np.ndarray, **options) -> Path:
    Image.fromarray(pixels).save(path, format="JPEG", **options)
    return path


def jpeg_bytes(pixels: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def tiny_restorer(name: str = "qgcn-color-s") -> Restorer:
    """A randomly initialised tiny network behind the real Restorer contract."""
    spec = MODELS.get(name)
    net = spec.build(**tiny_args(spec)).eval()
    return Restorer(spec=spec, net=net, device=torch.device("cpu"))


def requires(path: Path):
    return pytest.mark.skipif(not path.exists(), reason=f"needs {path} (shared data not present)")


@pytest.fixture
def tiny_qgcn(monkeypatch):
    """Swap the registered spec for a tiny one (the registry copy keeps MODELS untouched)."""
    import jpegfix.train.export as export_module
    import jpegfix.train.recipes.qgcn as recipe_module
    import jpegfix.weights  # noqa: F401

    registry = MODELS.copy()
    spec = registry.get("qgcn-color-s")
    tiny = type(spec)(**{**spec.__dict__, "arch_args": {**spec.arch_args, **TINY_QGCN}})
    registry._specs["qgcn-color-s"] = tiny
    monkeypatch.setattr(recipe_module, "MODELS", registry)
    monkeypatch.setattr(export_module, "MODELS", registry)
    return registry
