"""Real-world JPEG quantization tables, each recorded with where its numbers come from.

The tables live in ``table_sets.json`` (package data), one entry per set: a name, a kind
(camera, phone, editor, encoder, standard), a source (package file or repository path at a
commit, plus how a base table was scaled) and the luma and chroma tables. They feed training
(sample a real table instead of only IJG quality levels) and benchmarks (restore images
compressed with tables the network never saw as a quality number).

Order: every table here is in NATURAL row-major order, ``luma[v, u]`` being the step of the
DCT coefficient in row v (vertical frequency), column u (horizontal frequency); ``[0, 0]``
is DC. That is libjpeg's ``quantval[]`` order and jpeglib's ``qt`` order. A JPEG file's DQT
segment stores zigzag order instead; sources that copy DQT bytes must be de-zigzagged.
Pillow's ``save(..., qtables=[luma, chroma])`` takes natural-order sequences of 64 values
(it hands them to libjpeg's ``jpeg_add_quant_table``); ``pillow_qtables`` builds that
argument and tests/test_table_sets.py checks the round trip through a file read by jpeglib.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from .errors import UnknownTableSetError

KINDS = ("camera", "phone", "editor", "encoder", "standard")


@dataclass(frozen=True, eq=False)
class TableSet:
    """One real set of tables: ``luma`` (8x8) and ``chroma`` (8x8, or None for grey-only sources)."""

    name: str
    kind: str
    source: str
    luma: np.ndarray
    chroma: np.ndarray | None

    def pillow_qtables(self) -> list[list[int]]:
        """The ``qtables=`` argument for Pillow's JPEG writer: natural-order lists of 64 ints."""
        tables = [self.luma] if self.chroma is None else [self.luma, self.chroma]
        return [table.reshape(64).tolist() for table in tables]


def _table(rows: list[list[int]] | None) -> np.ndarray | None:
    if rows is None:
        return None
    table = np.asarray(rows, dtype=np.int64)
    table.setflags(write=False)  # shared by every caller: nobody may edit the facts in place
    return table


def _load() -> tuple[TableSet, ...]:
    text = resources.files("jpegfix").joinpath("table_sets.json").read_text(encoding="utf-8")
    return tuple(
        TableSet(name=e["name"], kind=e["kind"], source=e["source"], luma=_table(e["luma"]), chroma=_table(e["chroma"]))
        for e in json.loads(text)["sets"]
    )


ALL: tuple[TableSet, ...] = _load()

# Named subsets: "realworld" is every set; the others select by kind. No phone tables were
# found in a source that could be read (see docs/tables.md), so "phone" is a kind with no
# sets yet and "cameras" will include phones once they are added.
NAMES: dict[str, tuple[str, ...]] = {
    "realworld": KINDS,
    "cameras": ("camera", "phone"),
    "editors": ("editor",),
    "encoders": ("encoder", "standard"),
}


@lru_cache(maxsize=None)
def _subset(name: str) -> tuple[TableSet, ...]:
    kinds = NAMES[name]
    return tuple(s for s in ALL if s.kind in kinds)


def named(name: str) -> list[TableSet]:
    """The sets in subset ``name`` (see ``NAMES``); an unknown name raises ``UnknownTableSetError``."""
    if name not in NAMES:
        close = difflib.get_close_matches(name, NAMES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownTableSetError(f"unknown table set {name!r}{hint} (known: {', '.join(NAMES)})")
    return list(_subset(name))
