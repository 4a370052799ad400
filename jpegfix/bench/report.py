"""Summaries and outputs of a benchmark run: table cells, JSON, CSV, Markdown and a PNG plot.

Means are over images (the mean of per-image scores, as papers report). The gain of a
measured row is the mean over images of (row PSNR - ``jpeg`` PSNR), paired image by image;
a published row's gain is over the plain-JPEG row of the same paper table when it has one
(so that a protocol offset between that paper and us cancels), else over our ``jpeg`` row.

Harm, for every measured row with a gain: how many of the paired images the model made
worse (gain < 0), how many by more than :data:`HARM_TOLERANCE_DB` (the project's
"never harmful" criterion), and the worst single-image gain. Where the input is the clean
image itself (``--qf none``: the ``jpeg`` row is lossless, so there is no gain), the harm is
read from the PSNR of the output against its input: mean and lowest.

The terminal table is drawn by the CLI from :func:`table_cells`; nothing here prints.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jpegfix.bench.cases import IJG_TABLES, Degradation, ijg_column
from jpegfix.bench.protocol import BenchResult, BenchSettings, DatasetRun, Failure, ImageScore, Refusal
from jpegfix.bench.published import PublishedRow, Source, published_jpeg, published_rows
from jpegfix.bench.speed import SpeedResult

REPORT_VERSION = 2
HARM_TOLERANCE_DB = 0.05
"""An image more than this many dB below its input counts as harmed beyond tolerance."""


@dataclass
class Mean:
    psnr: float | None
    ssim: float | None
    psnr_b: float | None
    n: int = 0
    """Images averaged (0 for published figures)."""
    gain: float | None = None
    """PSNR gain in dB over the reference JPEG row (see the module docstring)."""
    worst: float | None = None
    """Smallest per-image PSNR gain over our JPEG row (measured rows only): a model that
    helps on average but harms some images shows it here."""
    paired: int = 0
    """Images with a gain (scored by both this row and ``jpeg``)."""
    worse: int | None = None
    """Paired images with gain < 0."""
    beyond_tolerance: int | None = None
    """Paired images with gain < -HARM_TOLERANCE_DB."""
    psnr_input: float | None = None
    """Mean PSNR (dB) of the outputs against their inputs (None for ``jpeg``)."""
    psnr_input_min: float | None = None
    """Lowest per-image PSNR of an output against its input."""

    @property
    def worse_share(self) -> float | None:
        return None if self.worse is None or not self.paired else self.worse / self.paired


@dataclass
class RowSummary:
    model: str
    kind: str
    """``measured`` or ``published``."""
    means: dict[int, Mean]
    source: Source | None = None
    gain_over: str = "jpeg"
    """``jpeg`` (our row) or ``paper jpeg`` (the source table's own JPEG row)."""
    note: str = ""


@dataclass
class DatasetSummary:
    name: str
    channel: str
    colour: bool
    """A colour set (JPEGs written with the run's chroma subsampling)."""
    images: int
    expected: int
    full_set: bool
    columns: list[str]
    """Column labels in order (``QF50``, ``clean``, ``<table> (~QF93)``)."""
    column_quality: dict[str, int | None]
    """Each column's IJG quality (nearest for a named table; None: clean)."""
    rows: list[RowSummary]
    notes: list[str] = field(default_factory=list)


def summarize(result: BenchResult) -> list[DatasetSummary]:
    """Per data set: measured rows (``jpeg`` first) then the comparable published rows."""
    return [_summarize_run(run, result) for run in result.datasets]


def _summarize_run(run: DatasetRun, result: BenchResult) -> DatasetSummary:
    columns = result.column_list()
    keys = [key for key, _ in columns]
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for s in run.scores:
        by_key.setdefault((s.model, s.column), {})[s.image] = s
    rows = []
    for model in result.rows:
        if model in run.skipped:
            continue
        means = {key: _measured_mean(list(by_key.get((model, key), {}).values()), by_key.get(("jpeg", key), {}),
                                     model == "jpeg") for key in keys}
        note = "luma only" if model in run.luma_only else ""
        rows.append(RowSummary(model, "measured", means, note=note))
    summary = DatasetSummary(run.name, run.channel, run.channels == 3, run.images, run.expected, run.full_set,
                             keys, dict(columns), rows)
    summary.notes += _refusal_notes(run)
    ours = {q: rows[0].means[key] for key, q in columns if rows and rows[0].model == "jpeg" and q is not None}
    plain = result.settings.degradation.none and result.settings.tables == IJG_TABLES
    qualities = [q for _, q in columns if q is not None] if plain else []
    published = published_rows(run.name, run.channel, result.settings.subsampling, qualities, full_set=run.full_set)
    checked: set[str] = set()
    for row in published:
        base = published_jpeg(row)
        means = {}
        for q, s in row.scores.items():
            reference = base.scores.get(q).psnr if base and q in base.scores else (ours[q].psnr if q in ours else None)
            gain = s.psnr - reference if s.psnr is not None and reference is not None and row.method != "jpeg" else None
            means[ijg_column(q).key] = Mean(s.psnr, s.ssim, s.psnr_b, 0, gain)
        summary.rows.append(RowSummary(row.method, "published", means, row.source,
                                       "paper jpeg" if base else "jpeg"))
        if base and row.source.key not in checked and ours:
            checked.add(row.source.key)
            summary.notes.append(_offset_note(row.source, base, ours))
    for model, reason in run.skipped.items():
        summary.notes.append(f"{model} not run: {reason}")
    if not run.full_set:
        summary.notes.append(f"{run.images} of {run.expected or run.images} images: published figures not shown")
    return summary


def _measured_mean(scores: list[ImageScore], jpeg: dict[str, ImageScore], is_jpeg: bool) -> Mean:
    """Means of one measured row in one column, with its gain and harm over the ``jpeg`` row.

    No gain where the ``jpeg`` row is lossless (the clean input): its PSNR is infinite.
    """
    mean = Mean(_mean([s.psnr for s in scores]), _mean([s.ssim for s in scores]),
                _mean([s.psnr_b for s in scores]), len(scores))
    if is_jpeg:
        return mean
    gains = [s.psnr - jpeg[s.image].psnr for s in scores if s.image in jpeg and math.isfinite(jpeg[s.image].psnr)]
    if gains:
        mean.gain, mean.worst, mean.paired = _mean(gains), min(gains), len(gains)
        mean.worse = sum(g < 0 for g in gains)
        mean.beyond_tolerance = sum(g < -HARM_TOLERANCE_DB for g in gains)
    changes = [s.psnr_input for s in scores if s.psnr_input is not None]
    if changes:
        mean.psnr_input, mean.psnr_input_min = _mean(changes), min(changes)
    return mean


def _refusal_notes(run: DatasetRun) -> list[str]:
    by_model: dict[str, list[Any]] = {}
    for refusal in run.refusals:
        by_model.setdefault(refusal.model, []).append(refusal)
    return [f"{model} refused {len(items)} image(s) ({', '.join(sorted({r.column for r in items}))}): {items[0].reason}"
            for model, items in by_model.items()]


def _offset_note(source: Source, base: PublishedRow, ours: dict[int, Mean]) -> str:
    parts = []
    for q, s in sorted(base.scores.items()):
        if q in ours and ours[q].psnr is not None:
            o = ours[q]
            parts.append(f"q{q} {_signed(o.psnr - s.psnr)} dB PSNR, {_signed(o.ssim - s.ssim, 4)} SSIM, "
                         f"{_signed(o.psnr_b - s.psnr_b)} dB PSNR-B")
    return f"our jpeg row minus {source.key}'s: " + "; ".join(parts)


def table_cells(summary: DatasetSummary, *, multiline: bool = True) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of strings: one row per model, one cell per quality holding PSNR (gain),
    SSIM and PSNR-B. Published rows are labelled ``name (paper: source)``."""
    header = ["model"] + list(summary.columns)
    body = []
    for row in summary.rows:
        label = row.model
        if row.kind == "published":
            label = f"{row.model} (paper: {row.source.key})" + ("" if row.gain_over == "paper jpeg" else " †")
        elif row.note:
            label = f"{row.model} ({row.note})"
        cells = [label]
        for key in summary.columns:
            cells.append(_cell(row.means.get(key), row.kind == "published", summary.images, multiline))
        body.append(cells)
    return header, body


def _cell(mean: Mean | None, published: bool, images: int, multiline: bool) -> str:
    if mean is None or mean.psnr is None:
        return "-"
    partial = "*" if not published and mean.n < images else ""
    psnr_text = f"{_fmt(mean.psnr)}{partial}" + (f" ({_signed(mean.gain)})" if mean.gain is not None else "")
    ssim_text = "-" if mean.ssim is None else f"{mean.ssim:.{_ssim_digits(mean.ssim) if published else 4}f}"
    psnrb_text = _fmt(mean.psnr_b)
    separator = "\n" if multiline else " / "
    harm = harm_text(mean, "\n") if multiline else ""
    return separator.join([psnr_text, ssim_text, psnrb_text] + ([harm] if harm else []))


def harm_text(mean: Mean | None, separator: str = ", ") -> str:
    """``worse 3/12, 1 < -0.05, min -0.31``: images made worse, how many of them beyond
    tolerance, worst gain (dB); for a clean input ``vs input 47.10, min 41.20`` (PSNR of the
    outputs against their inputs, mean and lowest). ``separator`` goes before ``min``."""
    if mean is None:
        return ""
    if mean.worse is not None:
        return (f"worse {mean.worse}/{mean.paired}, {mean.beyond_tolerance} < -{HARM_TOLERANCE_DB:g}"
                f"{separator}min {_signed(mean.worst)}")
    if mean.psnr_input is not None:
        return f"vs input {_fmt(mean.psnr_input)}{separator}min {_fmt(mean.psnr_input_min)}"
    return ""


def harm_cells(summary: DatasetSummary) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the harm table: one row per measured model, :func:`harm_text` per column."""
    header = ["model"] + list(summary.columns)
    body = [[row.model] + [harm_text(row.means.get(key)) or "-" for key in summary.columns]
            for row in summary.rows if row.kind == "measured" and row.model != "jpeg"]
    return header, body


def to_json(result: BenchResult) -> dict[str, Any]:
    """Everything about a run: protocol, per-set summaries, per-image scores, failures, speed."""
    datasets = []
    for summary, run in zip(summarize(result), result.datasets):
        datasets.append({
            "name": summary.name, "channel": summary.channel, "channels": run.channels, "images": summary.images,
            "expected": summary.expected, "registered": run.registered, "full_set": summary.full_set,
            "skipped": run.skipped, "luma_only": run.luma_only, "notes": summary.notes,
            "rows": [{
                "model": row.model, "kind": row.kind,
                "source": (row.source.citation if row.source else None),
                "source_key": (row.source.key if row.source else None),
                "gain_over": row.gain_over,
                "scores": {key: _mean_json(m) for key, m in row.means.items()},
            } for row in summary.rows],
            "failures": [vars(f) for f in run.failures],
            "refusals": [vars(r) for r in run.refusals],
        })
    settings = result.settings
    degradation = settings.degradation
    return _json_safe({
        "report_version": REPORT_VERSION,
        "protocol": result.protocol,
        "settings": {"qualities": list(settings.qualities), "subsampling": settings.subsampling,
                     "channel": settings.channel,
                     "save_images": str(settings.save_images) if settings.save_images else None,
                     "tables": settings.tables,
                     "degradation": {"requality": degradation.requality, "resize": degradation.resize,
                                     "shift": list(degradation.shift) if degradation.shift else None}},
        "harm_tolerance_db": HARM_TOLERANCE_DB,
        "columns": [{"key": key, "quality": q} for key, q in result.column_list()],
        "rows": result.rows,
        "datasets": datasets,
        "images": [vars(s) for run in result.datasets for s in run.scores],
        "speed": [s.to_dict() for s in result.speed],
    })


def result_from_json(data: dict[str, Any]) -> BenchResult:
    """A :class:`BenchResult` back from :func:`to_json` output, to render tables, Markdown or a
    plot again without re-running the benchmark."""
    from jpegfix.bench.datasets import DATASETS

    settings = data["settings"]
    degradation = settings.get("degradation") or {}
    shift = degradation.get("shift")
    result = BenchResult(
        BenchSettings(tuple(settings["qualities"]), settings["subsampling"], settings.get("channel"),
                      Path(settings["save_images"]) if settings.get("save_images") else None,
                      settings.get("tables", IJG_TABLES),
                      Degradation(degradation.get("requality"), degradation.get("resize"),
                                  tuple(shift) if shift else None)),
        list(data["rows"]), [], data.get("protocol", {}),
        [SpeedResult(**entry) for entry in data.get("speed", [])],
        [(c["key"], c["quality"]) for c in data.get("columns", [])])
    images: dict[str, list[ImageScore]] = {}
    for entry in data.get("images", []):
        values = {k: (float(v) if k in ("psnr", "ssim", "psnr_b", "psnr_input") and v is not None else v)
                  for k, v in entry.items()}
        images.setdefault(entry["dataset"], []).append(ImageScore(**values))
    for d in data["datasets"]:
        spec = DATASETS.get(d["name"])
        channels = d.get("channels") or (spec.channels if spec else (3 if d["channel"] == "rgb" else 1))
        run = DatasetRun(d["name"], d["channel"], channels, d["images"], d["expected"],
                         d.get("registered", spec is not None), images.get(d["name"], []),
                         [Failure(**f) for f in d.get("failures", [])], dict(d.get("skipped", {})),
                         list(d.get("luma_only", [])), [Refusal(**r) for r in d.get("refusals", [])])
        result.datasets.append(run)
    return result


CSV_FIELDS = ["dataset", "image", "model", "quality", "column", "channel", "subsampling", "psnr", "ssim", "psnr_b",
              "psnr_input", "seconds", "error"]


def write_csv(result: BenchResult, path: str | Path) -> None:
    """One row per image, model and quality; failed ones carry the error and no scores."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for run in result.datasets:
            common = {"channel": run.channel, "subsampling": result.settings.subsampling if run.channels == 3 else ""}
            for s in run.scores:
                writer.writerow({"dataset": s.dataset, "image": s.image, "model": s.model,
                                 "quality": "" if s.quality is None else s.quality, "column": s.column,
                                 "psnr": _csv_number(s.psnr), "ssim": _csv_number(s.ssim, 6),
                                 "psnr_b": _csv_number(s.psnr_b),
                                 "psnr_input": "" if s.psnr_input is None else _csv_number(s.psnr_input),
                                 "seconds": f"{s.seconds:.4f}", "error": "", **common})
            for failure in run.failures:
                writer.writerow({"dataset": failure.dataset, "image": failure.image, "model": failure.model or "*",
                                 "quality": failure.quality if failure.quality is not None else "*",
                                 "column": failure.column or "*", "psnr": "", "ssim": "", "psnr_b": "",
                                 "psnr_input": "", "seconds": "", "error": failure.error, **common})


def markdown(result: BenchResult) -> str:
    """Markdown tables for a README: one per data set, then speed when measured."""
    protocol = result.protocol
    lines = ["<!-- generated by `jpegfix bench`; edit the command, not the table -->", ""]
    sources: dict[str, Source] = {}
    for summary in summarize(result):
        what = "RGB" if summary.channel == "rgb" else "Y (BT.601 luma)"
        sub = f", JPEG {result.settings.subsampling}" if summary.colour else ", grey JPEG"
        lines += [f"### {summary.name}: {what}, {summary.images} images{sub}{case_title(result.settings)}", "",
                  "PSNR dB (gain over JPEG) / SSIM / PSNR-B dB", ""]
        header, body = table_cells(summary, multiline=False)
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for cells, row in zip(body, summary.rows):
            if row.kind == "published":
                sources[row.source.key] = row.source
                cells = [f"*{c}*" for c in cells]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        header, body = harm_cells(summary)
        if body:
            lines += [f"Harm: images made worse than their input (gain < 0) / of those, more than "
                      f"{HARM_TOLERANCE_DB:g} dB worse / worst single-image gain (dB)", "",
                      "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(cells) + " |" for cells in body]
            lines.append("")
        lines += [f"- {note}" for note in summary.notes]
        if summary.notes:
            lines.append("")
    if sources:
        lines.append("Published rows (italic), shown only where the protocol matches:")
        lines += [f"- `{s.key}`: {s.citation}" + (f" ({s.note})" if s.note else "") for s in sources.values()]
        lines.append("- † gain over our JPEG row (the source has no JPEG row); otherwise over the source's own JPEG row.")
        lines.append("")
    if result.speed:
        lines += speed_markdown(result.speed)
    lines.append(f"Protocol: {protocol.get('encoder', '')}; metrics on uint8, no border crop; "
                 f"PSNR-B: {protocol.get('metrics', {}).get('psnr_b', '')}; torch {protocol.get('torch', '')}.")
    return "\n".join(lines) + "\n"


def case_title(settings: BenchSettings) -> str:
    """``, tables canon, resized x0.75``: what the columns were compressed with and how the
    input was degraded, for table titles (empty for the plain IJG protocol)."""
    parts = [] if settings.tables == IJG_TABLES else [f"tables {settings.tables}"]
    if not settings.degradation.none:
        parts.append(settings.degradation.describe())
    return "".join(f", {part}" for part in parts)


def speed_header() -> list[str]:
    return ["model", "runtime", "size", "median s", "MP/s", "MMAC/px", "params", "peak MB", "+MB", "8-bit diff"]


def _count(value: int) -> str:
    return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}k"


def _runtime(r: SpeedResult) -> str:
    """Device, backend and precision in one cell, e.g. ``cpu openvino fp32``."""
    return f"{r.device} {r.backend} {r.precision}"


def speed_cells(results: list[SpeedResult]) -> list[list[str]]:
    rows = []
    for r in results:
        if r.error:
            rows.append([r.model, _runtime(r), f"{r.width}x{r.height}", "error: " + r.error, "", "", "", "", "", ""])
            continue
        rows.append([
            r.model + (" (untrained)" if r.untrained else ""), _runtime(r), f"{r.width}x{r.height}", f"{r.median_s:.3f}", f"{r.megapixels_per_s:.3f}",
            f"{r.macs_per_pixel / 1e6:.3f}", _count(r.params),
            "-" if r.peak_memory_mb is None else f"{r.peak_memory_mb:.0f}",
            "-" if r.memory_increase_mb is None else f"{r.memory_increase_mb:.0f}",
            "-" if r.max_diff_8bit is None else str(r.max_diff_8bit),
        ])
    return rows


def speed_markdown(results: list[SpeedResult]) -> list[str]:
    header = speed_header()
    kinds = sorted({r.memory_kind for r in results if r.memory_kind})
    threads = sorted({r.threads for r in results if r.threads})
    lines = ["### Speed", "",
             f"Median of the timed calls after warm-up; memory: {', '.join(kinds) or '-'}; "
             f"+MB: increase over the RSS before the first call; 8-bit diff: largest difference of the "
             f"8-bit output to torch eager float32 on the same input; (untrained): timed with random "
             f"weights, none installed; torch threads: {', '.join(map(str, threads)) or '-'}.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in speed_cells(results)]
    return lines + [""]


# ----------------------------------------------------------------------------- plot

_PALETTE = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14),
            (23, 190, 207), (140, 86, 75), (227, 119, 194), (188, 189, 34), (127, 127, 127)]
_PANEL = (760, 430)
_MARGIN = dict(left=70, right=190, top=40, bottom=55)
"""The right margin holds the legend, so that it never hides a line."""


def write_plot(result: BenchResult, path: str | Path) -> None:
    """PNG: per data set, PSNR gain over JPEG against quality (one line per model; published
    rows dashed), and, when speed was measured, mean gain against megapixels per second."""
    from PIL import Image, ImageDraw

    summaries = summarize(result)
    panels: list[tuple[str, Any]] = [("gain", s) for s in summaries]
    if result.speed:
        panels.append(("speed", summaries))
    if not panels:
        panels.append(("empty", None))
    columns = min(2, len(panels))
    grid_rows = math.ceil(len(panels) / columns)
    image = Image.new("RGB", (_PANEL[0] * columns, _PANEL[1] * grid_rows), "white")
    draw = ImageDraw.Draw(image)
    colours = _colour_map(result, summaries)
    for index, (kind, payload) in enumerate(panels):
        origin = ((index % columns) * _PANEL[0], (index // columns) * _PANEL[1])
        if kind == "gain":
            _gain_panel(draw, origin, payload, colours)
        elif kind == "speed":
            _speed_panel(draw, origin, payload, result.speed, colours)
        else:
            draw.text((origin[0] + 20, origin[1] + 20), "nothing measured", fill="black", font=_font(16))
    image.save(path)


def _colour_map(result: BenchResult, summaries: list[DatasetSummary]) -> dict[str, tuple[int, int, int]]:
    names: list[str] = []
    for name in result.rows + [f"{r.model} (paper)" for s in summaries for r in s.rows if r.kind == "published"]:
        if name != "jpeg" and name not in names:
            names.append(name)
    return {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(names)}


def _gain_panel(draw: Any, origin: tuple[int, int], summary: DatasetSummary, colours: dict) -> None:
    series = []
    for row in summary.rows:
        if row.model == "jpeg" and row.kind == "measured":
            continue
        label = row.model if row.kind == "measured" else f"{row.model} (paper)"
        points = sorted((summary.column_quality[key], m.gain) for key, m in row.means.items()
                        if m.gain is not None and summary.column_quality.get(key) is not None)
        if points:
            series.append((label, points, row.kind == "published"))
    xs = [q for q in summary.column_quality.values() if q is not None] or [0, 100]
    ys = [g for _, pts, _ in series for _, g in pts] + [0.0]
    frame = _axes(draw, origin, f"{summary.name} ({summary.channel.upper()}): PSNR gain over JPEG",
                  "JPEG quality", "gain (dB)", (min(xs), max(xs)), (min(ys), max(ys)), log_x=False)
    zero = frame.to_px(min(xs), 0.0)
    _dashed(draw, [(frame.left, zero[1]), (frame.right, zero[1])], (150, 150, 150), 1)
    for label, points, dashed in series:
        colour = colours.get(label, (0, 0, 0))
        pixels = [frame.to_px(q, g) for q, g in points]
        if dashed:
            _dashed(draw, pixels, colour, 2)
        elif len(pixels) > 1:
            draw.line(pixels, fill=colour, width=2)
        for x, y in pixels:
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
    _legend(draw, frame, [(label, colours.get(label, (0, 0, 0)), dashed) for label, _, dashed in series])


def _speed_panel(draw: Any, origin: tuple[int, int], summaries: list[DatasetSummary], speed: list[SpeedResult],
                 colours: dict) -> None:
    points = []
    for r in speed:
        if r.error or r.megapixels_per_s <= 0:
            continue
        gain, where = None, ""
        for s in summaries:
            for row in s.rows:
                if row.kind == "measured" and row.model == r.model:
                    gains = [m.gain for m in row.means.values() if m.gain is not None]
                    if gains:
                        gain, where = float(np.mean(gains)), s.name
                        break
            if gain is not None:
                break
        if gain is not None:
            points.append((r.model, r.megapixels_per_s, gain, where))
    title = "quality vs speed: mean PSNR gain vs MP/s"
    if not points:
        frame = _axes(draw, origin, title, "megapixels per second (log)", "mean gain (dB)", (0.1, 10), (0, 1), log_x=True)
        draw.text((frame.left + 10, frame.top + 10), "no model has both speed and quality results",
                  fill=(90, 90, 90), font=_font(13))
        return
    xs = [p[1] for p in points]
    ys = [p[2] for p in points] + [0.0]
    frame = _axes(draw, origin, title, "megapixels per second (log)", "mean gain (dB)",
                  (min(xs) / 1.5, max(xs) * 1.5), (min(ys), max(ys)), log_x=True)
    font = _font(12)
    for model, mps, gain, where in points:
        x, y = frame.to_px(mps, gain)
        colour = colours.get(model, (0, 0, 0))
        draw.ellipse((x - 5, y - 5, x + 5, y + 5), fill=colour)
        draw.text((x + 8, y - 8), f"{model} ({where})", fill=colour, font=font)
        draw.text((x + 8, y + 6), f"{mps:.3g} MP/s", fill=(90, 90, 90), font=font)


@dataclass
class _Frame:
    left: int
    top: int
    right: int
    bottom: int
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    log_x: bool

    def to_px(self, x: float, y: float) -> tuple[float, float]:
        x0, x1 = self.x_range
        if self.log_x:
            x, x0, x1 = math.log10(x), math.log10(x0), math.log10(x1)
        y0, y1 = self.y_range
        px = self.left + (x - x0) / (x1 - x0) * (self.right - self.left)
        py = self.bottom - (y - y0) / (y1 - y0) * (self.bottom - self.top)
        return px, py


def _axes(draw: Any, origin: tuple[int, int], title: str, x_label: str, y_label: str,
          x_range: tuple[float, float], y_range: tuple[float, float], *, log_x: bool) -> _Frame:
    ox, oy = origin
    left, top = ox + _MARGIN["left"], oy + _MARGIN["top"]
    right, bottom = ox + _PANEL[0] - _MARGIN["right"], oy + _PANEL[1] - _MARGIN["bottom"]
    if log_x:
        x_ticks = [10.0**e for e in range(math.floor(math.log10(x_range[0])), math.ceil(math.log10(x_range[1])) + 1)]
        x_range = (min(x_ticks[0], x_range[0]), max(x_ticks[-1], x_range[1]))
    else:
        x_ticks = _nice_ticks(*x_range)
        x_range = (min(x_ticks[0], x_range[0]), max(x_ticks[-1], x_range[1]))
    y_ticks = _nice_ticks(*y_range)
    y_range = (y_ticks[0], y_ticks[-1])
    frame = _Frame(left, top, right, bottom, x_range, y_range, log_x)
    font, small = _font(15), _font(12)
    draw.text((left, oy + 4), title, fill="black", font=font)
    for value in y_ticks:
        _, y = frame.to_px(x_range[0], value)
        draw.line([(left, y), (right, y)], fill=(232, 232, 232))
        draw.text((left - 8, y), f"{value:g}", fill="black", font=small, anchor="rm")
    for value in x_ticks:
        x, _ = frame.to_px(value, y_range[0])
        draw.line([(x, top), (x, bottom)], fill=(232, 232, 232))
        draw.text((x, bottom + 6), f"{value:g}", fill="black", font=small, anchor="mt")
    draw.rectangle((left, top, right, bottom), outline="black")
    draw.text(((left + right) / 2, bottom + 26), x_label, fill="black", font=small, anchor="mt")
    draw.text((ox + 8, top - 15), y_label, fill="black", font=small)
    return frame


def _legend(draw: Any, frame: _Frame, entries: list[tuple[str, tuple[int, int, int], bool]]) -> None:
    font = _font(12)
    x, y = frame.right + 14, frame.top + 2
    width = max((draw.textlength(label, font=font) for label, _, _ in entries), default=0) + 40
    if entries:
        draw.rectangle((x - 4, y - 2, x + width, y + 16 * len(entries) + 2), fill="white", outline=(200, 200, 200))
    for label, colour, dashed in entries:
        if dashed:
            _dashed(draw, [(x, y + 7), (x + 24, y + 7)], colour, 2)
        else:
            draw.line([(x, y + 7), (x + 24, y + 7)], fill=colour, width=2)
        draw.text((x + 30, y), label, fill="black", font=font)
        y += 16


def _dashed(draw: Any, points: list[tuple[float, float]], colour: tuple[int, int, int], width: int,
            dash: float = 7.0, gap: float = 5.0) -> None:
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        length = math.hypot(x1 - x0, y1 - y0)
        position = 0.0
        while position < length:
            end = min(position + dash, length)
            a, b = position / length, end / length
            draw.line([(x0 + (x1 - x0) * a, y0 + (y1 - y0) * a), (x0 + (x1 - x0) * b, y0 + (y1 - y0) * b)],
                      fill=colour, width=width)
            position = end + gap


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 x 10^k steps) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        low, high = 0.0, 1.0
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value < high + step * 0.999:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


# ----------------------------------------------------------------------------- helpers

def _mean_json(m: Mean) -> dict[str, Any]:
    return {"psnr": m.psnr, "ssim": m.ssim, "psnr_b": m.psnr_b, "images": m.n, "gain": m.gain,
            "paired": m.paired, "worse": m.worse, "worse_share": m.worse_share,
            "beyond_tolerance": m.beyond_tolerance, "worst": m.worst,
            "psnr_input": m.psnr_input, "psnr_input_min": m.psnr_input_min}


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _ssim_digits(value: float) -> int:
    """Decimals a paper printed an SSIM with (3 or 4), so 0.900 is not shown as 0.9."""
    return 3 if abs(value * 1000 - round(value * 1000)) < 1e-6 else 4


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return "inf" if math.isinf(value) else f"{value:.2f}"


def _signed(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:+.{digits}f}"


def _csv_number(value: float, digits: int = 4) -> str:
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def _json_safe(value: Any) -> Any:
    """Plain JSON types; non-finite floats become the strings ``inf``/``-inf``/``nan``."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else str(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    return value
