"""Batch-level defects found by the review of 2026-12-03: an original reachable under a second
name, outputs inside the input folder, inputs named twice, --skip-existing on images passed
through unrestored, usage errors that used to fail every file, XMP orientation."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

import corpus
from harness import records, run_cli
from jpegfix import batch
from jpegfix.jpeg import read_image


def _write(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    return corpus.write(path, corpus.jpeg_bytes(corpus.picture(seed=seed)))


def test_an_original_under_another_name_is_never_replaced(tmp_path):
    """On macOS and Windows IMG_1.JPG and the output name IMG_1.jpg are one file; a hard link
    is the same situation on any file system: the check must know files, not strings."""
    source = _write(tmp_path / "IMG_1.JPG")
    original = source.read_bytes()
    alias = tmp_path / "IMG_1.jpg.alias"
    os.link(source, alias)
    options = batch.RestoreOptions(overwrite=True, format="jpeg")
    result = batch.restore_file(batch.Job(source, alias), options, {}, batch.Sources([source]))
    assert result.status == "failed" and "is an input file" in result.error
    assert source.read_bytes() == original


def test_a_rerun_does_not_restore_the_outputs_it_keeps_inside_the_input_folder(tmp_path):
    tree = tmp_path / "tree"
    _write(tree / "a.jpg")
    _write(tree / "sub" / "b.jpg", 1)
    for attempt in range(2):
        result = run_cli("restore", tree, "-r", "-o", tree / "out", "--skip-existing", "--json", "-q")
        assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(tree / "out").as_posix() for p in (tree / "out").rglob("*.png")) == ["a.png", "sub/b.png"]
    assert records(result.stdout)["a.jpg"]["status"] == "skipped"
    jobs, problems = batch.plan_jobs([str(tree / "**" / "*.*")], tree / "out", recursive=True)
    assert sorted(j.source.name for j in jobs) == ["a.jpg", "b.jpg"]
    assert [p.reason for p in problems] == ["the output folder: its files are not inputs"]


def test_a_file_named_twice_is_restored_once_under_its_own_name(tmp_path, monkeypatch):
    source = _write(tmp_path / "small.jpg")
    monkeypatch.chdir(tmp_path)
    jobs, problems = batch.plan_jobs([str(source), "./small.jpg"], tmp_path / "out")
    assert [j.target.name for j in jobs] == ["small.png"] and problems == []


def test_subfolders_left_unsearched_are_said(tmp_path):
    _write(tmp_path / "d" / "a.jpg")
    _write(tmp_path / "d" / "sub" / "b.jpg")
    _, problems = batch.plan_jobs([str(tmp_path / "d")], tmp_path / "out")
    assert [(p.status, p.reason) for p in problems] == [("skipped", "folder not searched (use -r to include subfolders)")]


def test_skip_existing_replaces_an_incomplete_output_of_an_image_passed_through(tmp_path):
    """A never-compressed PNG is written as decoded; an empty output of it left by a killed
    run was an error under --skip-existing instead of being replaced."""
    pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "clean.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "clean.png").write_bytes(b"")
    result = run_cli("restore", tmp_path / "clean.png", "-o", tmp_path / "out", "--skip-existing", "--json", "-q")
    assert result.exit_code == 0, result.output
    assert records(result.stdout)["clean.png"]["status"] == "clean"
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "clean.png")), pixels)


@pytest.mark.parametrize("args, says", [
    (["--tile", "5"], "at least 64"),
    (["--clean-quality", "90"], "goes with --skip-clean"),
])
def test_options_out_of_range_are_usage_errors(tmp_path, args, says):
    source = _write(tmp_path / "a.jpg")
    result = run_cli("restore", source, "-o", tmp_path / "out", *args)
    assert result.exit_code == 2 and says in " ".join(result.output.replace("│", " ").split())
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("out", ["afile", "afile/below"])
def test_an_output_folder_that_is_a_file_is_one_usage_error(tmp_path, out):
    sources = [_write(tmp_path / f"{i}.jpg", i) for i in range(3)]
    (tmp_path / "afile").write_bytes(b"x")
    result = run_cli("restore", *sources, "-o", tmp_path / out)
    assert result.exit_code == 2 and "is a file" in " ".join(result.output.replace("│", " ").split())
    assert (tmp_path / "afile").read_bytes() == b"x"


def test_xmp_orientation_is_reset_with_the_exif_one(tmp_path):
    """The pixels are turned upright on reading; an XMP still saying 6 would turn them again."""
    exif = Image.Exif()
    exif[0x0112] = 6
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')
    Image.fromarray(corpus.picture(48, 32)).save(tmp_path / "turned.jpg", exif=exif.tobytes(), xmp=xmp)
    image = read_image(tmp_path / "turned.jpg")
    assert image.orientation == 6 and b'tiff:Orientation="1"' in image.xmp


def test_overwrite_beside_the_originals_replaces_earlier_outputs_only(tmp_path):
    """``-o`` the input's own folder: ``a.png`` beside ``a.jpg`` may be an unrelated original.
    An earlier output carries a.jpg's modification time and is replaced; a file that does not
    is left alone with one clear line."""
    source = _write(tmp_path / "a.jpg")
    unrelated = tmp_path / "a.png"
    Image.new("RGB", (8, 8), "red").save(unrelated)
    os.utime(unrelated, (source.stat().st_mtime - 3600,) * 2)
    original = unrelated.read_bytes()
    refused = run_cli("restore", source, "-o", tmp_path, "--overwrite", "--json", "-q")
    assert refused.exit_code == 1 and unrelated.read_bytes() == original
    assert "not jpegfix's output" in records(refused.stdout)["a.jpg"]["error"]
    unrelated.unlink()
    for attempt in range(2):  # the second run replaces the first run's output
        result = run_cli("restore", source, "-o", tmp_path, "--overwrite", "--json", "-q")
        assert result.exit_code == 0, result.output
    assert Image.open(unrelated).size == Image.open(source).size
