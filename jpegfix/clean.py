"""Is an image already clean? The ``--skip-clean`` verdict, judged from the pixels.

A file's last quantization tables are not enough: a web photo saved again at quality 96
carries quality-96 tables over the damage of an earlier, coarser compression. So the verdict
uses, in order:

1. the tables recovered from the pixels (:func:`jpegfix.recovery.recover_tables`: the
   coarsest quantization the coefficients still show, whatever the file format);
2. for JPEG files, an earlier compression under the file's tables, and the file's own tables
   when the pixels show nothing coarser (step 1 cannot read steps of 1, quality 97 and up);
3. images whose pixels show no quantization on any 8x8 grid count as clean: never
   compressed, or resized after decoding (the blind colour default gains +0.04 dB on
   0.75x-resized quality-30 JPEGs and can lose on resized quality-90 ones, docs/blind.md).

The CQR ranker's readout is not used: measured on LIVE1 (docs/table-recovery.md), it reads
clean photos and 0.75x-resized JPEGs of quality 10 alike (83-95), and a quality-30 PNG
cropped off the grid as about 90.
"""

from __future__ import annotations

from dataclasses import dataclass

from jpegfix.jpeg import DecodedImage
from jpegfix.qmaps import estimate_quality
from jpegfix.recovery import find_earlier_compression, recover_tables

DEFAULT_CLEAN_QUALITY = 95
"""Images of this IJG quality or better pass through: the blind colour default loses 0.96 dB
at quality 95 on LIVE1 (issue 12); QGCN at 90-95 is not measured yet (docs/table-recovery.md)."""


@dataclass
class Verdict:
    clean: bool
    reason: str
    quality: int | None = None
    """The quality the verdict rests on (None when it rests on no quality)."""
    evidence: str = ""
    """``pixels``, ``earlier``, ``file tables`` or ``none``."""


def judge(image: DecodedImage, threshold: int = DEFAULT_CLEAN_QUALITY) -> Verdict:
    """Whether ``image`` needs no restoring: its compression, judged from the pixels, is of
    IJG quality ``threshold`` or better, or its pixels show no JPEG quantization at all."""
    if image.components:
        earlier = find_earlier_compression(image.pixels, image.components)
        if earlier.found:
            return _by_quality(earlier.quality, threshold, f"earlier compression at quality {earlier.quality}", "earlier")
    recovery = recover_tables(image.pixels)
    if recovery.found:
        return _by_quality(recovery.quality, threshold, f"pixels show IJG quality {recovery.quality}", "pixels")
    if image.components:
        quality, _ = estimate_quality(image.components[0].table)
        return _by_quality(quality, threshold, f"no coarser quantization in the pixels than the file's quality {quality}",
                           "file tables")
    return Verdict(True, "clean, no JPEG quantization in the pixels on any 8x8 grid", None, "none")


def _by_quality(quality: int, threshold: int, why: str, evidence: str) -> Verdict:
    clean = quality >= threshold
    verdict = f"clean, {why} (>= {threshold})" if clean else f"needs restoring, {why} (< {threshold})"
    return Verdict(clean, verdict, quality, evidence)
