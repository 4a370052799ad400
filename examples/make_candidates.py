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

from jpegfix.engine import DEFAULT_TABLE_MODELS, load_restorer
from jpegfix.jpeg import read_image
from make_before_after import CROPS, HERE, crop, labelled, save_sheet

COLOUR_EXAMPLES = [name for name in CROPS if "gray" not in name]


def row(path: Path, box: tuple[int, int, int], model: str, seeds: list[int]) -> Image.Image:
    image = read_image(path)
    pixel = DEFAULT_TABLE_MODELS[3]
    panels = [labelled(crop(image.pixels, box), f"{path.name} (decoded JPEG)"),
              labelled(crop(load_restorer(pixel, "cpu").restore(image.pixels, image.components), box), f"{pixel} (L1)")]
    sampler = load_restorer(model, "cpu")
    for seed in seeds:
        panels.append(labelled(crop(sampler.restore(image.pixels, image.components, seed=seed), box), f"{model}, seed {seed}"))
    out = Image.new("RGB", (sum(p.width + 8 for p in panels), panels[0].height), "white")
    left = 0
    for panel in panels:
        out.paste(panel, (left, 0))
        left += panel.width + 8
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="one-to-many-color-s")
    parser.add_argument("--seeds", default="0,1", help="comma list of candidate seeds")
    parser.add_argument("--out", type=Path, default=HERE / "candidates.png")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    save_sheet([row(HERE / name, CROPS[name], args.model, seeds) for name in COLOUR_EXAMPLES], args.out)


if __name__ == "__main__":
    main()
