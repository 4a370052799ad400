"""Hostile inputs (issue 14, items 1, 2, 3, 8 and 12): each ends in a right picture or one line."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from PIL import Image

import corpus
from harness import assert_one_line_errors, records, run_cli
from jpegfix.batch import RestoreOptions
from jpegfix.engine import DEFAULT_BLIND_MODELS, choose_model
from jpegfix.errors import InputError
from jpegfix.jpeg import read_image


# -- 1. quantization tables outside what the networks know -----------------------------


def test_sixteen_bit_tables_never_reach_a_table_guided_model(tmp_path):
    """Item 1: cjpeg -quality 1 writes 16-bit tables; fed as maps they shifted the colours with exit 0."""
    path = corpus.write(tmp_path / "wide.jpg", corpus.with_sixteen_bit_tables(corpus.jpeg_bytes(corpus.picture())))
    image = read_image(path)
    assert image.components is None and "16-bit" in image.tables_problem
    name, components, reason = choose_model(image, RestoreOptions())
    assert (name, components) == (DEFAULT_BLIND_MODELS[3], None) and "16-bit" in reason
    with pytest.raises(InputError, match="16-bit"):
        choose_model(image, RestoreOptions(model="qgcn"))
    result = run_cli("restore", path, "-o", tmp_path / "out", "--json")
    assert result.exit_code == 0
    record = records(result.stdout)["wide.jpg"]
    assert record["model"] == DEFAULT_BLIND_MODELS[3] and "16-bit" in record["reason"]
    restored = np.asarray(Image.open(tmp_path / "out" / "wide.png"), dtype=float)
    decoded = np.asarray(Image.open(path), dtype=float)
    assert abs(restored.mean() - decoded.mean()) < 3  # no colour shift


def test_zero_table_entries_are_refused_as_tables(tmp_path):
    """Item 1: a zero step has no quantization interval; it must not become a map."""
    path = corpus.write(tmp_path / "zero.jpg", corpus.with_zero_table_entry(corpus.jpeg_bytes(corpus.picture())))
    image = read_image(path)
    assert image.components is None and "zero" in image.tables_problem


# -- 2. decompression bombs and limits --------------------------------------------------


def test_a_jpeg_declaring_144_megapixels_is_refused_before_decoding(tmp_path):
    """Item 2: a 1 KB JPEG declaring 12000x12000 ran 11 minutes and peaked at 7.5 GB."""
    path = corpus.write(tmp_path / "bomb.jpg", corpus.jpeg_declaring(12000, 12000))
    started = time.perf_counter()
    with pytest.raises(InputError, match="decompression bomb"):
        read_image(path)
    assert time.perf_counter() - started < 1.0


def test_a_png_declaring_144_megapixels_is_refused_by_the_memory_rule(tmp_path):
    """Item 2: the PNG of the same size reached 5.7 GB; the rule of --help refuses it from the header."""
    path = corpus.write(tmp_path / "bomb.png", corpus.png_declaring(12000, 12000, rows=64))
    started = time.perf_counter()
    result = run_cli("restore", path, "-o", tmp_path / "out")
    assert time.perf_counter() - started < 5.0  # includes starting the CLI; the refusal itself is instant
    assert result.exit_code == 1
    assert_one_line_errors(result.stderr, 1)
    assert "--max-memory" in result.stderr and not (tmp_path / "out" / "bomb.png").exists()


def test_max_megapixels_above_pillows_own_limit_is_honoured(tmp_path):
    """Item 2: --max-megapixels above 178.9 did nothing (Pillow's bomb error fired first)."""
    path = corpus.write(tmp_path / "big.png", corpus.png_with_junk_data(15000, 13000))  # 195 MP
    result = run_cli("restore", path, "-o", tmp_path / "out", "--max-megapixels", "190")
    assert result.exit_code == 1 and "190 MP limit" in result.stderr
    assert_one_line_errors(result.stderr, 1)
    result = run_cli("restore", path, "-o", tmp_path / "out", "--max-megapixels", "300", "--max-memory", "1e6")
    assert result.exit_code == 1
    assert_one_line_errors(result.stderr, 1)
    assert "DOS attack" not in result.stderr and "MP limit" not in result.stderr  # it got as far as decoding


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_nonsense_limits_are_usage_errors(tmp_path, value):
    """Item 2: nan and inf gave a traceback."""
    path = corpus.write(tmp_path / "a.jpg", corpus.jpeg_bytes(corpus.picture()))
    for option in ("--max-megapixels", "--max-memory"):
        result = run_cli("restore", path, "-o", tmp_path / "out", option, value)
        assert result.exit_code == 2, (option, value, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit)


# -- 3. deep images read by their declared range -----------------------------------------


def test_float_tiff_in_0_to_1_is_not_black(tmp_path):
    """Item 3: a float TIFF (0..1) came out black."""
    values = np.linspace(0, 1, 48 * 64).reshape(48, 64)
    image = read_image(corpus.float_tiff(tmp_path / "f.tif", values))
    np.testing.assert_allclose(image.pixels[..., 0], np.round(values * 255), atol=1)


def test_float_tiff_out_of_range_is_refused(tmp_path):
    with pytest.raises(InputError):
        read_image(corpus.float_tiff(tmp_path / "f.tif", np.full((8, 8), 1e6)))
    with pytest.raises(InputError):
        read_image(corpus.float_tiff(tmp_path / "n.tif", np.full((8, 8), np.nan)))


def test_int32_tiff_is_not_saturated(tmp_path):
    """Item 3: an int32 TIFF came out 74% saturated (clipped at 255); it is scaled by its declared
    32-bit range instead."""
    values = np.linspace(0, 2**31 - 1, 48 * 64).reshape(48, 64)
    pixels = read_image(corpus.int32_tiff(tmp_path / "i.tif", values)).pixels[..., 0]
    assert (pixels == 255).mean() < 0.01
    np.testing.assert_allclose(pixels, np.round(values / (2**31 - 1) * 255), atol=1)


def test_sixteen_bit_png_with_small_values_stays_dark(tmp_path):
    """Item 3: a 16-bit grey PNG whose values are at most 255 was read as 8-bit: 256x too bright."""
    values = np.tile(np.arange(256, dtype=np.uint16), (16, 1))
    pixels = read_image(corpus.grey16_png(tmp_path / "g.png", values)).pixels
    assert pixels.max() <= 1


# -- 8. names and slightly damaged files ----------------------------------------------------


def test_a_237_byte_stem_is_restored(tmp_path):
    """Item 8: a stem of 237+ bytes failed: the temporary name was longer than the final one."""
    stem = "n" * 245
    path = corpus.write(tmp_path / f"{stem}.jpg", corpus.jpeg_bytes(corpus.picture()))
    result = run_cli("restore", path, "-o", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / f"{stem}.png").exists()


def test_a_name_too_long_for_the_output_is_one_line(tmp_path):
    stem = "n" * 250
    path = corpus.write(tmp_path / f"{stem}.jpg", corpus.jpeg_bytes(corpus.picture()))
    result = run_cli("restore", path, "-o", tmp_path / "out", "--suffix", "_restored")
    assert result.exit_code == 1
    assert_one_line_errors(result.stderr, 1)


def test_a_non_utf8_name_keeps_its_tables(tmp_path):
    """Item 8: a non-UTF-8 file name made table reading fail: the JPEG went to the blind model."""
    folder = os.fsencode(tmp_path)
    name = folder + b"/caf\xe9-\xff.jpg"
    with open(name, "wb") as file:
        file.write(corpus.jpeg_bytes(corpus.picture()))
    path = os.fsdecode(name)
    image = read_image(path)
    assert image.components is not None and image.tables_problem is None
    result = run_cli("restore", path, "-o", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    assert "tables from the file" in list(records(result.stdout).values())[0]["reason"]


def test_stray_bytes_between_segments_are_restored(tmp_path):
    """Item 8: two stray bytes between segments were refused as "unrecognised JPEG coding"."""
    path = corpus.write(tmp_path / "stray.jpg", corpus.with_stray_bytes(corpus.jpeg_bytes(corpus.picture())))
    image = read_image(path)
    assert image.coding == "baseline" and image.components is not None


# -- 12. several frames, and reasons that say what happened ----------------------------------


@pytest.mark.parametrize("make, name", [(corpus.animated_gif, "a.gif"), (corpus.multipage_tiff, "m.tif"),
                                        (corpus.mpo, "x.mpo")])
def test_only_the_first_frame_is_said_not_silent(tmp_path, make, name):
    """Item 12: animated GIF, multi-page TIFF and MPO were restored first-frame-only, silently."""
    path = make(tmp_path / name)
    image = read_image(path)
    assert any("first" in note for note in image.notes), image.notes


def test_mpo_and_gif_results_carry_the_note(tmp_path):
    corpus.animated_gif(tmp_path / "a.gif")
    corpus.mpo(tmp_path / "x.jpg")
    result = run_cli("restore", tmp_path / "a.gif", tmp_path / "x.jpg", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("first") == 2, result.stdout


def test_a_missing_table_is_named_not_broken_data_stream(tmp_path):
    """Item 12: a JPEG without its tables was reported as "broken data stream"."""
    path = corpus.write(tmp_path / "t.jpg", corpus.without_tables(corpus.jpeg_bytes(corpus.picture())))
    with pytest.raises(InputError, match="never defines"):
        read_image(path)
