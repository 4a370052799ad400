"""One recipe per method; ``RECIPES[method]`` builds it from its config and data folders."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from jpegfix.train.recipe import Recipe, apply_overrides
from jpegfix.train.recipes import contrastive, cqr, one_to_many, qgcn

# method -> (config class, recipe class)
RECIPES: dict[str, tuple[type, Callable[..., Recipe]]] = {
    "qgcn": (qgcn.QGCNConfig, qgcn.QGCNRecipe),
    "contrastive": (contrastive.ContrastiveConfig, contrastive.ContrastiveRecipe),
    "cqr": (cqr.CQRConfig, cqr.CQRRecipe),
    "one-to-many": (one_to_many.OneToManyConfig, one_to_many.OneToManyRecipe),
}


def make_recipe(method: str, overrides: list[str], data: list[Path], val: list[Path], cache: Path) -> Recipe:
    """Build ``method``'s recipe with ``field=value`` overrides applied to its config.

    Raises:
        ValueError: an unknown method or setting.
    """
    if method not in RECIPES:
        raise ValueError(f"no training recipe for method {method!r}; available: {', '.join(RECIPES)}")
    config_class, recipe_class = RECIPES[method]
    return recipe_class(apply_overrides(config_class(), overrides), data, val, cache)
