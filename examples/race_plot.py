"""Plot an architecture race: validation PSNR gain against training CPU seconds.

    python examples/race_plot.py RUN_DIR [RUN_DIR ...] [-o docs/race.png] [--markdown table.md]

Each RUN_DIR is a ``jpegfix train`` run folder; its ``log.jsonl`` holds one line per
validation with ``cpu_seconds`` (CPU time of the training steps so far, see
``jpegfix.train.loop``) and ``psnr_gain`` (mean over the validation qualities). One line per
run, named by the run folder. ``--markdown`` also writes the table of final numbers (gain per
validated quality, steps, CPU seconds per step) that docs/race.md quotes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image, ImageDraw

from jpegfix.bench.report import _PALETTE, _PANEL, _axes, _font, _legend


def read_curve(run: Path) -> list[dict]:
    """The validation points of ``run`` (lines of log.jsonl), in order."""
    lines = (run / "log.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def plot(curves: dict[str, list[dict]], path: Path) -> None:
    image = Image.new("RGB", _PANEL, "white")
    draw = ImageDraw.Draw(image)
    xs = [p["cpu_seconds"] for c in curves.values() for p in c] + [0.0]
    ys = [p["psnr_gain"] for c in curves.values() for p in c] + [0.0]
    frame = _axes(draw, (0, 0), "architecture race: validation PSNR gain (q10-40) vs training CPU",
                  "training CPU seconds (1 thread)", "gain (dB)", (0.0, max(xs)), (min(ys), max(ys)), log_x=False)
    entries = []
    for index, (name, curve) in enumerate(curves.items()):
        colour = _PALETTE[index % len(_PALETTE)]
        pixels = [frame.to_px(p["cpu_seconds"], p["psnr_gain"]) for p in curve]
        if len(pixels) > 1:
            draw.line(pixels, fill=colour, width=2)
        for x, y in pixels:
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
        entries.append((name, colour, False))
    _legend(draw, frame, entries)
    draw.text((frame.left + 8, frame.bottom - 18), "one point per validation",
              fill=(90, 90, 90), font=_font(11))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def table(curves: dict[str, list[dict]]) -> str:
    qualities = sorted({k for c in curves.values() for p in c for k in p if k.startswith("gain_q")},
                       key=lambda k: int(k[6:]))
    header = ["run", "steps", "CPU s", "CPU s/step"] + [f"q{k[6:]}" for k in qualities] + ["mean"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, curve in curves.items():
        last = curve[-1]
        cells = [name, str(last["step"]), f"{last['cpu_seconds']:.0f}", f"{last['cpu_seconds'] / last['step']:.3f}"]
        cells += [f"{last[k]:+.3f}" if k in last else "" for k in qualities] + [f"{last['psnr_gain']:+.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("-o", "--out", type=Path, default=Path("docs/race.png"))
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    curves = {run.name: read_curve(run) for run in args.runs}
    empty = [name for name, curve in curves.items() if not curve]
    if empty:
        parser.error(f"no validation points yet in {', '.join(empty)}")
    plot(curves, args.out)
    print(f"wrote {args.out}")
    if args.markdown:
        args.markdown.write_text(table(curves))
        print(f"wrote {args.markdown}")
    print(table(curves), end="")


if __name__ == "__main__":
    main()
