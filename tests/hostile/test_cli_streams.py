"""What the CLI prints under hostile conditions (issue 14, items 6, 7 and 11): usage errors in
one line with exit 2, per-file failures in one line, never a traceback, never a raw warning,
results on stdout, a closed pipe, special files, markup in names, unreadable folders."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

import corpus
from harness import REPO, assert_one_line_errors, cli_command, cli_env, run_cli, run_process
from jpegfix.errors import InputError
from jpegfix.jpeg import read_image


# -- 6. devices, folders the user cannot search, markup in names ----------------------------------


@pytest.mark.parametrize("device", ["bogus", "cuda:99", "mps", "cuda"])
def test_an_unavailable_device_is_a_usage_error(tmp_path, device):
    """Item 6: cuda on a CPU build, bogus, cuda:99 and mps gave a traceback, exit 1, nothing written."""
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    source = corpus.write(tmp_path / "a.jpg", corpus.jpeg_bytes(corpus.picture()))
    result = run_cli("restore", source, "-o", tmp_path / "out", "--device", device)
    assert result.exit_code == 2 and "device" in result.output.lower(), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_usage_error_is_one_line_from_the_real_program(tmp_path):
    source = corpus.write(tmp_path / "a.jpg", corpus.jpeg_bytes(corpus.picture()))
    result = run_process("restore", source, "-o", tmp_path / "out", "--device", "cuda:99")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr and "device" in lines[0].lower()


@pytest.mark.parametrize("name", ["a[/]b.jpg", "[red]x.jpg", "[bold]"])
def test_markup_in_names_is_printed_literally(tmp_path, name):
    """Item 6: `jpegfix info` on a[/]b.jpg raised MarkupError; [red]x.jpg was printed as x.jpg."""
    (tmp_path / name).parent.mkdir(exist_ok=True)  # "a[/]b.jpg" is "]b.jpg" in the folder "a["
    path = corpus.write(tmp_path / name, corpus.jpeg_bytes(corpus.picture()))
    result = run_cli("info", path)
    assert result.exit_code == 0, result.output
    assert name in result.stdout
    broken = corpus.write(tmp_path / f"bad{name}".replace("/", "-"), b"not an image")
    result = run_cli("restore", broken, "-o", tmp_path / "out")
    assert result.exit_code == 1 and broken.name in result.stderr
    assert_one_line_errors(result.stderr, 1)


def _as_nobody(work) -> tuple[bool, str]:
    """Run ``work()`` in a forked child as user ``nobody``; (succeeded, message)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            os.setgid(65534)
            os.setuid(65534)
            message, ok = work(), True
        except BaseException as error:  # the test reports it
            message, ok = f"{type(error).__name__}: {error}", False
        os.write(write, (("OK " if ok else "FAIL ") + str(message)).encode()[:4000])
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    return text.startswith("OK "), text.split(" ", 1)[1] if " " in text else text


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_an_unsearchable_folder_is_reported_and_the_batch_goes_on():
    """Item 6 and 12: an input inside a folder the user cannot search raised PermissionError from
    Path.is_dir and nothing was processed; an unreadable folder was said to hold no images."""
    from jpegfix.batch import plan_jobs

    base = Path(tempfile.mkdtemp(prefix="jpegfix-hostile-"))
    try:
        os.chmod(base, 0o777)
        locked, listless, open_ = base / "locked", base / "listless", base / "open"
        for folder in (locked, listless, open_):
            folder.mkdir()
            corpus.write(folder / "a.jpg", corpus.jpeg_bytes(corpus.picture()))
        os.chmod(locked, 0o700)  # nobody cannot enter it
        os.chmod(listless, 0o711)  # nobody can enter but not list it
        os.chmod(open_, 0o755)

        def plan():
            jobs, problems = plan_jobs([str(locked / "a.jpg"), str(listless), str(open_ / "a.jpg")], base / "out")
            return repr(([str(j.source) for j in jobs], [(p.source, p.error) for p in problems]))

        ok, message = _as_nobody(plan)
        assert ok, message
        jobs, problems = eval(message)
        assert jobs == [str(open_ / "a.jpg")]
        reasons = dict(problems)
        assert "permission denied" in reasons[str(locked / "a.jpg")].lower()
        assert "holds no images" not in reasons[str(listless)]
        assert "permission" in reasons[str(listless)].lower() or "cannot" in reasons[str(listless)].lower()
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_a_read_only_output_folder_is_a_one_line_failure_per_file():
    from jpegfix.batch import Job, RestoreOptions, Sources, restore_file

    base = Path(tempfile.mkdtemp(prefix="jpegfix-hostile-"))
    try:
        source = corpus.write(base / "a.jpg", corpus.jpeg_bytes(corpus.picture()))
        (base / "out").mkdir()
        os.chmod(base, 0o755)
        os.chmod(source, 0o644)
        os.chmod(base / "out", 0o555)

        def restore():
            result = restore_file(Job(source, base / "out" / "a.png"), RestoreOptions(), {}, Sources([source]))
            return f"{result.status}|{result.error}"

        ok, message = _as_nobody(restore)
        assert ok, message
        status, error = message.split("|", 1)
        assert status == "failed" and "\n" not in error and "writ" in error.lower()
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)


