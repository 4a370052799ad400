import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from jpegfix.cli.app import app

from bench_helpers import make_folder

runner = CliRunner()


@pytest.fixture
def tiny_set(tmp_path):
    return make_folder(tmp_path / "tiny", 2, 3)


@pytest.fixture
def no_peers(tmp_path):
    folder = tmp_path / "peers"
    folder.mkdir()
    return str(folder)


def test_bench_prints_the_jpeg_table(tiny_set, no_peers):
    result = runner.invoke(app, ["bench", "--dataset", str(tiny_set), "--qf", "10,50", "--peers-dir", no_peers])
    assert result.exit_code == 0, result.output
    assert "jpeg" in result.stdout and "QF10" in result.stdout and "QF50" in result.stdout
    assert "RGB, 2 images" in result.stdout


def test_bench_writes_json_csv_markdown_and_plot(tmp_path, tiny_set, no_peers):
    out = tmp_path / "out"
    out.mkdir()
    result = runner.invoke(app, [
        "bench", "-d", f"{tiny_set},{tiny_set}", "--qf", "20", "--limit", "1", "--peers-dir", no_peers,
        "--subsampling", "444", "--channel", "y", "--json", "--csv", str(out / "s.csv"),
        "--markdown", str(out / "s.md"), "--plot", str(out / "s.png"), "--save-images", str(out / "img"), "--quiet"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["rows"] == ["jpeg"] and data["protocol"]["subsampling"] == "4:4:4"
    assert [d["channel"] for d in data["datasets"]] == ["y", "y"] and len(data["images"]) == 2
    assert (out / "s.csv").read_text().count("\n") == 3
    assert "| jpeg |" in (out / "s.md").read_text()
    with Image.open(out / "s.png") as plot:
        assert plot.width > 100
    assert (out / "img" / "tiny" / "jpeg" / "q20" / "img0.png").exists()


def test_jpegfix_models_are_rows(tiny_set, no_peers, monkeypatch):
    import jpegfix.engine as engine
    from conftest import tiny_restorer

    monkeypatch.setattr(engine, "load_restorer", lambda name, device, **runtime: tiny_restorer(name))
    result = runner.invoke(app, ["bench", "-d", str(tiny_set), "--qf", "30", "-m", "qgcn-color-s,qgcn-gray-s",
                                 "--peers-dir", no_peers, "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["rows"] == ["jpeg", "qgcn-color-s", "qgcn-gray-s"]
    # On a colour set the grey model gives way to its colour sibling (no luma-only duplicate).
    assert data["datasets"][0]["skipped"] == {"qgcn-gray-s": "grey model on a colour set (qgcn-color-s runs here)"}
    assert {i["model"] for i in data["images"]} == {"jpeg", "qgcn-color-s"}


def test_speed_alone_times_models_side_by_side(no_peers, monkeypatch):
    import jpegfix.bench.speed as speed
    from jpegfix.bench.speed import SpeedResult

    def fake_rows(refs, device, width, height, **options):
        return [SpeedResult(r.name, "cpu", width, height, 3, 1, 3, [1.0], 1.0, width * height / 1e6, 10.0, 5)
                for r in refs]

    monkeypatch.setattr(speed, "measure_rows", fake_rows)
    result = runner.invoke(app, ["bench", "--speed", "--size", "64x32", "-m", "qgcn-color-s,qgcn-gray-s",
                                 "--peers-dir", no_peers, "--quiet"])
    assert result.exit_code == 0, result.output
    assert "qgcn-color-s" in result.stdout and "qgcn-gray-s" in result.stdout and "64x32" in result.stdout
    assert "live1" not in result.stdout  # no quality run without --dataset


@pytest.mark.parametrize("arguments, message", [
    (["--qf", "0"], "JPEG quality must be in 1..100, got 0"),
    (["--qf", "10,abc"], "--qf takes whole numbers"),
    (["--dataset", "live9"], "unknown data set 'live9'"),
    (["--model", "qgcn-colour-s"], "unknown model 'qgcn-colour-s'; did you mean qgcn-color-s"),
    (["--model", "arcnn"], "arcnn weights not found"),
    (["--subsampling", "411"], "--subsampling must be 420, 422 or 444"),
    (["--qf", "none,abc"], "--qf takes whole numbers 1..100 or none"),
    (["--shift", "3"], "--shift takes X,Y in pixels"),
    (["--shift", "0,0"], "--shift takes X,Y in 0..64, not both 0"),
    (["--resize", "0"], "--resize must be in 0.1..4"),
    (["--requality", "101"], "--requality must be in 1..100"),
    (["--tables", "ijg", "--qf", "none", "--requality", "0"], "--requality must be in 1..100"),
    (["--channel", "cb"], "--channel must be rgb or y"),
    (["--size", "big", "--speed"], "--size takes WIDTHxHEIGHT"),
    (["--limit", "0"], "--limit must be at least 1, got 0"),
])
def test_bad_input_is_one_line_and_exit_2(tiny_set, no_peers, arguments, message):
    result = runner.invoke(app, ["bench", "-d", str(tiny_set), "--peers-dir", no_peers, *arguments])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""


def test_missing_data_set_is_bad_input(tmp_path, no_peers, monkeypatch):
    monkeypatch.delenv("JPEGFIX_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["bench", "-d", "classic5", "--data-root", str(tmp_path / "nothing"), "--peers-dir", no_peers])
    assert result.exit_code == 2 and "data set classic5 (5 files" in result.stderr


def test_a_failing_image_is_reported_and_the_exit_code_says_so(tiny_set, no_peers):
    (tiny_set / "zz.png").write_bytes(b"broken")
    result = runner.invoke(app, ["bench", "-d", str(tiny_set), "--qf", "10", "--peers-dir", no_peers])
    assert result.exit_code == 1
    assert "failed: tiny/zz.png" in result.stderr.replace(str(tiny_set.parent) + "/", "") or "zz.png" in result.stderr
    assert "jpeg" in result.stdout


def test_clean_and_resized_inputs_score_harm_and_change(tiny_set, no_peers, monkeypatch):
    import jpegfix.engine as engine
    from conftest import tiny_restorer

    monkeypatch.setattr(engine, "load_restorer", lambda name, device, **runtime: tiny_restorer(name))
    result = runner.invoke(app, ["bench", "-d", str(tiny_set), "--qf", "none,95,100", "--resize", "0.75",
                                 "-m", "cqr-color-s,qgcn-color-s", "--peers-dir", no_peers, "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [c["key"] for c in data["columns"]] == ["clean", "QF95", "QF100"]
    assert data["settings"]["degradation"] == {"requality": None, "resize": 0.75, "shift": None}
    assert "resized x0.75" in data["protocol"]["degradation"]
    dataset = data["datasets"][0]
    cqr = next(r for r in dataset["rows"] if r["model"] == "cqr-color-s")["scores"]
    assert cqr["clean"]["gain"] is None and cqr["clean"]["psnr_input_min"] <= cqr["clean"]["psnr_input"]
    assert cqr["QF95"]["paired"] == 2 and 0 <= cqr["QF95"]["worse"] <= 2 and cqr["QF95"]["worst"] is not None
    qgcn_images = [i for i in data["images"] if i["model"] == "qgcn-color-s"]
    assert len(qgcn_images) + len(dataset["refusals"]) == 2 * 3  # tables recovered, or refused per image
    assert {i["image"] for i in data["images"] if i["model"] == "jpeg"} == {"img0.png", "img1.png"}


def test_named_table_set_and_422_and_requality(tmp_path, tiny_set, no_peers, monkeypatch):
    import sys

    import numpy as np

    import jpegfix
    from jpegfix.qmaps import ijg_table

    from bench_helpers import FakeTableSet, fake_table_sets

    module = fake_table_sets({"phones": [FakeTableSet("cam-a", ijg_table(85) + 1),
                                         FakeTableSet("cam-b", ijg_table(60))]})
    monkeypatch.setitem(sys.modules, "jpegfix.table_sets", module)
    monkeypatch.setattr(jpegfix, "table_sets", module, raising=False)
    markdown_path = tmp_path / "bench.md"
    result = runner.invoke(app, ["bench", "-d", str(tiny_set), "--tables", "phones", "--subsampling", "422",
                                 "--requality", "95", "--peers-dir", no_peers, "--markdown", str(markdown_path),
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    assert "cam-b (~QF60)" in result.stdout and "cam-a (~QF" in result.stdout
    assert "tables phones, saved again as JPEG q95 on the same grid" in result.stdout
    text = markdown_path.read_text()
    assert "JPEG 4:2:2, tables phones" in text and "| model | cam-b (~QF60) | cam-a (~QF" in text
    assert "Harm: images made worse" not in text  # no model row, so no harm table
    bad = runner.invoke(app, ["bench", "-d", str(tiny_set), "--tables", "cameras", "--peers-dir", no_peers])
    assert bad.exit_code == 2 and "--tables must be ijg or one of phones; got 'cameras'" in bad.stderr
    mixed = runner.invoke(app, ["bench", "-d", str(tiny_set), "--tables", "phones", "--qf", "50",
                                "--peers-dir", no_peers])
    assert mixed.exit_code == 2 and "--qf may only be none" in mixed.stderr
    assert np.array_equal(module.named("phones")[1].luma, ijg_table(60))


def test_missing_table_sets_module_is_bad_input(tiny_set, no_peers, monkeypatch):
    import sys

    import jpegfix

    monkeypatch.setitem(sys.modules, "jpegfix.table_sets", None)  # import raises ImportError
    monkeypatch.delattr(jpegfix, "table_sets", raising=False)
    result = runner.invoke(app, ["bench", "-d", str(tiny_set), "--tables", "phones", "--peers-dir", no_peers])
    assert result.exit_code == 2 and "no named table sets" in result.stderr


def test_help_documents_the_case_options():
    result = runner.invoke(app, ["bench", "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0
    for option in ("--tables", "--requality", "--resize", "--shift", "422", "'none'", "harm"):
        assert option in result.stdout, option
