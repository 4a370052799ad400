"""Build examples/before_after.png: crops of example JPEGs beside their restorations.

    python examples/make_before_after.py [--model NAME]

Each row is one example file: the decoded JPEG, then the shipped default's output, cropped
and enlarged 3x with nearest-neighbour so blocks and ringing stay visible. The crops are
chosen by hand to show edges and flat areas; everything else comes from the library.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from jpegfix.batch import RestoreOptions
from jpegfix.engine import choose_model, load_restorer, restore_uint8
from jpegfix.jpeg import read_image

HERE = Path(__file__).resolve().parent
# file -> (left, top, size) of the crop in the stored image
CROPS = {
    "astronaut_q15.jpg": (150, 60, 128),
    "coffee_q10.jpg": (260, 80, 128),
    "camera_gray_q20.jpg": (220, 60, 128),
}
ZOOM = 3
LABEL_HEIGHT = 22


def crop(pixels: np.ndarray, box: tuple[int, int, int]) -> Image.Image:
    left, top, size = box
    part = pixels[top : top + size, left : left + size]
    image = Image.fromarray(part.squeeze()).convert("RGB")
    return image.resize((size * ZOOM, size * ZOOM), Image.NEAREST)


def labelled(image: Image.Image, text: str) -> Image.Image:
    canvas = Image.new("RGB", (image.width, image.height + LABEL_HEIGHT), "white")
    canvas.paste(image, (0, LABEL_HEIGHT))
    ImageDraw.Draw(canvas).text((6, 5), text, fill="black")
    return canvas


def row(path: Path, box: tuple[int, int, int], model: str | None) -> Image.Image:
    image = read_image(path)
    name, components, _ = choose_model(image, RestoreOptions(model=model))
    restored = restore_uint8(load_restorer(name, "cpu"), image.pixels, components)
    return side_by_side([labelled(crop(image.pixels, box), f"{path.name} (decoded JPEG)"),
                         labelled(crop(restored, box), f"jpegfix {name}")])


def side_by_side(panels: list[Image.Image]) -> Image.Image:
    """Join ``panels`` left to right on white with 8 px gaps."""
    out = Image.new("RGB", (sum(p.width for p in panels) + 8 * (len(panels) - 1), panels[0].height), "white")
    left = 0
    for panel in panels:
        out.paste(panel, (left, 0))
        left += panel.width + 8
    return out


def save_sheet(rows: list[Image.Image], path: Path) -> None:
    """Stack ``rows`` top to bottom on white with 8 px gaps and save the picture."""
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height + 8 for r in rows)), "white")
    top = 0
    for r in rows:
        sheet.paste(r, (0, top))
        top += r.height + 8
    sheet.save(path, optimize=True)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model to show (default: the restore default)")
    parser.add_argument("--out", type=Path, default=HERE / "before_after.png")
    args = parser.parse_args()
    save_sheet([row(HERE / name, box, args.model) for name, box in CROPS.items()], args.out)


if __name__ == "__main__":
    main()