# -- 7. special files ----------------------------------------------------------------------------------


def _alarm(seconds: int):
    def hang(*_):
        raise TimeoutError("blocked on a special file")

    signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)


def test_info_and_restore_refuse_a_fifo_without_blocking(tmp_path):
    """Item 7 and 12: `jpegfix info` on a FIFO hung forever; restore called it "no such file"."""
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    _alarm(20)
    try:
        with pytest.raises(InputError, match="not a regular file"):
            read_image(fifo)
        info = run_cli("info", fifo)
        restore = run_cli("restore", fifo, "-o", tmp_path / "out")
    finally:
        signal.alarm(0)
    for result in (info, restore):
        assert result.exit_code == 1
        assert_one_line_errors(result.stderr, 1)
        assert "pipe" in result.stderr.lower() and "no such file" not in result.stderr


# -- 11. warnings, streams and pipes --------------------------------------------------------------------


def test_third_party_warnings_never_reach_the_terminal_and_results_go_to_stdout(tmp_path):
    """Item 11: Pillow's EXIF UserWarnings and DecompressionBombWarning leaked as multi-line text,
    and per-file result lines went to stderr although the README says stdout."""
    corpus.write(tmp_path / "exif.jpg", corpus.corrupt_exif_jpeg(corpus.picture()))
    corpus.write(tmp_path / "stray.jpg", corpus.with_stray_bytes(corpus.jpeg_bytes(corpus.picture())))
    corpus.write(tmp_path / "big.png", corpus.png_with_junk_data(10000, 9500))  # 95 MP: over Pillow's warning size
    result = run_process("restore", tmp_path / "exif.jpg", tmp_path / "stray.jpg", tmp_path / "big.png",
                         "-o", tmp_path / "out", "--max-memory", "1000")
    assert result.returncode == 1
    assert_one_line_errors(result.stderr, 1)
    assert "big.png" in result.stderr
    assert (tmp_path / "out" / "exif.png").exists() and (tmp_path / "out" / "stray.png").exists()
    assert "exif.jpg -> " in result.stdout and "stray.jpg -> " in result.stdout
    assert " -> " not in result.stderr


def test_a_closed_pipe_ends_the_run_quietly(tmp_path):
    """Item 11: `restore --json | head -c 5` exited 1 with no message."""
    corpus.write(tmp_path / "a.jpg", corpus.jpeg_bytes(corpus.picture()))
    command = " ".join(f"'{part}'" for part in cli_command("restore", tmp_path / "a.jpg", "-o", tmp_path / "out",
                                                             "--json", "-q"))
    result = subprocess.run(["bash", "-c", f"{command} | head -c 5; echo \" ${{PIPESTATUS[0]}}\""],
                            capture_output=True, text=True, env=cli_env(), timeout=600, cwd=REPO)
    assert result.stdout.endswith(" 0\n"), (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Broken pipe" not in result.stderr
    assert (tmp_path / "out" / "a.png").exists()
