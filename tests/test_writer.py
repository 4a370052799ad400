import os
import subprocess
import sys
import time

import pytest

from jpegfix.writer import TEMPORARY_PREFIX, TargetExistsError, remove_stale_temporaries, write_exclusive


def test_claims_a_new_name_and_never_replaces_without_overwrite(tmp_path):
    target = tmp_path / "a.png"
    write_exclusive(target, lambda p: p.write_bytes(b"first"))
    with pytest.raises(TargetExistsError):
        write_exclusive(target, lambda p: p.write_bytes(b"second"))
    assert target.read_bytes() == b"first"
    write_exclusive(target, lambda p: p.write_bytes(b"third"), overwrite=True)
    assert target.read_bytes() == b"third"
    assert os.listdir(tmp_path) == ["a.png"]  # no temporary left behind


def test_new_files_get_the_umask_mode_not_0600(tmp_path):
    previous = os.umask(0o022)
    try:
        write_exclusive(tmp_path / "a.png", lambda p: p.write_bytes(b"x"))
    finally:
        os.umask(previous)
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o644


def test_a_failed_write_leaves_nothing(tmp_path):
    def broken(path):
        path.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_exclusive(tmp_path / "a.png", broken)
    assert os.listdir(tmp_path) == []


def test_temporary_name_is_short_whatever_the_final_name(tmp_path):
    seen = []
    write_exclusive(tmp_path / ("x" * 251 + ".png"), lambda p: seen.append(p.name) or p.write_bytes(b"x"))
    assert len(seen[0]) < 30 and seen[0].startswith(TEMPORARY_PREFIX)


def test_stale_temporary_of_a_killed_writer_is_removed_and_a_live_one_kept(tmp_path):
    stale = tmp_path / f"{TEMPORARY_PREFIX}000000000000.part"
    stale.write_bytes(b"half")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    # A live writer: another process holding the lock on an equally old temporary.
    held = tmp_path / f"{TEMPORARY_PREFIX}111111111111.part"
    held.write_bytes(b"busy")
    os.utime(held, (old, old))
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(held)!r}, os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True); time.sleep(30)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert remove_stale_temporaries(tmp_path) == 1
        assert not stale.exists() and held.exists()
    finally:
        holder.kill()
        holder.wait()
