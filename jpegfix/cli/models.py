"""``jpegfix models``: registered models, whether their weights are here, and their scores."""

from __future__ import annotations

import json

import typer

from jpegfix.cli.options import JsonOpt
from jpegfix.cli.render import console


def model_rows() -> list[dict]:
    """One row per registered model, read from the catalogue and the cards (no torch)."""
    from jpegfix.catalogue import entries
    from jpegfix.weights import card_of, find_local

    rows = []
    for spec in entries().values():
        present = find_local(spec)
        card = card_of(spec, present) or {}
        validation = card.get("validation", {})
        rows.append({
            "name": spec.name, "method": spec.method, "role": spec.role, "channels": spec.channels,
            "needs_tables": spec.needs_tables, "weights": str(present) if present else None,
            "size_mb": round(present.stat().st_size / 2**20, 2) if present else None,
            "parameters": card.get("parameters"), "validation": validation,
            "description": spec.description,
        })
    return rows


def models_command(as_json: JsonOpt = False) -> None:
    """List models: method, weights present, size and validation scores from their cards."""
    from rich.table import Column, Table

    rows = model_rows()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    # Model names are what users type: never truncate them; let the scores wrap instead.
    table = Table(Column("model", no_wrap=True), Column("method", no_wrap=True), "input", "weights",
                  Column("MB", no_wrap=True), "validation gain over JPEG, dB")
    for row in rows:
        scores = "  ".join(f"{k.removeprefix('gain_')} {v:+.2f}" for k, v in row["validation"].items() if k.startswith("gain_"))
        if row["role"] == "ranker":  # scores images, restores nothing
            spearman = row["validation"].get("spearman")
            scores = "quality ranker" + (f", Spearman {spearman:.3f}" if spearman is not None else "")
        table.add_row(row["name"], row["method"], "JPEG" if row["needs_tables"] else "any",
                      "yes" if row["weights"] else "[dim]missing[/]",
                      f"{row['size_mb']:.1f}" if row["size_mb"] else "", scores)
    console.print(table)
