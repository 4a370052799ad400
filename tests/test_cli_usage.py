"""Issue 15's command-line items: -h everywhere, stdin and stdout, --quality with a blind model,
no machine paths in help, models and download without torch, missing weights before any file."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys

import pytest
from PIL import Image
from typer.testing import CliRunner

from jpegfix.cli.app import app

from conftest import REPO, jpeg_bytes, save_jpeg

runner = CliRunner()
COMMANDS = ["restore", "info", "models", "download", "train", "bench", "probe-encoder", "probe-ranker",
            "probe-candidates", "probe-tables"]


def program(*args, stdin: bytes = b"", env: dict | None = None) -> subprocess.CompletedProcess:
    """The real program, importtime on (stderr lists every module imported)."""
    command = [sys.executable, "-X", "importtime", "-c", "from jpegfix.cli.app import main; main()", *map(str, args)]
    environment = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"} | (env or {})
    return subprocess.run(command, input=stdin, capture_output=True, env=environment, timeout=600)


def said(result) -> str:
    """A CliRunner result's output as one line: usage errors come in a box wrapped to 80 columns."""
    return " ".join(result.output.replace("│", " ").split())


def messages(stderr: bytes) -> list[str]:
    return [line for line in stderr.decode().splitlines() if not line.startswith("import time:")]


def imported(stderr: bytes) -> set[str]:
    return {line.split("|")[-1].strip() for line in stderr.decode().splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("command", [[]] + [[c] for c in COMMANDS])
def test_dash_h_is_help(command):
    result = runner.invoke(app, [*command, "-h"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_bench_help_shows_no_development_paths():
    output = runner.invoke(app, ["bench", "--help"], env={"COLUMNS": "300"}).output
    assert "../" not in output and "shared/" not in output


@pytest.mark.parametrize("model", ["cqr", "contrastive-gray-s", "cqr-color-paper"])
def test_quality_with_a_blind_model_is_a_usage_error(tmp_path, photo, model):
    source = save_jpeg(tmp_path / "a.jpg", photo[:32, :32], quality=20)
    result = runner.invoke(app, ["restore", str(source), "-o", str(tmp_path / "out"), "-m", model, "--quality", "30"])
    assert result.exit_code == 2 and "blind model" in said(result) and not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, says", [
    (["-", "a.jpg", "-o", "out"], "only input"),
    (["a.jpg", "b.jpg", "-o", "-"], "one image to stdout"),
    (["a.jpg", "-o", "-", "--json"], "--json prints to stdout"),
    (["a.jpg", "-o", "-", "-m", "one-to-many", "--samples", "2"], "--samples writes several"),
])
def test_streams_take_one_image(tmp_path, photo, monkeypatch, args, says):
    monkeypatch.chdir(tmp_path)
    for name in ("a.jpg", "b.jpg"):
        save_jpeg(tmp_path / name, photo[:32, :32], quality=20)
    result = runner.invoke(app, ["restore", *args])
    assert result.exit_code == 2 and says in said(result), result.output


def test_stdin_to_stdout_restores_one_image(photo):
    """The real program with the shipped models: JPEG bytes in, a PNG out, nothing else on stdout."""
    result = program("restore", "-", "-o", "-", stdin=jpeg_bytes(photo[:64, :96], quality=15))
    assert result.returncode == 0, messages(result.stderr)
    with Image.open(io.BytesIO(result.stdout)) as image:
        assert image.format == "PNG" and image.size == (96, 64)


def test_stdin_to_a_folder_and_a_bad_stdin(tmp_path, photo):
    result = program("restore", "-", "-o", tmp_path, "--quiet", stdin=jpeg_bytes(photo[:32, :48], quality=15))
    assert result.returncode == 0 and (tmp_path / "stdin.png").is_file(), messages(result.stderr)
    result = program("restore", "-", "-o", "-", stdin=b"not an image")
    assert result.returncode == 1 and result.stdout == b""
    assert messages(result.stderr) == ["error -: not an image (unknown file format)"]


def test_missing_weights_fail_the_batch_before_any_file_and_before_torch(tmp_path, photo):
    sources = [save_jpeg(tmp_path / f"{i}.jpg", photo[:32, :32], quality=20) for i in range(3)]
    result = program("restore", *sources, "-o", tmp_path / "out", "-m", "qgcn-color-paper",
                     env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"), "JPEGFIX_WEIGHTS": str(tmp_path / "w")})
    assert result.returncode == 1 and not (tmp_path / "out").exists()
    [line] = messages(result.stderr)
    assert "no weights for qgcn-color-paper" in line and "jpegfix download qgcn-color-paper" in line and "HF_HUB_OFFLINE" in line
    assert "torch" not in imported(result.stderr)


def test_models_reads_cards_without_torch():
    result = program("models", "--json")
    assert result.returncode == 0 and "torch" not in imported(result.stderr)
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["qgcn-color-s"]["weights"] and rows["qgcn-color-s"]["validation"]


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache and a reachable Hub whose files are a local folder."""
    import huggingface_hub
    import huggingface_hub.constants as constants

    server = tmp_path / "server"
    server.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("JPEGFIX_WEIGHTS", str(tmp_path / "none"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("jpegfix.weights.hub_unreachable", lambda: None)

    def download(repo, filename, *, revision):
        """hf_hub_download's call: the file lands in the cache layout, as the real one does."""
        folder = tmp_path / "hub" / ("models--" + repo.replace("/", "--"))
        (folder / "refs").mkdir(parents=True, exist_ok=True)
        (folder / "refs" / revision).write_text("c0ffee")
        target = folder / "snapshots" / "c0ffee" / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((server / filename).read_bytes())
        return str(target)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    return server


def publish(server, name: str, weights: bytes, *, sha256: str | None = None) -> None:
    (server / f"{name}.safetensors").write_bytes(weights)
    card = {"name": name, "sha256": sha256 or hashlib.sha256(weights).hexdigest(), "validation": {"gain_q10": 1.5}}
    (server / f"{name}.json").write_text(json.dumps(card))


def test_download_fetches_weights_and_card_and_models_then_sees_them(fake_hub):
    from jpegfix.cli.models import model_rows

    publish(fake_hub, "qgcn-color-paper", b"weights")
    result = runner.invoke(app, ["download", "qgcn-color-paper"])
    assert result.exit_code == 0 and "qgcn-color-paper: " in result.stdout, result.output
    row = next(r for r in model_rows() if r["name"] == "qgcn-color-paper")
    assert row["weights"].endswith("snapshots/c0ffee/qgcn-color-paper.safetensors")
    assert row["validation"] == {"gain_q10": 1.5}  # the card came with the weights


def test_download_refuses_weights_that_do_not_match_their_card(fake_hub):
    publish(fake_hub, "qgcn-color-paper", b"weights", sha256="0" * 64)
    result = runner.invoke(app, ["download", "qgcn-color-paper"])
    assert result.exit_code == 1 and "sha256 does not match" in said(result)


def test_download_of_an_unknown_model_is_a_usage_error():
    result = runner.invoke(app, ["download", "qgcn-colour-paper"])
    assert result.exit_code == 2 and "did you mean qgcn-color-paper" in said(result)


def test_the_cli_spells_the_clean_quality_default_as_jpegfix_clean_does():
    from jpegfix.clean import DEFAULT_CLEAN_QUALITY
    from jpegfix.cli import restore

    assert restore.DEFAULT_CLEAN_QUALITY == DEFAULT_CLEAN_QUALITY
