"""Build examples/candidates.png: a JPEG, a pixel-loss restoration and two One-to-Many candidates.

    python examples/make_candidates.py [--model one-to-many-color-s] [--seeds 0,1]

Each row is one colour example file, cropped and enlarged like ``before_after.png``: the
decoded JPEG, the table-guided default (QGCN, trained with L1), then the sampling model's
candidates for two seeds (``jpegfix restore --model one-to-many --samples 2`` writes the
same pictures).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from jpegfix.engine import DEFAULT_TABLE_MODELS, load_restorer, restore_uint8
from jpegfix.jpeg import read_image
from jpegfix.models.restorer import Restorer
from make_before_after import CROPS, HERE, crop, labelled, save_sheet, side_by_side

COLOUR_EXAMPLES = [name for name in CROPS if "gray" not in name]


def row(path: Path, box: tuple[int, int, int], pixel: Restorer, sampler: Restorer, seeds: list[int]) -> Image.Image:
    image = read_image(path)
    panels = [labelled(crop(image.pixels, box), f"{path.name} (decoded JPEG)"),
              labelled(crop(restore_uint8(pixel, image.pixels, image.components), box), f"{pixel.spec.name} (L1)")]
    for seed in seeds:
        restored = restore_uint8(sampler, image.pixels, image.components, seed=seed)
        panels.append(labelled(crop(restored, box), f"{sampler.spec.name}, seed {seed}"))
    return side_by_side(panels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="one-to-many-color-s")
    parser.add_argument("--seeds", default="0,1", help="comma list of candidate seeds")
    parser.add_argument("--out", type=Path, default=HERE / "candidates.png")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    pixel, sampler = load_restorer(DEFAULT_TABLE_MODELS[3], "cpu"), load_restorer(args.model, "cpu")
    save_sheet([row(HERE / name, CROPS[name], pixel, sampler, seeds) for name in COLOUR_EXAMPLES], args.out)


if __name__ == "__main__":
    main()
