"""Compression history from pixels: recover JPEG quantization tables an image no longer carries.

A decoded JPEG saved as PNG, WebP or TIFF keeps its compression in its pixels: on the
encoder's 8x8 block grid, every DCT coefficient of the decoded image lies near a multiple of
its quantization step (Fan & de Queiroz, IEEE TIP 2003; Neelamani et al., IEEE TIP 2006 for
colour). Decoding and rounding to 8 bits blur each cluster by about a third of a level, so
steps of 2 and more are readable while step 1 is indistinguishable from no compression; a
resize or a clean photo leaves no clusters at all, and then the answer is "not found".

The same reading of a JPEG file's own coefficients finds an earlier, coarser quantization
under the file's tables (double compression on the same grid: Popescu & Farid 2004; Bianchi
& Piva, IEEE TIFS 2012): the file's values are multiples of its own steps, yet they also
crowd around multiples of the first, larger steps.

Conventions: tables are (8, 8) in natural order, [v, u] = (vertical, horizontal) frequency,
as :mod:`jpegfix.jpeg` reads them. A grid offset (x, y) is where, in the image, the first
whole block starts (0..7 for luma; a 4:2:0 chroma block starts at x or x + 8).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from jpegfix.jpeg import ComponentTable
from jpegfix.qmaps import IJG_CHROMA, IJG_LUMA, estimate_quality, ijg_table

BLOCK = 8
MAX_STEP = 255
"""Steps are searched up to the largest 8-bit table entry (Pillow's tables are 8-bit)."""
MIN_VALUES = 24
"""Coefficients off the zero cluster a frequency needs before its step is read."""
MAX_VALUES = 1000
"""At most this many coefficients per frequency are examined (an even sample over the
blocks); keeps a 12 MP photo as cheap as a small one."""
FIT_THRESHOLD = 0.8
"""Share of a frequency's coefficients that must lie near multiples of a step to accept it."""
STEP2_TOLERANCE, STEP2_THRESHOLD, STEP2_VALUES = 0.5, 0.74, 100
"""A step of 2 is read with a tighter tolerance (chance alone puts half the values within
0.5 of an even number, decoded steps of 2 put about 80% there) and needs more values."""
ZERO_CLUSTER = 1.3
"""Decoded values below this are taken as quantized to zero (rounding noise about 0.4)."""
AC_TOLERANCE, DC_TOLERANCE, SLOPE_TOLERANCE = 0.6, 1.5, 0.01
"""How far from a multiple a decoded coefficient may lie: 8-bit rounding spreads AC
coefficients by about 0.4 (measured); the DC also carries the rounding bias of whole blocks;
large coefficients carry proportionally more decoder error (1% of the step)."""
CHROMA_TOLERANCES = (2.0, 1.2)
"""(DC, AC) tolerances for 4:2:0 chroma: undoing the decoder's upsampling amplifies its
rounding up to four times at the highest frequencies."""
MIN_AC_STEPS = 4
"""AC frequencies with a step of 2 or more needed before any table is reported: the DC alone
is not evidence, since flat areas of drawings put it on multiples of 8 at every offset."""
FOUND_CONFIDENCE = 0.5
"""Recoveries below this confidence are reported as "not found" (clean and resized images
read 0-0.2, IJG JPEGs of quality 10-95 about 0.9; false "found" 0 of 34 clean and 54
resized images in docs/table-recovery.md)."""
MIN_SIDE = 32
ANALYSIS_SIDE = 1024
"""Only a central crop this large is analysed (16k blocks, plenty for the histograms)."""


@dataclass
class Recovery:
    """What the pixels say about an image's JPEG compression."""

    found: bool
    reason: str
    """Why not found, or a one-line summary of what was found."""
    components: list[ComponentTable] | None = None
    """Recovered tables per component (Y, or Y, Cb, Cr), on the block grid at ``offset``."""
    offset: tuple[int, int] = (0, 0)
    """(x, y) of the first whole luma block in the image."""
    confidence: float = 0.0
    """0..1: how strongly the coefficients cluster on the recovered steps."""
    subsampling: str = ""
    """``4:2:0`` or ``4:4:4`` for colour images, empty for grey."""
    quality: int | None = None
    """Nearest IJG quality of the recovered luma table."""
    table_error: float = 0.0
    """Mean absolute difference between the recovered luma table and that IJG table."""
    details: dict = field(default_factory=dict)


@dataclass
class EarlierCompression:
    """A coarser quantization found under a JPEG file's own tables."""

    found: bool
    reason: str
    components: list[ComponentTable] | None = None
    """The earlier tables (IJG tables at the earlier quality, with the file's block grid)."""
    quality: int | None = None
    confidence: float = 0.0


# -- colour planes and block transforms ------------------------------------------------


def _dct_matrix() -> np.ndarray:
    n = np.arange(BLOCK)
    matrix = np.cos((2 * n[None, :] + 1) * n[:, None] * np.pi / (2 * BLOCK)) * np.sqrt(2 / BLOCK)
    matrix[0] /= np.sqrt(2)
    return matrix


_DCT = _dct_matrix()


def ycbcr_planes(pixels: np.ndarray) -> list[np.ndarray]:
    """(H, W, C) uint8 -> [Y] or [Y, Cb, Cr] float64 planes, JFIF full range (what libjpeg's
    encoder transforms)."""
    rgb = pixels.astype(np.float64)
    if rgb.shape[2] == 1:
        return [rgb[..., 0]]
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return [
        0.299 * r + 0.587 * g + 0.114 * b,
        128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
        128 + 0.5 * r - 0.418688 * g - 0.081312 * b,
    ]


def block_coefficients(plane: np.ndarray, x: int = 0, y: int = 0) -> np.ndarray:
    """(N, 8, 8) DCT coefficients of the level-shifted whole 8x8 blocks of ``plane`` whose
    grid starts at column ``x``, row ``y``."""
    rows, cols = (plane.shape[0] - y) // BLOCK, (plane.shape[1] - x) // BLOCK
    if rows <= 0 or cols <= 0:
        return np.zeros((0, BLOCK, BLOCK))
    area = plane[y : y + rows * BLOCK, x : x + cols * BLOCK] - 128.0
    blocks = area.reshape(rows, BLOCK, cols, BLOCK).transpose(0, 2, 1, 3).reshape(-1, BLOCK, BLOCK)
    return _DCT @ blocks @ _DCT.T


def unclipped_blocks(pixels: np.ndarray, x: int, y: int, size: int = BLOCK) -> np.ndarray:
    """(N,) bool per ``size`` x ``size`` block of the grid at (``x``, ``y``), in the order of
    :func:`block_coefficients`: True where no pixel of the block is 0 or 255 in any channel.
    Clipping in the decoder pushes a whole block's coefficients off their multiples."""
    rows, cols = (pixels.shape[0] - y) // size, (pixels.shape[1] - x) // size
    area = pixels[y : y + rows * size, x : x + cols * size]
    clipped = ((area == 0) | (area == 255)).any(axis=2)
    return ~clipped.reshape(rows, size, cols, size).any(axis=(1, 3)).ravel()


def downsampled_chroma(plane: np.ndarray, x: int, y: int) -> np.ndarray:
    """The 4:2:0 chroma samples an encoder saw, from a decoded full-resolution chroma plane
    whose 2x2 sample cells start at (``x``, ``y``) (0 or 1 each).

    libjpeg's decoder upsamples with a triangle filter (3/4, 1/4 in each direction); the 2x2
    box average of its output is the original samples filtered by [1, 6, 1] / 8 in each
    direction, which this undoes in the Fourier domain (the filter's response is at least
    1/2, so the inversion is stable).
    """
    h, w = (plane.shape[0] - y) // 2, (plane.shape[1] - x) // 2
    cells = plane[y : y + 2 * h, x : x + 2 * w].reshape(h, 2, w, 2).mean(axis=(1, 3))
    return _unblur(_unblur(cells, 0), 1)


def _unblur(samples: np.ndarray, axis: int) -> np.ndarray:
    """Invert the [1, 6, 1] / 8 filter along ``axis`` (edges mirrored, as libjpeg's upsampler
    repeats the edge sample)."""
    n = samples.shape[axis]
    if n < 2:
        return samples
    mirrored = np.concatenate([samples, np.flip(samples, axis=axis)], axis=axis)
    frequency = np.fft.fftfreq(2 * n)
    shape = [1, 1]
    shape[axis] = 2 * n
    response = ((6 + 2 * np.cos(2 * np.pi * frequency)) / 8).reshape(shape)
    restored = np.real(np.fft.ifft(np.fft.fft(mirrored, axis=axis) / response, axis=axis))
    return np.take(restored, np.arange(n), axis=axis)


def central_crop(pixels: np.ndarray, side: int = ANALYSIS_SIDE) -> np.ndarray:
    """At most ``side`` x ``side`` pixels from the middle of the image, cut at multiples of 16
    so that every block grid keeps its offset: enough blocks for the statistics, bounded
    memory and time for a 100 MP photo."""
    height, width = pixels.shape[:2]
    top = max(0, (height - side) // 2) // (2 * BLOCK) * 2 * BLOCK
    left = max(0, (width - side) // 2) // (2 * BLOCK) * 2 * BLOCK
    return pixels[top : top + side, left : left + side]


# -- grid ------------------------------------------------------------------------------


def grid_scores(luma: np.ndarray) -> np.ndarray:
    """(8, 8) score per grid offset [y, x]: the share of AC coefficients that quantization
    would have zeroed (|D| < 0.5). On a JPEG's own grid this share jumps; elsewhere, and on
    clean or resized images, it is about even over all offsets."""
    scores = np.zeros((BLOCK, BLOCK))
    sample = _grid_sample(luma)
    for y in range(BLOCK):
        for x in range(BLOCK):
            coefficients = block_coefficients(sample, x, y)
            ac = coefficients.reshape(len(coefficients), -1)[:, 1:]
            scores[y, x] = float((np.abs(ac) < 0.5).mean()) if len(ac) else 0.0
    return scores


def _grid_sample(luma: np.ndarray, side: int = 384) -> np.ndarray:
    """A central crop of at most ``side`` x ``side`` (+7) with the image's own block phase
    (crop corners on multiples of 8), so large photos cost no more than small ones."""
    h, w = luma.shape
    top = max(0, (h - side) // 2) // BLOCK * BLOCK
    left = max(0, (w - side) // 2) // BLOCK * BLOCK
    return luma[top : top + side + BLOCK - 1, left : left + side + BLOCK - 1]


def find_grid(luma: np.ndarray) -> tuple[tuple[int, int], float]:
    """((x, y) offset of the likeliest block grid, contrast): the contrast is how far the best
    offset's score stands above the median of the others, in units of their spread."""
    scores = grid_scores(luma)
    y, x = np.unravel_index(int(np.argmax(scores)), scores.shape)
    others = np.delete(scores.ravel(), y * BLOCK + x)
    spread = max(float(np.median(np.abs(others - np.median(others)))), 1e-4)
    return (int(x), int(y)), float((scores[y, x] - np.median(others)) / spread)


# -- steps -----------------------------------------------------------------------------


@dataclass
class StepReading:
    """Per-frequency steps read from coefficient clusters."""

    steps: np.ndarray
    """(8, 8) int: the step read at each frequency; 0 where the coefficients do not tell."""
    fits: np.ndarray
    """(8, 8) share of coefficients near multiples of the accepted step (0 where none)."""
    counts: np.ndarray
    """(8, 8) coefficients off the zero cluster at each frequency."""


def read_steps(coefficients: np.ndarray, quantum: int = 1, tolerances: tuple[float, float] = (DC_TOLERANCE, AC_TOLERANCE)) -> StepReading:
    """Read each frequency's quantization step from (N, 8, 8) ``coefficients``.

    The step is the largest q for which at least ``FIT_THRESHOLD`` of the coefficients that q
    would not round to zero (|D| >= q/2) lie within the tolerance (``tolerances`` = (DC, AC))
    of a multiple of q. Larger
    candidates leave the first multiple (|D| ~ q) off their own multiples; smaller divisors
    fit too, hence the largest. ``quantum`` > 1 reads coefficients that are themselves
    multiples of ``quantum`` (a JPEG's own values): candidates must then be at least 2
    quanta plus the tolerance, or every value would fit. Pass only blocks without clipped
    pixels: clipping at 0 or 255 moves a whole block's coefficients off their multiples.
    """
    n = len(coefficients)
    flat = np.abs(coefficients.reshape(n, BLOCK * BLOCK))  # n may be 0: every block clipped
    steps = np.zeros(BLOCK * BLOCK, dtype=np.int64)
    fits = np.zeros(BLOCK * BLOCK)
    counts = np.zeros(BLOCK * BLOCK, dtype=np.int64)
    for index in range(BLOCK * BLOCK):
        tolerance = tolerances[0] if index == 0 else tolerances[1]
        # Candidates below 4 tolerances would fit by chance half the time; steps of 2 and 3
        # have their own rule (see STEP2_TOLERANCE) when the tolerance is the AC one.
        smallest = max(2, int(np.ceil(2 * tolerance + quantum)))
        if quantum == 1:
            smallest = 2 if tolerance <= AC_TOLERANCE else int(np.ceil(4 * tolerance))
        values = flat[:, index]
        values = values[values > (ZERO_CLUSTER if quantum == 1 else quantum / 2 + tolerance)]
        counts[index] = len(values)
        if len(values) < MIN_VALUES:
            continue
        if len(values) > MAX_VALUES:
            values = values[:: -(-len(values) // MAX_VALUES)]
        step, fit = _largest_fitting_step(values, smallest, tolerance)
        steps[index], fits[index] = step, fit
    return StepReading(steps.reshape(BLOCK, BLOCK), fits.reshape(BLOCK, BLOCK), counts.reshape(BLOCK, BLOCK))


def _largest_fitting_step(values: np.ndarray, smallest: int, tolerance: float) -> tuple[int, float]:
    largest = int(min(MAX_STEP, 2 * values.max() + 1))
    if largest < smallest:
        return 0, 0.0
    candidates = np.arange(smallest, largest + 1, dtype=np.float64)[:, None]
    residual = np.abs(values[None, :] - candidates * np.round(values[None, :] / candidates))
    counted = values[None, :] >= candidates / 2
    step2 = candidates[:, 0] == 2
    # A step of 2 is judged on the values it explains alone (k = 1..3): values that are
    # multiples of a large step are even too, and must not make it read as 2.
    counted[step2] &= values[None, :] <= 7
    # Coefficients far from zero carry proportionally more decoder error (fixed-point IDCT).
    within = np.where(step2, STEP2_TOLERANCE, np.maximum(tolerance, SLOPE_TOLERANCE * candidates[:, 0]))[:, None]
    near = ((residual <= within) & counted).sum(axis=1)
    total = counted.sum(axis=1)
    fit = near / np.maximum(total, 1)
    good = np.where(step2, (total >= STEP2_VALUES) & (fit >= STEP2_THRESHOLD),
                    (total >= MIN_VALUES) & (fit >= FIT_THRESHOLD))
    if not good.any():
        return 0, 0.0
    best = int(np.flatnonzero(good)[-1])
    return int(candidates[best, 0]), float(fit[best])


# -- tables ----------------------------------------------------------------------------


def ijg_match(steps: np.ndarray, base: np.ndarray) -> tuple[int, float]:
    """(IJG quality, share of read steps it reproduces exactly) that best explains the read
    steps (entries 0 are unread and ignored). Among equally good qualities the middle one."""
    read = steps > 0
    if not read.any():
        return 0, 0.0
    agreement = np.array([(ijg_table(q, base)[read] == steps[read]).mean() for q in range(1, 101)])
    tied = np.flatnonzero(agreement == agreement.max())
    return int(tied[len(tied) // 2]) + 1, float(agreement.max())


def complete_table(steps: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, int, float]:
    """A whole table from read steps: the IJG table when it reproduces at least 75% of them
    (typical encoders; a few steps misread at frequencies with few values must not break an
    otherwise exact table), else the read steps with unread entries taken from the nearest IJG
    table. Returns (table, nearest IJG quality, share of read steps that quality reproduces)."""
    quality, agreement = ijg_match(steps, base)
    table = ijg_table(quality, base)
    if agreement < 0.75:
        table = np.where(steps > 0, steps, table)
    return table.astype(np.int64), quality, agreement


def _confidence(reading: StepReading) -> float:
    """0..1 from the AC frequencies whose step (2 or more) was read: their mean fit, scaled
    down while there are fewer than ``2 * MIN_AC_STEPS`` of them."""
    ac = reading.steps >= 2
    ac[0, 0] = False
    if not ac.any():
        return 0.0
    fit = float(reading.fits[ac].mean())
    return fit * min(1.0, ac.sum() / (2 * MIN_AC_STEPS))


def _zero_share(coefficients: np.ndarray) -> float:
    """Share of AC coefficients near zero (|D| < 1): highest on the encoder's block grid."""
    if not len(coefficients):
        return 0.0
    ac = coefficients.reshape(len(coefficients), -1)[:, 1:]
    return float((np.abs(ac) < 1.0).mean())


# -- whole images ----------------------------------------------------------------------


def recover_tables(pixels: np.ndarray) -> Recovery:
    """Recover the JPEG tables of (H, W, C) uint8 ``pixels`` (grey or RGB) from the pixels
    alone. Never guesses: weak evidence (clean, resized, drawn or tiny images) gives
    ``found=False`` with the reason."""
    if min(pixels.shape[:2]) < MIN_SIDE:
        return Recovery(False, f"image smaller than {MIN_SIDE}x{MIN_SIDE} pixels")
    pixels = central_crop(pixels)
    planes = ycbcr_planes(pixels)
    (x, y), contrast = find_grid(planes[0])
    luma = read_steps(block_coefficients(planes[0], x, y)[unclipped_blocks(pixels, x, y)])
    ac_read = int((luma.steps[1:, :] >= 2).sum() + (luma.steps[0, 1:] >= 2).sum())
    confidence = _confidence(luma)
    details = {"grid_contrast": round(contrast, 1), "luma_steps_read": ac_read}
    if ac_read < MIN_AC_STEPS or confidence < FOUND_CONFIDENCE:
        reason = "no quantization found in the pixels (clean, resized or not a decoded JPEG)"
        return Recovery(False, reason, offset=(x, y), confidence=confidence, details=details)
    table, quality, agreement = complete_table(luma.steps, IJG_LUMA)
    details["luma_ijg_agreement"] = round(agreement, 3)
    components = [ComponentTable(table, BLOCK, BLOCK, (x, y))]
    subsampling = ""
    if len(planes) == 3:
        chroma, subsampling = _recover_chroma(pixels, planes[1:], x, y, quality)
        components += chroma
    _, error = estimate_quality(table, IJG_LUMA)
    summary = f"tables recovered from pixels (grid offset {x}, {y}; confidence {confidence:.2f})"
    return Recovery(True, summary, components, (x, y), confidence, subsampling, quality, error, details)


def _recover_chroma(pixels: np.ndarray, chroma: list[np.ndarray], x: int, y: int,
                    luma_quality: int) -> tuple[list[ComponentTable], str]:
    """Cb, Cr tables and the subsampling (4:2:0 or 4:4:4) whose reading fits best. Chroma
    steps too weak to read (grey content, or few chroma details at low quality) and readings
    that agree with it take the IJG chroma table at the luma's quality."""
    keep = unclipped_blocks(pixels, x, y)
    full = [read_steps(block_coefficients(p, x, y)[keep]) for p in chroma]
    # The 16-pixel chroma grid starts at x or x + 8 (and y or y + 8): on the right one the
    # most coefficients were quantized to zero, as for the luma grid.
    phases = []
    halves = [downsampled_chroma(p, x % 2, y % 2) for p in chroma]  # x + 8 keeps the pairing of x
    for cy in (y, y + BLOCK):
        for cx in (x, x + BLOCK):
            keep = unclipped_blocks(pixels, cx, cy, 2 * BLOCK)
            coefficients = [block_coefficients(h, cx // 2, cy // 2)[keep] for h in halves]
            phases.append((sum(_zero_share(c) for c in coefficients), (cx, cy), coefficients))
    _, origin, coefficients = max(phases, key=lambda phase: phase[0])
    half = [read_steps(c, tolerances=CHROMA_TOLERANCES) for c in coefficients]
    for reading in full + half:
        # Box averaging, the decoder's rounding and its upsampling leave the chroma DC
        # too noisy to read its step (measured: readings of 4-5 for a step of 14).
        reading.steps[0, 0] = 0
    # IJG encoders (libjpeg, Pillow, OpenCV) use one quality for luma and chroma: the layout
    # whose readings match the chroma table at the luma's quality wins; spurious small steps
    # read on the wrong layout (a 4:2:0 image read as 4:4:4) match nothing. Other encoders
    # match neither, and then 4:2:0, the commonest layout, stays (measured: a 4:2:0 image at
    # quality 10 shows nothing readable at 4:2:0 and spurious steps of 2-5 at 4:4:4).
    expected = ijg_table(luma_quality, IJG_CHROMA)
    matches = lambda readings: sum(int((r.steps[r.steps > 0] == expected[r.steps > 0]).sum()) for r in readings)
    name, readings, size = "4:2:0", half, 2 * BLOCK
    if matches(full) > matches(half):
        name, readings, size, origin = "4:4:4", full, BLOCK, (x, y)
    tables = []
    for reading in readings:
        read = reading.steps > 0
        if not read.any() or (reading.steps[read] == expected[read]).mean() >= 0.75:
            table = expected
        else:
            table, _, _ = complete_table(reading.steps, IJG_CHROMA)
        tables.append(ComponentTable(table, size, size, origin))
    return tables, name


# -- an earlier compression under a JPEG's own tables ----------------------------------

EARLIER_FIT = 0.75
"""Pooled share of a JPEG's coefficients that must sit near multiples of an earlier table."""
EARLIER_MIN_FREQUENCIES = 4
"""Frequencies the earlier table must resolve (steps at least ``EARLIER_RATIO`` times the
width of the window around each multiple)."""
EARLIER_RATIO = 2
EARLIER_MIN_VALUES = 200


def find_earlier_compression(pixels: np.ndarray, components: list[ComponentTable]) -> EarlierCompression:
    """Look for an earlier, coarser IJG quantization of a JPEG file's luma under its own
    tables (``components``, as read from the file; ``pixels`` its decoding, whose grid
    starts at the top-left corner).

    The file's values are k * Q2 (recovered exactly from the decoded pixels by rounding to
    multiples of Q2: decoding moves them by about 0.4). An earlier quantization with steps Q1
    left them within Q2/2 (plus rounding) of multiples of Q1. Each IJG quality coarser than
    the file's is scored by the pooled share of values near its multiples, over the
    frequencies where its steps are at least 4 times the tolerance (finer ones would fit by
    chance); the coarsest quality that fits about as well as the best is the earlier one.
    """
    luma_table = components[0].table.astype(np.float64)
    file_quality, _ = estimate_quality(components[0].table, IJG_LUMA)
    pixels = central_crop(pixels)
    planes = ycbcr_planes(pixels)
    coefficients = block_coefficients(planes[0])[unclipped_blocks(pixels, 0, 0)]
    if len(coefficients) < 64:
        return EarlierCompression(False, "image too small to look for an earlier compression")
    values = np.abs(np.round(coefficients / luma_table) * luma_table).reshape(len(coefficients), -1)
    step = values.shape[0] // 4000 + 1
    values = values[::step]
    scores = {}
    for quality in range(1, min(file_quality, 99)):
        score = _earlier_fit(values, ijg_table(quality).ravel().astype(np.float64), luma_table.ravel())
        if score is not None:
            scores[quality] = score
    if not scores:
        return EarlierCompression(False, "no earlier compression found (no coarser table can be read)")
    best = max(scores.values())
    if best < EARLIER_FIT:
        return EarlierCompression(False, f"no earlier compression found (best fit {best:.2f})", confidence=best)
    quality = min(q for q, s in scores.items() if s >= best - 0.02)
    tables = [ComponentTable(ijg_table(quality), BLOCK, BLOCK)]
    for component in components[1:]:
        tables.append(ComponentTable(ijg_table(quality, IJG_CHROMA), component.block_height, component.block_width))
    reason = f"earlier compression at quality {quality} found under the file's quality-{file_quality} tables"
    return EarlierCompression(True, reason, tables, quality, scores[quality])


def _earlier_fit(values: np.ndarray, earlier: np.ndarray, table: np.ndarray) -> float | None:
    """Pooled share of values near multiples of ``earlier`` (per frequency, (64,)) over the
    frequencies it resolves; None when too few frequencies or values can tell."""
    tolerance = table / 2 + AC_TOLERANCE + SLOPE_TOLERANCE * earlier
    # Chance alone puts 2 * tolerance / step of the values near a multiple: use only
    # frequencies where that is at most a quarter.
    usable = earlier >= EARLIER_RATIO * 2 * tolerance
    usable[0] = False  # the DC of flat areas sits on multiples of 8 whatever the history
    if usable.sum() < EARLIER_MIN_FREQUENCIES:
        return None
    chosen = values[:, usable]
    steps = earlier[usable][None, :]
    # Every value clear of zero counts: after a coarser first quantization, values between 0
    # and the first step (the file's own small multiples) are missing, which is the evidence.
    # Values within the tolerance of zero fit any step: counting them let a smooth picture
    # (few large coefficients) "fit" quality 1 under quality-100 tables (LIVE1 parrots).
    counted = chosen > tolerance[usable][None, :]
    if counted.sum() < EARLIER_MIN_VALUES:
        return None
    residual = np.abs(chosen - steps * np.round(chosen / steps))
    return float(((residual <= tolerance[usable][None, :]) & counted).sum() / counted.sum())


# -- what the engine uses --------------------------------------------------------------


def grid_padding(components: list[ComponentTable]) -> tuple[int, int]:
    """(top, left) pixels to add so that every component's block grid starts at the image's
    top-left corner, as in the JPEGs the table-guided models were trained on (their stride-2
    layers and tiles assume it); (0, 0) for a JPEG file's own tables."""
    widest = max(components, key=lambda c: c.block_height * c.block_width)
    x, y = widest.origin
    return (-y) % widest.block_height, (-x) % widest.block_width


def at_origin(components: list[ComponentTable]) -> list[ComponentTable]:
    """The same tables with their grids at (0, 0), for the image padded by :func:`grid_padding`."""
    return [ComponentTable(c.table, c.block_height, c.block_width) for c in components]


def tables_from_pixels(pixels: np.ndarray) -> tuple[list[ComponentTable], str] | None:
    """(recovered tables, reason) for an image without tables, or None when recovery is not
    confident (then the blind model is the right choice)."""
    recovery = recover_tables(pixels)
    if not recovery.found:
        return None
    return recovery.components, f"{recovery.reason}, about IJG quality {recovery.quality}"


def tables_under_jpeg(pixels: np.ndarray, components: list[ComponentTable]) -> tuple[list[ComponentTable], str] | None:
    """(earlier tables, reason) when a JPEG file hides an earlier, coarser compression under
    its own tables, else None. The earlier compression is the damage to undo."""
    earlier = find_earlier_compression(pixels, components)
    if not earlier.found:
        return None
    return earlier.components, f"{earlier.reason}; restoring with the earlier tables (confidence {earlier.confidence:.2f})"
