import os

import pytest

from pathlib import Path

from jpegfix.paths import Found, check_suffix, find_inputs, name_too_long, output_paths

JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 28
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 24
TIFF = b"II*\x00" + b"\0" * 28


@pytest.mark.parametrize("suffix", ["/../../escaped", "a\nb", "x\x00", "\\up", "tab\t"])
def test_suffix_that_is_not_part_of_a_file_name_is_refused(suffix):
    with pytest.raises(ValueError):
        check_suffix(suffix)


def test_ordinary_suffixes_pass():
    assert check_suffix("_restored.v2") == "_restored.v2"
    assert check_suffix("") == ""


def test_name_too_long_counts_bytes(tmp_path):
    assert name_too_long(tmp_path, "a" * 255) is None
    assert "256 bytes" in name_too_long(tmp_path, "a" * 256)
    assert "bytes" in name_too_long(tmp_path / "missing", "é" * 128)  # 256 bytes in UTF-8


def test_special_files_and_missing_inputs_are_named(tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "a.jpg").write_bytes(JPEG)
    (tmp_path / "notes.txt").write_bytes(b"x")
    found, skipped, problems = find_inputs([str(tmp_path), str(tmp_path / "pipe.jpg"), str(tmp_path / "none.jpg"),
                                   str(tmp_path / "*.webp")])
    assert [f.source.name for f in found] == ["a.jpg"]
    assert skipped == [(str(tmp_path / "notes.txt"), "not an image jpegfix reads (unknown file format)")]
    reasons = [reason for _, reason in problems]
    assert reasons == ["not a regular file (a named pipe)", "not a regular file (a named pipe)",
                       "no such file or folder", "pattern matches no files"]


def test_recursive_scan_keeps_the_structure(tmp_path):
    (tmp_path / "b" / "c").mkdir(parents=True)
    (tmp_path / "b" / "c" / "x.png").write_bytes(PNG)
    (tmp_path / "y.jpg").write_bytes(JPEG)
    found, _, problems = find_inputs([str(tmp_path)], recursive=True)
    assert problems == []
    planned, _ = output_paths(found, "", lambda f: ".png")
    assert [(f.source.name, str(relative)) for f, relative in planned] == [("x.png", "b/c/x.png"), ("y.jpg", "y.png")]


def _tree(root):
    """A photographer's card: one name in two folders, one stem in three formats, upper-case
    extensions, hidden files and folders, macOS AppleDouble files, formats jpegfix does not read."""
    files = {
        "a/IMG_0001.jpg": JPEG, "b/IMG_0001.jpg": JPEG, "a/copy.jpg": JPEG, "a/copy.png": PNG, "a/copy.tif": TIFF,
        "a/UPPER.JPG": JPEG, "a/._IMG_0001.jpg": b"\x00\x05\x16\x07" + b"\0" * 28, "a/.hidden.jpg": JPEG,
        ".thumbs/t.jpg": JPEG, "a/scan.psd": b"8BPS" + b"\0" * 28, "a/photo.avif": b"\0\0\0\x1cftypavif" + b"\0" * 20,
        "a/notes.txt": b"shot on film",
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def _plan(items, recursive=True):
    found, skipped, problems = find_inputs(items, recursive=recursive)
    planned, taken = output_paths(found, "", lambda f: {"TIFF": ".tif"}.get(f.format, ".png"))
    return {str(relative): f.source.name for f, relative in planned}, dict(skipped), problems + taken


def test_a_folder_is_mirrored_with_every_name_kept_apart_and_every_skip_said(tmp_path):
    _tree(tmp_path / "card")
    outputs, skipped, problems = _plan([str(tmp_path / "card")])
    assert outputs == {"a/IMG_0001.png": "IMG_0001.jpg", "b/IMG_0001.png": "IMG_0001.jpg", "a/copy.jpg.png": "copy.jpg",
                       "a/copy.png.png": "copy.png", "a/copy.tif.tif": "copy.tif", "a/UPPER.png": "UPPER.JPG"}
    assert problems == []
    by_name = {Path(path).name: reason for path, reason in skipped.items()}
    assert by_name["._IMG_0001.jpg"].startswith("macOS AppleDouble")
    assert by_name[".hidden.jpg"] == "hidden file" and by_name[".thumbs"] == "hidden folder"
    assert by_name["scan.psd"].startswith("PSD is not supported") and by_name["photo.avif"].startswith("AVIF is not")
    assert by_name["notes.txt"].startswith("not an image")


def test_globs_and_files_follow_the_same_rule(tmp_path, monkeypatch):
    _tree(tmp_path / "card")
    monkeypatch.chdir(tmp_path)
    outputs, skipped, _ = _plan(["card/**/*.jpg"])  # quoted: expanded by jpegfix, any case
    assert outputs == {"a/IMG_0001.png": "IMG_0001.jpg", "b/IMG_0001.png": "IMG_0001.jpg", "a/copy.png": "copy.jpg",
                       "a/UPPER.png": "UPPER.JPG"}
    assert "card/a/._IMG_0001.jpg" not in outputs.values() and not any(".thumbs" in p for p in skipped)
    outputs, _, _ = _plan(["card/a/IMG_0001.jpg", "card/b/IMG_0001.jpg"], recursive=False)
    assert outputs == {"a/IMG_0001.png": "IMG_0001.jpg", "b/IMG_0001.png": "IMG_0001.jpg"}
    outputs, _, problems = _plan(["card/a/copy.png", "card/a/._IMG_0001.jpg", "card/a/photo.avif"], recursive=False)
    assert outputs == {"copy.png": "copy.png"}  # one file: straight into the output folder
    assert [reason.split(" ")[0] for _, reason in problems] == ["macOS", "AVIF"]  # named files fail, not skip


def test_output_paths_is_pure_and_never_maps_two_inputs_to_one_name():
    found = [Found(Path(p), Path("in"), "JPEG") for p in ("in/x/a.jpg", "in/x/A.png", "in/x/a.jpg.png", "in/y/a.jpg")]
    planned, taken = output_paths(found, "_r", lambda f: ".png")
    assert [str(relative) for _, relative in planned] == ["x/a.jpg_r.png", "x/A.png_r.png", "y/a_r.png"]
    assert len(taken) == 1 and taken[0][0] == "in/x/a.jpg.png" and "also that of in/x/a.jpg" in taken[0][1]
