"""The mutation fuzzer: its mutations, and a bounded campaign against the real restore path."""

import io
import random

from PIL import Image

from jpegfix.fuzz import (BAD_OUTCOMES, SMALL_PIXELS, declared_size, edit_dimensions, edit_length, fix_png_crcs,
                          jpeg_segments, mutate, png_chunks, run_fuzz, seed_files)


def test_seeds_are_valid_images():
    for name, data in seed_files().items():
        with Image.open(io.BytesIO(data)) as image:
            image.load()
        assert declared_size(data) == image.size, name


def test_mutations_change_what_they_say():
    seeds = seed_files()
    rng = random.Random(0)
    jpeg, png = seeds["colour-420-q30.jpg"], seeds["colour.png"]
    assert jpeg_segments(jpeg)[0][0] == 2 and png_chunks(png)[0][0] == 8
    bomb, what = edit_dimensions(jpeg, rng)
    assert declared_size(bomb) == tuple(int(v) for v in what.split()[1].split("x"))
    edited, what = edit_length(png, rng)
    assert edited != png and what.startswith("length")
    assert fix_png_crcs(png) == png  # valid CRCs are left alone
    for _ in range(50):
        data, applied = mutate(jpeg, rng)
        assert applied and isinstance(data, bytes)


def test_bounded_campaign_is_clean():
    """40 mutated files through read -> model -> restore -> write: each ends in a decodable PNG
    or a one-line failure, nothing printed, no traceback, crash or hang, inputs untouched, and
    small images within the time and memory bounds."""
    summary, cases = run_fuzz(40, seed=7, timeout=10.0)
    assert summary.cases == 40 and summary.clean, summary.bad
    assert summary.outcomes.get("ok", 0) > 0 and summary.outcomes.get("failed", 0) > 0
    small = [c for c in cases if c.declared and c.declared[0] * c.declared[1] < SMALL_PIXELS]
    assert all(c.seconds < 10 and c.peak_mb < 1024 for c in small)
    assert not set(summary.outcomes) & set(BAD_OUTCOMES)
