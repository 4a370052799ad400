import os

import pytest

from jpegfix.paths import check_suffix, find_inputs, name_too_long


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
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "notes.txt").write_bytes(b"x")
    found, problems = find_inputs([str(tmp_path), str(tmp_path / "pipe.jpg"), str(tmp_path / "none.jpg"),
                                   str(tmp_path / "*.webp")])
    assert [f.source.name for f in found] == ["a.jpg"]
    reasons = [reason for _, reason in problems]
    assert reasons == ["not a regular file (a named pipe)", "not a regular file (a named pipe)",
                       "no such file or folder", "pattern matches no files"]


def test_recursive_scan_keeps_the_structure(tmp_path):
    (tmp_path / "b" / "c").mkdir(parents=True)
    (tmp_path / "b" / "c" / "x.png").write_bytes(b"x")
    (tmp_path / "y.jpg").write_bytes(b"x")
    found, problems = find_inputs([str(tmp_path)], recursive=True)
    assert problems == []
    assert [(f.source.name, str(f.subfolder)) for f in found] == [("x.png", "b/c"), ("y.jpg", ".")]
