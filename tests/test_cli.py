import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from jpegfix import __version__
from jpegfix.cli.app import app
from jpegfix.engine import DEFAULT_BLIND_MODELS, DEFAULT_TABLE_MODELS

from conftest import save_jpeg, tiny_restorer

runner = CliRunner()


@pytest.fixture
def tiny_models(monkeypatch):
    import jpegfix.engine as engine

    monkeypatch.setattr(engine, "load_restorer", lambda name, device, **runtime: tiny_restorer(name))


def test_version_and_help():
    assert runner.invoke(app, ["--version"]).output.strip() == f"jpegfix {__version__}"
    assert "restore" in runner.invoke(app, ["--help"]).output


def test_restore_batch_reports_each_bad_file_and_exits_1(tmp_path, photo, grey_photo, tiny_models):
    save_jpeg(tmp_path / "colour.jpg", photo[:64, :96], quality=15, subsampling=2)
    save_jpeg(tmp_path / "full.jpg", photo[:64, :96], quality=15, subsampling=0)
    save_jpeg(tmp_path / "grey.jpg", grey_photo[:48, :40], quality=15)
    save_jpeg(tmp_path / "prog.jpg", photo[:64, :96], quality=15, progressive=True)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    Image.fromarray(photo[:32, :32]).save(tmp_path / "plain.png")
    result = runner.invoke(app, ["restore", str(tmp_path / "*.jpg"), str(tmp_path / "plain.png"), "-o", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 1
    records = {r["source"].split("/")[-1]: r for r in json.loads(result.stdout)}
    assert {k for k, r in records.items() if r["status"] == "ok"} == {"colour.jpg", "full.jpg", "grey.jpg", "prog.jpg"}
    assert "empty" in records["empty.jpg"]["error"] and "not an image" in records["text.jpg"]["error"]
    # A PNG with no tables and no JPEG history in its pixels is written as decoded, and the record says why.
    assert records["plain.png"]["status"] == "clean" and records["plain.png"]["model"] is None
    assert "left as decoded" in records["plain.png"]["reason"]
    with Image.open(tmp_path / "out" / "plain.png") as passed:
        assert np.array_equal(np.asarray(passed), photo[:32, :32])
    assert records["grey.jpg"]["model"] == DEFAULT_TABLE_MODELS[1]
    with Image.open(tmp_path / "out" / "grey.png") as grey:
        assert grey.mode == "L" and grey.size == (40, 48)


def test_quality_option_restores_a_png(tmp_path, photo, tiny_models):
    Image.fromarray(photo[:32, :48]).save(tmp_path / "a.png")
    result = runner.invoke(app, ["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--quality", "20"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "a.png").exists()


def test_existing_outputs_skip_overwrite_and_refuse(tmp_path, photo, tiny_models):
    source = save_jpeg(tmp_path / "a.jpg", photo[:32, :32], quality=20)
    out = tmp_path / "out"
    out.mkdir()
    Image.fromarray(photo[:8, :8]).save(out / "a.png")  # a complete earlier output
    old = (out / "a.png").read_bytes()
    refused = runner.invoke(app, ["restore", str(source), "-o", str(out)])
    assert refused.exit_code == 1 and (out / "a.png").read_bytes() == old
    skipped = runner.invoke(app, ["restore", str(source), "-o", str(out), "--skip-existing"])
    assert skipped.exit_code == 0 and (out / "a.png").read_bytes() == old
    replaced = runner.invoke(app, ["restore", str(source), "-o", str(out), "--overwrite", "--format", "png", "--bits", "16"])
    assert replaced.exit_code == 0
    with Image.open(out / "a.png") as image:
        assert image.size == (32, 32)


def test_unwritable_output_folder(tmp_path, photo, tiny_models):
    """-o below a file is a usage error (tests/hostile/test_batch_inputs.py); a mirrored
    subfolder blocked by a file fails that file only."""
    (tmp_path / "in" / "sub").mkdir(parents=True)
    save_jpeg(tmp_path / "in" / "sub" / "a.jpg", photo[:32, :32], quality=20)
    save_jpeg(tmp_path / "in" / "b.jpg", photo[:32, :32], quality=20)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "sub").write_text("x")
    result = runner.invoke(app, ["restore", str(tmp_path / "in"), "-r", "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and "cannot create output folder" in result.output
    assert (tmp_path / "out" / "b.png").is_file()


def test_usage_errors_exit_2(tmp_path):
    assert runner.invoke(app, ["restore", "x.jpg", "-o", str(tmp_path), "--bits", "12"]).exit_code == 2
    assert runner.invoke(app, ["restore", "x.jpg", "-o", str(tmp_path), "--model", "nope"]).exit_code == 2
    assert runner.invoke(app, ["restore", "x.jpg", "-o", str(tmp_path), "--quality", "0"]).exit_code == 2
    assert runner.invoke(app, ["restore", "x.jpg"]).exit_code == 2


def test_info_reports_tables_and_quality(tmp_path, photo):
    source = save_jpeg(tmp_path / "a.jpg", photo[:40, :48], quality=35, subsampling=1, progressive=True)
    result = runner.invoke(app, ["info", str(source), "--json"])
    facts = json.loads(result.stdout)[0]
    assert facts["subsampling"] == "4:2:2" and facts["progressive"] and facts["width"] == 48
    assert facts["ijg_quality"] == {"quality": 35, "luma_error": 0.0, "chroma_error": 0.0, "exact_ijg": True}
    text = runner.invoke(app, ["info", str(source)]).output
    assert "35 (exact IJG tables)" in text


def test_models_lists_every_registered_model():
    rows = json.loads(runner.invoke(app, ["models", "--json"]).stdout)
    assert {"qgcn-color-s", "qgcn-gray-s"} <= {r["name"] for r in rows}


def test_skip_clean_passes_clean_images_through(tmp_path, photo, tiny_models):
    from jpegfix.data import jpeg_roundtrip

    crop = photo[:192, :256]
    save_jpeg(tmp_path / "fine.jpg", crop, quality=97)
    Image.fromarray(jpeg_roundtrip(crop, 30)).save(tmp_path / "coarse.png")
    save_jpeg(tmp_path / "resaved.jpg", jpeg_roundtrip(crop, 20), quality=96)
    result = runner.invoke(app, ["restore", str(tmp_path / "*"), "-o", str(tmp_path / "out"), "--skip-clean", "--json"])
    assert result.exit_code == 0, result.output
    records = {r["source"].split("/")[-1]: r for r in json.loads(result.stdout)}
    assert records["fine.jpg"]["status"] == "clean" and "quality 97" in records["fine.jpg"]["reason"]
    with Image.open(tmp_path / "out" / "fine.png") as out, Image.open(tmp_path / "fine.jpg") as source:
        np.testing.assert_array_equal(np.asarray(out), np.asarray(source))  # decoded pixels, losslessly
    # Judged from the pixels: a re-saved quality-96 file hides a quality-20 compression.
    assert records["resaved.jpg"]["status"] == "ok" and "earlier compression at quality 20" in records["resaved.jpg"]["reason"]
    assert records["coarse.png"]["status"] == "ok" and records["coarse.png"]["model"] == DEFAULT_TABLE_MODELS[3]
    # A lower threshold lets a quality-30 image through as well.
    result = runner.invoke(app, ["restore", str(tmp_path / "coarse.png"), "-o", str(tmp_path / "out2"),
                                 "--skip-clean", "--clean-quality", "25"])
    assert result.exit_code == 0 and "1 clean (passed through)" in result.output


def test_info_shows_what_the_pixels_say(tmp_path, photo):
    from jpegfix.data import jpeg_roundtrip

    Image.fromarray(jpeg_roundtrip(photo[:192, :256], 40)[2:, 6:]).save(tmp_path / "copy.png")
    Image.fromarray(photo[:192, :256]).save(tmp_path / "clean.png")
    save_jpeg(tmp_path / "twice.jpg", jpeg_roundtrip(photo[:192, :256], 30), quality=95)
    result = runner.invoke(app, ["info", str(tmp_path / "copy.png"), str(tmp_path / "clean.png"), str(tmp_path / "twice.jpg"), "--json"])
    copy, clean, twice = json.loads(result.stdout)
    assert copy["from_pixels"]["found"] and copy["from_pixels"]["quality"] == 40 and copy["from_pixels"]["offset"] == [2, 6]
    assert not clean["from_pixels"]["found"] and "no quantization found" in clean["from_pixels"]["summary"]
    assert twice["from_pixels"]["earlier"]["found"] and twice["from_pixels"]["earlier"]["quality"] == 30
    text = runner.invoke(app, ["info", str(tmp_path / "copy.png"), str(tmp_path / "clean.png")]).output
    assert "from pixels  IJG quality 40" in text and "grid offset 2, 6" in text and "tables not found" in text


def test_formats_and_skips_from_the_command_line(tmp_path, photo, tiny_models):
    (tmp_path / "in" / ".cache").mkdir(parents=True)
    save_jpeg(tmp_path / "in" / "IMG.JPG", photo[:32, :48], quality=20)
    save_jpeg(tmp_path / "in" / ".cache" / "x.jpg", photo[:16, :16])
    (tmp_path / "in" / "phone.heic").write_bytes(bytes(4) + b"ftypheic" + bytes(20))
    args = ["restore", str(tmp_path / "in"), "-r", "-o", str(tmp_path / "out"), "--format", "jpg", "--jpeg-quality", "90"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and "HEIC is not supported" in result.output
    assert "1 restored, 2 skipped, 0 failed" in result.output
    with Image.open(tmp_path / "out" / "IMG.jpg") as out:
        assert out.format == "JPEG" and out.size == (48, 32)
    assert runner.invoke(app, args[:6] + ["--format", "webp", "--bits", "16"]).exit_code == 2
    assert runner.invoke(app, args[:6] + ["--format", "heic"]).exit_code == 2
