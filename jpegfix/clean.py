"""Is an image already clean? The ``--skip-clean`` verdict, judged from the pixels.

A file's last quantization tables are not enough: a web photo saved again at quality 96
carries quality-96 tables over the damage of an earlier, coarser compression. So the verdict
uses, in order:

1. the tables recovered from the pixels (:func:`jpegfix.recovery.recover_tables`: the
   coarsest quantization the coefficients still show, whatever the file format);
2. for JPEG files, an earlier compression under the file's tables, and the file's own tables
   when the pixels show nothing coarser (step 1 cannot read steps of 1, quality 97 and up);
3. for images whose pixels show no quantization at all (never compressed, resized or
   blurred after decoding), the CQR ranker's readout, when its weights are present.
"""

from __future__ import annotations

from dataclasses import dataclass

from jpegfix.jpeg import DecodedImage
from jpegfix.qmaps import estimate_quality
from jpegfix.recovery import find_earlier_compression, recover_tables

DEFAULT_CLEAN_QUALITY = 95
"""Images of this IJG quality or better pass through (measured, docs/table-recovery.md: the
table-guided colour default gains little at quality 90 and loses at 95 and above)."""
RANKER_CLEAN_QUALITY = 75
"""When the pixels show no quantization, the ranker's readout must reach this quality for
the image to count as clean (measured on LIVE1, docs/table-recovery.md: it reads clean
photos as 85-90 and 0.75x-resized JPEGs of quality 40 and below as 60 or less)."""


@dataclass
class Verdict:
    clean: bool
    reason: str
    quality: int | None = None
    """The quality the verdict rests on (None when it rests on no quality)."""
    evidence: str = ""
    """``pixels``, ``earlier``, ``file tables``, ``ranker`` or ``none``."""


def judge(image: DecodedImage, threshold: int = DEFAULT_CLEAN_QUALITY, reader=None) -> Verdict:
    """Whether ``image`` needs no restoring: its compression, judged from the pixels, is of
    IJG quality ``threshold`` or better. ``reader`` (a :class:`jpegfix.quality.QualityReader`)
    judges images whose pixels show no quantization; without one they are not skipped."""
    recovery = recover_tables(image.pixels)
    if image.components:
        earlier = find_earlier_compression(image.pixels, image.components)
        if earlier.found:
            return _by_quality(earlier.quality, threshold, f"earlier compression at quality {earlier.quality}", "earlier")
    if recovery.found:
        return _by_quality(recovery.quality, threshold, f"pixels show IJG quality {recovery.quality}", "pixels")
    if image.components:
        quality, _ = estimate_quality(image.components[0].table)
        return _by_quality(quality, threshold, f"no coarser quantization in the pixels than the file's quality {quality}",
                           "file tables")
    if reader is not None:
        readout = reader.read(image.pixels)
        if "unavailable" not in readout and readout.get("quality") is not None:
            quality = int(readout["quality"])
            clean = quality >= RANKER_CLEAN_QUALITY
            state = "clean" if clean else "needs restoring"
            return Verdict(clean, f"{state}, no quantization in the pixels and the quality ranker reads {quality} "
                                  f"({'>=' if clean else '<'} {RANKER_CLEAN_QUALITY})", quality, "ranker")
    return Verdict(False, "no quantization in the pixels and no quality ranker to judge it", None, "none")


def _by_quality(quality: int, threshold: int, why: str, evidence: str) -> Verdict:
    clean = quality >= threshold
    verdict = f"clean, {why} (>= {threshold})" if clean else f"needs restoring, {why} (< {threshold})"
    return Verdict(clean, verdict, quality, evidence)
