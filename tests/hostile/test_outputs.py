"""Outputs under hostile conditions (issue 14, items 4, 5, 9 and 10): concurrent runs, odd
suffixes, the umask, killed runs, durability."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

import corpus
from harness import cli_command, cli_env, records, run_cli
from jpegfix import batch, engine


def _inputs(folder, level: int, count: int):
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        corpus.write(folder / f"img{index}.jpg", corpus.jpeg_bytes(corpus.picture(96, 96, level=level, seed=index)))
    return folder


def _mean(path) -> float:
    return float(np.asarray(Image.open(path), dtype=float).mean())


# -- 4. concurrent runs ---------------------------------------------------------------------


def test_an_output_claimed_during_the_restore_is_not_replaced(tmp_path, monkeypatch):
    """Item 4, deterministic: the name is taken by someone else between the check and the write
    (the old code checked first and replaced unconditionally at the end)."""
    source = corpus.write(tmp_path / "a.jpg", corpus.jpeg_bytes(corpus.picture()))
    target = tmp_path / "out" / "a.png"
    restore = engine.restore_pixels

    def concurrent_run_writes_first(*args, **kwargs):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"the other run's picture")
        return restore(*args, **kwargs)

    monkeypatch.setattr(engine, "restore_pixels", concurrent_run_writes_first)
    result = batch.restore_file(batch.Job(source, target), batch.RestoreOptions(), {}, batch.Sources([source]))
    assert result.status == "failed" and "exists" in result.error
    assert target.read_bytes() == b"the other run's picture"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.png"]  # no temporary left behind


def test_two_concurrent_runs_never_replace_each_others_outputs(tmp_path):
    """Item 4, for real: two runs into one folder, different pictures under the same names. Each
    name is written by exactly one run, and holds that run's picture."""
    dark, light = _inputs(tmp_path / "dark", 50, 6), _inputs(tmp_path / "light", 200, 6)
    out = tmp_path / "out"
    runs = [subprocess.Popen(cli_command("restore", folder, "-o", out, "--json", "-q"), env=cli_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for folder in (dark, light)]
    outputs = [run.communicate(timeout=600) for run in runs]
    dark_records, light_records = (records(stdout) for stdout, _ in outputs)
    for index in range(6):
        name = f"img{index}.jpg"
        statuses = (dark_records[name]["status"], light_records[name]["status"])
        assert sorted(statuses) == ["failed", "ok"], (name, statuses)
        winner_is_dark = statuses[0] == "ok"
        loser = (light_records if winner_is_dark else dark_records)[name]
        assert "exists" in loser["error"]
        assert (_mean(out / f"img{index}.png") < 125) == winner_is_dark
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


# -- 5. suffixes ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["/../../escaped", "/x", "a\nb", "tab\there", "nul\x01"])
def test_a_suffix_that_is_not_part_of_a_name_is_a_usage_error(tmp_path, suffix):
    """Item 5: --suffix /../../escaped wrote outside -o; a newline made a two-line name."""
    (tmp_path / "in").mkdir()
    source = corpus.write(tmp_path / "in" / "a.jpg", corpus.jpeg_bytes(corpus.picture()))
    result = run_cli("restore", source, "-o", tmp_path / "in" / "out", "--suffix", suffix)
    assert result.exit_code == 2
    written = [p for p in tmp_path.rglob("*") if p.suffix == ".png"]
    assert written == []


# -- 9. permissions of new outputs ---------------------------------------------------------------


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_outputs_get_the_umask_mode(tmp_path, umask, mode):
    """Item 9: outputs were created 0600 whatever the umask (mkstemp, then rename)."""
    source = corpus.write(tmp_path / "a.jpg", corpus.jpeg_bytes(corpus.picture()))
    previous = os.umask(umask)
    try:
        assert run_cli("restore", source, "-o", tmp_path / "out").exit_code == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "out" / "a.png").stat().st_mode) == mode


def test_file_and_folder_are_synced_before_the_result_is_reported(tmp_path, monkeypatch):
    """A power loss after "restored" must keep the file: fsync the file, then its folder."""
    synced = []
    real_fsync = os.fsync

    def recording_fsync(descriptor):
        synced.append("folder" if stat.S_ISDIR(os.fstat(descriptor).st_mode) else "file")
        return real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    source = corpus.write(tmp_path / "a.jpg", corpus.jpeg_bytes(corpus.picture()))
    assert run_cli("restore", source, "-o", tmp_path / "out").exit_code == 0
    assert "file" in synced and "folder" in synced and synced.index("file") < len(synced) - 1 - synced[::-1].index("folder")


# -- 10. killed runs and --skip-existing -------------------------------------------------------------


def test_skip_existing_does_not_trust_an_empty_output(tmp_path):
    """Item 10: --skip-existing trusted a 0-byte output (left by a crash or a full disk)."""
    source = corpus.write(tmp_path / "a.jpg", corpus.jpeg_bytes(corpus.picture()))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.png").write_bytes(b"")
    (tmp_path / "out" / "b.png").write_bytes(b"")
    good = corpus.write(tmp_path / "b.jpg", corpus.jpeg_bytes(corpus.picture(level=90)))
    result = run_cli("restore", source, good, "-o", tmp_path / "out", "--skip-existing", "--json")
    assert result.exit_code == 0, result.output
    assert {r["status"] for r in records(result.stdout).values()} == {"ok"}
    with Image.open(tmp_path / "out" / "a.png") as image:
        image.load()
    again = run_cli("restore", source, "-o", tmp_path / "out", "--skip-existing", "--json")
    assert records(again.stdout)["a.jpg"]["status"] == "skipped"


def test_a_stale_temporary_from_a_killed_run_is_removed(tmp_path):
    """Item 10: a SIGKILL during a write left a hidden .part file that reruns never removed."""
    from jpegfix.writer import TEMPORARY_PREFIX, TEMPORARY_SUFFIX

    out = tmp_path / "out"
    out.mkdir()
    stale = out / f"{TEMPORARY_PREFIX}deadbeef{TEMPORARY_SUFFIX}"
    stale.write_bytes(b"half a PNG")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    foreign = out / ".notes.part"  # not ours: never touched
    foreign.write_bytes(b"x")
    source = corpus.write(tmp_path / "a.jpg", corpus.jpeg_bytes(corpus.picture()))
    assert run_cli("restore", source, "-o", out).exit_code == 0
    assert not stale.exists() and foreign.exists()


def test_sigkill_at_any_moment_leaves_only_whole_outputs(tmp_path):
    """Kill a run at several moments: under a final name there is only ever a whole PNG, the inputs
    are untouched, and a rerun with --skip-existing completes the folder."""
    inputs = _inputs(tmp_path / "in", 120, 4)
    originals = {p.name: p.read_bytes() for p in inputs.iterdir()}
    out = tmp_path / "out"
    for delay in (2.5, 4.5):
        run = subprocess.Popen(cli_command("restore", inputs, "-o", out, "-q", "--skip-existing"), env=cli_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        run.send_signal(signal.SIGKILL)
        run.wait()
        for png in out.glob("*.png") if out.exists() else []:
            with Image.open(png) as image:
                image.load()
    assert {p.name: p.read_bytes() for p in inputs.iterdir()} == originals
    rerun = subprocess.run(cli_command("restore", inputs, "-o", out, "--skip-existing", "--json", "-q"),
                           env=cli_env(), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert {r["status"] for r in json.loads(rerun.stdout)} <= {"ok", "skipped"}
    assert sorted(p.name for p in out.glob("*.png")) == [f"img{i}.png" for i in range(4)]
